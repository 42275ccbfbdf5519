"""The object a trainable receives: ``train(config, trial)``. It never exposes Ray.

One trainable serves one process or a DistributedDataParallel job of N: ``prepare`` wraps
the model when ``world_size > 1``, ``loader`` shards the data, and ``report`` averages the
metrics over ranks so that every rank sees the same numbers and stops at the same step.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator
from typing import Any

from tuner.errors import TrialPruned
from tuner.strategies import Strategy, StrategyOptions, create

Emit = Callable[[dict[str, Any]], None]


def choose_backend(gpus_per_worker: float, cuda_available: bool) -> str:
    """``nccl`` when every rank owns a whole GPU, else ``gloo`` (CPU, or ranks sharing a GPU)."""
    return "nccl" if gpus_per_worker >= 1 and cuda_available else "gloo"


class Trial:
    """Identity, budget, device, data and reporting for one trial (one rank of it).

    ``report(step, **metrics)`` hands metrics to the study once per step; when the
    scheduler has stopped the trial it raises :class:`tuner.errors.TrialPruned` on every
    rank, which the trainable should let propagate (it is a ``BaseException``, so
    ``except Exception`` does not catch it).
    """

    def __init__(
        self,
        trial_id: str,
        seed: int,
        *,
        max_steps: int | None = None,
        gpus: float = 0.0,
        rank: int = 0,
        world_size: int = 1,
        emit: Emit | None = None,
        should_stop: Callable[[], bool] | None = None,
        checkpoint: Any = None,
        accumulation: int = 1,
        final: bool = False,
        strategy: StrategyOptions | None = None,
        store: Any = None,
    ) -> None:
        self.trial_id = trial_id
        self.seed = seed
        self.max_steps = max_steps
        self.rank = rank
        self.world_size = world_size
        self._gpus = gpus
        self._emit = emit
        self._should_stop = should_stop or (lambda: False)
        self._checkpoint = checkpoint
        self.accumulation = accumulation  # micro-batches per optimizer step (doubled after an OOM)
        # A final run (``train``, ``confirm``), never a search trial: the place to evaluate on a
        # held-out test split that the search must not see.
        self.final = final
        self._options = strategy  # None: ddp
        self._strategy: Strategy | None = None
        self.store = store  # the study's checkpoint store (tuner.storage.CheckpointStore), on every rank
        self._last_step: float | None = None
        self.reports: list[dict[str, Any]] = []  # kept when nothing consumes them (direct calls)

    # -- where to train ------------------------------------------------------------------
    @property
    def device(self) -> Any:
        """``cuda`` when the trial was given a GPU and CUDA works, else ``cpu``."""
        import torch

        return torch.device("cuda", 0) if self._gpus > 0 and torch.cuda.is_available() else torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def strategy(self) -> Strategy:
        """How the model is spread over the ranks (``resources.strategy``): ddp, fsdp or pipeline."""
        if self._strategy is None:
            self._strategy = create(self._options or StrategyOptions())
        return self._strategy

    def prepare(self, model: Any, **options: Any) -> Any:
        """``model`` on the device and spread over the ranks as the study's strategy says: wrapped
        in DistributedDataParallel (``ddp``, the default), sharded (``fsdp``; ``blocks=``), or this
        rank's pipeline stage with its schedule (``pipeline``; ``loss_fn=``, ``split=``)."""
        return self.strategy.prepare(model, self, **options)

    @staticmethod
    def unwrap(model: Any) -> Any:
        """The model inside a DDP wrapper, or a pipeline's stage (for its ``state_dict``)."""
        return getattr(model, "module", model)

    def state_dict(self, model: Any, optimizer: Any = None) -> dict[str, Any]:
        """The whole model's state (and the optimizer's) for a checkpoint, whatever the strategy:
        a sharded model's shards gathered, a pipeline's stages joined. Every rank calls it."""
        state: dict[str, Any] = self.strategy.state_dict(model, optimizer, self)
        return state

    def load_state_dict(self, model: Any, optimizer: Any, state: dict[str, Any]) -> None:
        """Load what :meth:`state_dict` saved into a prepared model (and optimizer), on every rank."""
        self.strategy.load_state_dict(model, optimizer, state, self)

    def loader(
        self,
        dataset: Any,
        batch_size: int,
        *,
        shuffle: bool = True,
        drop_last: bool = False,
        to_device: bool = True,
        **kwargs: Any,
    ) -> _Loader:
        """A DataLoader over this rank's shard; ``batch_size`` is the global (effective) batch.

        Each rank loads ``batch_size // (world_size * accumulation)`` samples per micro-batch
        (a DistributedSampler whose epoch advances every pass, so shuffling differs per epoch
        and per rank); step the optimizer every ``trial.accumulation`` micro-batches. On
        CUDA, memory is pinned and batches are copied with ``non_blocking=True``.
        """
        import torch
        from torch.utils.data import DataLoader, DistributedSampler

        replicas = self.strategy.replicas(self)  # ranks that split the data (a pipeline's stages do not)
        per_step = batch_size // (replicas * self.accumulation)
        if per_step < 1:
            raise ValueError(
                f"batch_size {batch_size} is smaller than the {self.world_size} workers"
                f" x {self.accumulation} accumulation steps"
            )
        cuda = self.device.type == "cuda"
        sampler: Any = None
        if replicas > 1:
            sampler = DistributedSampler(
                dataset,
                num_replicas=self.world_size,
                rank=self.rank,
                shuffle=shuffle,
                seed=self.seed,
                drop_last=drop_last,
            )
        generator = torch.Generator().manual_seed(self.seed)
        loader = DataLoader(
            dataset,
            batch_size=per_step,
            sampler=sampler,
            shuffle=shuffle and sampler is None,
            drop_last=drop_last,
            pin_memory=cuda,
            generator=generator,
            **kwargs,
        )
        return _Loader(loader, sampler, self.device if to_device else None)

    # -- reporting -----------------------------------------------------------------------
    def checkpoint(self) -> Any:
        """The state last passed as ``report(..., checkpoint=...)`` when this trial is a retry."""
        return self._checkpoint

    def report(self, step: float, *, checkpoint: Any = None, **metrics: Any) -> None:
        """Report ``metrics`` at ``step`` (an epoch or iteration number, increasing).

        Every rank calls it at the same steps; metrics are averaged over ranks. A
        ``checkpoint`` (rank 0's counts) is kept so that a retried trial resumes from it.
        """
        if not isinstance(step, numbers.Real) or isinstance(step, bool) or not math.isfinite(step):
            raise TypeError(f"trial.report: step must be a finite number, got {step!r}")
        if self._last_step is not None and step <= self._last_step:
            raise ValueError(f"trial.report: step must increase, got {step} after {self._last_step}")
        if not metrics:
            raise ValueError("trial.report: no metrics given")
        clean: dict[str, float] = {}
        holds = not self.distributed or self.strategy.holds_metrics(self)
        for key, value in sorted(metrics.items()):
            if value is None and not holds:  # a pipeline stage without the loss: left out of the mean
                value = 0.0
            if hasattr(value, "item"):  # numpy scalars, 0-d tensors
                value = value.item()
            if not isinstance(value, numbers.Real) or isinstance(value, bool):
                raise TypeError(f"trial.report: metric {key!r} must be a number, got {value!r}")
            clean[key] = float(value)
        self._last_step = float(step)
        stop = self._should_stop()
        if self.distributed:
            clean, stop = _average(clean, stop, holds)
        if stop:  # stopped (pruned, or a population member told to exploit): nothing records this
            checkpoint = None  # report's checkpoint, and a file written now would only stay behind
        if checkpoint is not None:
            checkpoint = self.strategy.checkpoint(checkpoint, step, self)  # every rank: FSDP's shards
            self._checkpoint = checkpoint
        record: dict[str, Any] = {"step": step, "metrics": clean}
        if self.rank == 0:
            if checkpoint is not None:
                record["checkpoint"] = checkpoint
            if self._emit is None:
                self.reports.append(record)
            else:
                self._emit(record)
        if stop:
            raise TrialPruned(self.trial_id)


