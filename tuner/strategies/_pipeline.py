"""``pipeline``: the model split into stages, one per rank, micro-batches passed along.

``trial.prepare(model, loss_fn=..., split=None)`` takes an ``nn.Sequential`` (split into
``stages`` contiguous parts of about equal parameter count, or before the layer indices in
``split``) or a list of the stages' modules, keeps this rank's stage, and returns a
:class:`Pipelined`: ``model.step(x, y)`` runs one training step of every micro-batch through
the schedule (GPipe: all forwards, then all backwards; 1F1B: one forward, one backward, so at
most ``stages`` micro-batches' activations are alive) and returns the mean loss on the last
stage (``None`` elsewhere); ``model.predict(x)`` runs the forward pass alone and returns the
outputs on the last stage. Only the last stage sees the loss: ``trial.report`` averages over
the ranks that hold metrics (the others pass ``None``). A Sequential's slices keep its layer
names, so the stages' state dicts together are the whole model's (what checkpoints gather).
"""

from __future__ import annotations

import itertools
from typing import Any

from tuner.strategies._base import Ranks, Strategy


class Pipeline(Strategy):
    def prepare(self, model: Any, trial: Ranks, loss_fn: Any = None, split: Any = None, **kwargs: Any) -> Any:
        from torch.distributed.pipelining import PipelineStage, Schedule1F1B, ScheduleGPipe

        if kwargs:
            raise TypeError(f"trial.prepare: pipeline takes loss_fn= and split=, got {', '.join(kwargs)}")
        if loss_fn is None:
            raise TypeError("trial.prepare: a pipeline needs loss_fn=... (the last stage computes the loss)")
        stages = trial.world_size
        if stages == 1:  # one process (plan --smoke): the whole model, the same interface
            whole = model if not isinstance(model, list | tuple) else _sequential(list(model))
            return Whole(whole.to(trial.device), loss_fn)
        parts = list(model) if isinstance(model, list | tuple) else split_sequential(model, stages, split)
        if len(parts) != stages:
            raise ValueError(f"trial.prepare: {len(parts)} stage(s) given for a pipeline of {stages} ranks")
        module = parts[trial.rank].to(trial.device)
        stage = PipelineStage(module, trial.rank, stages, trial.device)
        schedule_cls = ScheduleGPipe if self.options.schedule == "gpipe" else Schedule1F1B
        schedule = schedule_cls(stage, self.options.microbatches, loss_fn=loss_fn)
        return Pipelined(module, schedule, trial.rank, stages, self.options.microbatches)

    def holds_metrics(self, trial: Ranks) -> bool:
        return trial.rank == trial.world_size - 1

    def replicas(self, trial: Ranks) -> int:
        return 1  # every stage reads the same batches: the first its inputs, the last its targets

    def state_dict(self, model: Any, optimizer: Any, trial: Ranks) -> dict[str, Any]:
        if not trial.distributed:
            return super().state_dict(model, optimizer, trial)
        return self._joined(model, optimizer, trial)

    def _joined(self, model: Any, optimizer: Any, trial: Ranks) -> dict[str, Any]:
        """The stages' states joined into the whole model's (a Sequential's slices keep its layer
        names); the optimizer's, one per stage. Gathered on every rank (a collective)."""
        import torch.distributed as dist

        mine = {"model": model.state_dict(), "optimizer": optimizer.state_dict() if optimizer is not None else None}
        every: list[Any] = [None] * trial.world_size
        dist.all_gather_object(every, mine)
        joined: dict[str, Any] = {}
        for part in every:
            joined.update(part["model"])
        state: dict[str, Any] = {"model": joined}
        if optimizer is not None:
            state["optimizer_stages"] = [part["optimizer"] for part in every]
        return state

    def load_state_dict(self, model: Any, optimizer: Any, state: dict[str, Any], trial: Ranks) -> None:
        if "optimizer" in state:  # saved by one process
            super().load_state_dict(model, optimizer, state, trial)
            return
        model.load_state_dict(state["model"])
        if optimizer is not None and "optimizer_stages" in state:
            optimizer.load_state_dict(state["optimizer_stages"][trial.rank])


def split_sequential(model: Any, stages: int, split: list[int] | None = None) -> list[Any]:
    """``model`` (an ``nn.Sequential``) cut into ``stages`` contiguous slices: before the indices in
    ``split``, or where the largest stage holds the fewest parameters."""
    from torch import nn

    if not isinstance(model, nn.Sequential):
        raise TypeError("trial.prepare: a pipeline splits an nn.Sequential, or takes a list of stage modules")
    n = len(model)
    if split is None:
        split = _balanced([sum(p.numel() for p in layer.parameters()) for layer in model], stages)
    bounds = [0, *split, n]
    if sorted(set(bounds)) != bounds or len(bounds) != stages + 1:
        raise ValueError(f"trial.prepare: split {split} does not cut {n} layers into {stages} stages")
    return [model[a:b] for a, b in itertools.pairwise(bounds)]


