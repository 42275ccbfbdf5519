"""The study's trainable as a Ray Tune trainable.

Both styles run: tuner's ``train(config, trial)`` gets a :class:`tuner.trial.Trial` whose
reports go to ``tune.report`` (one process) or ``ray.train.report`` (each rank of a
``TorchTrainer``, for ``workers: N``); a Ray Tune ``train_fn(config)`` runs as it is. Each Tune
trial's config carries its tuner id and seed under :data:`RESERVED`, taken out before the
trainable sees the config.
"""

from __future__ import annotations

import functools
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuner.trial import Trial

RESERVED = "_tuner"  # {"id": "t0001", "seed": 123} in each Tune trial's config
STATE = "state.pt"  # a tuner trial's checkpoint inside a Tune checkpoint directory


@dataclass(frozen=True)
class Job:
    """What every trial of the study runs: sent to Tune's actors (and Train's workers) by value."""

    trainable: str
    style: str  # "tuner": train(config, trial); "tune": train_fn(config)
    entries: tuple[str, ...]  # the driver's import path, so the trainable's module imports there too
    max_steps: int | None
    gpus: float
    final: bool
    strategy: Any  # tuner.strategies.StrategyOptions
    store: str | None  # the checkpoint store's location (FSDP writes its shards there)


def trainable_for(job: Job, workers: int, cpus: float, gpus: float, storage: str) -> Any:
    """What ``tune.Tuner`` runs: a function trainable with the study's resources per trial."""
    from ray import tune

    if workers == 1:
        return tune.with_resources(functools.partial(_single, job=job), {"cpu": cpus, "gpu": gpus})
    # the trial itself only drives a TorchTrainer, whose workers hold the resources
    driver = functools.partial(_driver, job=job, workers=workers, cpus=cpus, gpus=gpus, storage=storage)
    return tune.with_resources(driver, {"cpu": 0, "memory": 1})  # Tune wants a bundle; Train holds the CPUs


def _import(job: Job) -> Callable[..., Any]:
    for entry in reversed(job.entries):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    from tuner.config import import_trainable

    return import_trainable(job.trainable)


def _split(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    config = dict(config)
    meta = config.pop(RESERVED, None) or {"id": "trial", "seed": 0}
    return config, meta


def _single(config: dict[str, Any], job: Job) -> None:
    from ray import tune

    fn = _import(job)
    config, meta = _split(config)
    if job.style == "tune":
        fn(config)
        return
    trial = _TuneTrial(
        meta["id"],
        meta["seed"],
        send=tune.report,
        make=tune.Checkpoint.from_directory,
        max_steps=job.max_steps,
        gpus=job.gpus,
        checkpoint=_restored(tune.get_checkpoint()),
        final=job.final,
        strategy=job.strategy,
        store=_store(job),
    )
    _run(fn, config, trial)


def _driver(config: dict[str, Any], job: Job, workers: int, cpus: float, gpus: float, storage: str) -> None:
    """One trial of ``workers`` ranks: a ``TorchTrainer`` inside the Tune trial, its reports passed
    on to Tune. A retried trial's Train run has the same name, so Train hands its ranks the last
    checkpoint."""
    from ray import tune
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    config, meta = _split(config)
    loop = functools.partial(_rank, job=job, meta=meta) if job.style == "tuner" else _import(job)
    resources = {"CPU": cpus, **({"GPU": gpus} if gpus else {})}
    trainer = TorchTrainer(
        loop,
        train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=gpus > 0, resources_per_worker=resources),
        run_config=RunConfig(
            name=f"train-{tune.get_context().get_trial_id()}", storage_path=storage, callbacks=[TuneReportCallback()]
        ),
    )
    trainer.fit()


def _rank(config: dict[str, Any], job: Job, meta: dict[str, Any]) -> None:
    import ray.train

    fn = _import(job)
    context = ray.train.get_context()
    trial = _TuneTrial(
        meta["id"],
        meta["seed"],
        send=ray.train.report,
        make=ray.train.Checkpoint.from_directory,
        max_steps=job.max_steps,
        gpus=job.gpus,
        rank=context.get_world_rank(),
        world_size=context.get_world_size(),
        checkpoint=_restored(ray.train.get_checkpoint()),
        final=job.final,
        strategy=job.strategy,
        store=_store(job),
    )
    _run(fn, config, trial)


def _run(fn: Callable[..., Any], config: dict[str, Any], trial: Trial) -> None:
    from tuner.errors import TrialPruned

    try:
        fn(config, trial)
    except TrialPruned:  # never raised here (Tune ends a stopped trial itself), but harmless
        pass


def _store(job: Job) -> Any:
    from tuner.storage import CheckpointStore

    return None if job.store is None else CheckpointStore(job.store)


def _restored(checkpoint: Any) -> Any:
    """The state a trial last reported with ``checkpoint=``, from Tune's (or Train's) checkpoint."""
    if checkpoint is None:
        return None
    import torch

    with checkpoint.as_directory() as folder:
        path = Path(folder) / STATE
        if not path.exists():
            return None
        return torch.load(path, weights_only=True, map_location="cpu")["state"]


class _TuneTrial(Trial):
    """A :class:`Trial` whose reports go to Ray Tune (or Ray Train): every rank reports, as Train
    asks; rank 0 with the metrics averaged over ranks and with the checkpoint, if any, as a
    directory holding its state."""

    def __init__(self, *args: Any, send: Callable[..., None], make: Callable[[str], Any], **kwargs: Any) -> None:
        super().__init__(*args, emit=self._keep, **kwargs)
        self._send, self._make = send, make
        self._kept: dict[str, Any] | None = None

    def _keep(self, record: dict[str, Any]) -> None:
        self._kept = record

    def report(self, step: float, *, checkpoint: Any = None, **metrics: Any) -> None:
        self._kept = None
        super().report(step, checkpoint=checkpoint, **metrics)
        record = self._kept or {"metrics": {}}
        out = {**record["metrics"], "step": step}
        state = record.get("checkpoint")
        if state is None:
            self._send(out)
            return
        import torch

        with tempfile.TemporaryDirectory(prefix="tuner-ckpt-") as folder:
            torch.save({"step": step, "state": state}, Path(folder) / STATE)
            self._send(out, checkpoint=self._make(folder))