def _average(metrics: dict[str, float], stop: bool, holds: bool = True) -> tuple[dict[str, float], bool]:
    """All-reduce: the mean of each metric over the ranks that hold metrics, and whether any rank
    was told to stop."""
    import torch
    import torch.distributed as dist

    weight = 1.0 if holds else 0.0
    values = torch.tensor([*(v * weight for v in metrics.values()), weight, 1.0 if stop else 0.0], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        values = values.cuda()
    dist.all_reduce(values)
    out = values.cpu().tolist()
    held = max(out[-2], 1.0)
    return {k: v / held for k, v in zip(metrics, out[:-2], strict=True)}, out[-1] > 0


class _Loader:
    """Iterates a DataLoader, advancing the sampler's epoch and moving batches to the device."""

    def __init__(self, loader: Any, sampler: Any, device: Any) -> None:
        self.loader = loader
        self.sampler = sampler
        self.device = device
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        if self.sampler is not None:
            self.sampler.set_epoch(self.epoch)
        self.epoch += 1
        for batch in self.loader:
            yield batch if self.device is None else _move(batch, self.device)


def _move(batch: Any, device: Any) -> Any:
    non_blocking = device.type == "cuda"
    if hasattr(batch, "to"):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, list | tuple):
        return type(batch)(_move(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _move(v, device) for k, v in batch.items()}
    return batch