class Pipelined:
    """This rank's stage and the schedule that drives it."""

    def __init__(self, module: Any, schedule: Any, rank: int, stages: int, microbatches: int) -> None:
        self.module = module
        self.schedule = schedule
        self.rank = rank
        self.stages = stages
        self.microbatches = microbatches

    @property
    def first(self) -> bool:
        return self.rank == 0

    @property
    def last(self) -> bool:
        return self.rank == self.stages - 1

    def step(self, x: Any, y: Any) -> float | None:
        """Forward and backward of every micro-batch of ``(x, y)``; the mean loss on the last stage."""
        batch = len(y) if self.last else len(x) if self.first else None
        if batch is not None and batch % self.microbatches:
            raise ValueError(
                f"a pipeline step splits its batch into {self.microbatches} equal micro-batches, got {batch} "
                "samples: use a batch_size divisible by microbatches, and trial.loader(..., drop_last=True)"
            )
        self.module.train()
        if self.last:
            losses: list[Any] = []
            self.schedule.step(target=y, losses=losses)
            return float(sum(loss.detach().float().item() for loss in losses) / max(len(losses), 1))
        self.schedule.step(x) if self.first else self.schedule.step()
        return None

    def predict(self, x: Any) -> Any:
        """The forward pass alone, of a batch of any size (stage after stage, no micro-batches);
        the outputs on the last stage, ``None`` elsewhere."""
        import torch

        self.module.eval()
        device = next(self.module.parameters()).device
        with torch.no_grad():
            if not self.first:
                x = _receive(self.rank - 1, device)
            out = self.module(x)
            if not self.last:
                _send(out, self.rank + 1)
                return None
        return out

    def parameters(self) -> Any:
        return self.module.parameters()

    def state_dict(self) -> dict[str, Any]:
        return dict(self.module.state_dict())

    def load_state_dict(self, state: dict[str, Any]) -> Any:
        mine = self.module.state_dict().keys()
        return self.module.load_state_dict({k: v for k, v in state.items() if k in mine})


def _balanced(sizes: list[int], stages: int) -> list[int]:
    """Where to cut ``sizes`` into ``stages`` non-empty contiguous runs so that the largest run's
    total is smallest (ties: the latest cuts, so a layer without parameters stays with the one before)."""
    n = len(sizes)
    prefix = [0]
    for size in sizes:
        prefix.append(prefix[-1] + size)
    # best[k][i]: (largest run, cuts) for the first i layers in k runs
    best: dict[tuple[int, int], tuple[int, list[int]]] = {(1, i): (prefix[i], []) for i in range(1, n + 1)}
    for k in range(2, stages + 1):
        for i in range(k, n + 1):
            options = [
                (max(best[(k - 1, j)][0], prefix[i] - prefix[j]), [*best[(k - 1, j)][1], j]) for j in range(k - 1, i)
            ]
            best[(k, i)] = min(options, key=lambda o: (o[0], [-c for c in o[1]]))
    return best[(stages, n)][1]


def _sequential(parts: list[Any]) -> Any:
    from torch import nn

    return nn.Sequential(*parts)


class Whole:
    """A pipeline of one stage: the interface of :class:`Pipelined` over the whole model, in one
    process (what ``plan --smoke`` runs)."""

    first = last = True

    def __init__(self, module: Any, loss_fn: Any) -> None:
        self.module = module
        self.loss_fn = loss_fn

    def step(self, x: Any, y: Any) -> float:
        self.module.train()
        loss = self.loss_fn(self.module(x), y)
        loss.backward()
        return float(loss.detach().item())

    def predict(self, x: Any) -> Any:
        import torch

        self.module.eval()
        with torch.no_grad():
            return self.module(x)

    def parameters(self) -> Any:
        return self.module.parameters()

    def state_dict(self) -> dict[str, Any]:
        return dict(self.module.state_dict())

    def load_state_dict(self, state: dict[str, Any]) -> Any:
        return self.module.load_state_dict(state)


_DTYPES = ("float32", "float16", "bfloat16", "float64", "int64", "int32")
_META = 10  # dtype, number of dimensions, up to 8 sizes


def _send(tensor: Any, dst: int) -> None:
    """A tensor of any shape to the next stage: its dtype and shape first, then its values."""
    import torch
    import torch.distributed as dist

    shape = list(tensor.shape)
    meta = [_DTYPES.index(str(tensor.dtype).removeprefix("torch.")), len(shape), *shape]
    dist.send(torch.tensor(meta + [0] * (_META - len(meta)), dtype=torch.long, device=tensor.device), dst)
    dist.send(tensor.contiguous(), dst)


def _receive(src: int, device: Any) -> Any:
    import torch
    import torch.distributed as dist

    meta = torch.empty(_META, dtype=torch.long, device=device)
    dist.recv(meta, src)
    code, ndim, *sizes = meta.tolist()
    tensor = torch.empty(sizes[:ndim], dtype=getattr(torch, _DTYPES[code]), device=device)
    dist.recv(tensor, src)
    return tensor
