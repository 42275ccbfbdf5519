"""The study's trainable as a Ray Tune trainable.

On one process, tuner's ``train(config, trial)`` gets a :class:`tuner.trial.Trial` whose reports
go to ``tune.report``, and a Ray Tune ``train_fn(config)`` runs as it is, in Tune's own session.
With ``workers: N`` the Tune trial drives a worker group of the Ray backend (N rank actors in a
placement group, a process group formed in a fraction of a second), which runs either style and
streams rank 0's reports back to Tune; the group is owned by the trial, so Tune stopping the
trial ends its ranks too. Each Tune trial's config carries its tuner id and seed under
:data:`RESERVED`, taken out before the trainable sees the config.
"""

from __future__ import annotations

import functools
import inspect
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuner.trial import Trial

RESERVED = "_tuner"  # {"id": "t0001", "seed": 123} in each Tune trial's config
STATE = "state.pt"  # a tuner trial's checkpoint inside a Tune checkpoint directory
POINTER = "tuner_checkpoint.txt"  # or, for a group trial, where its checkpoint lies in the study's store


@dataclass(frozen=True)
class Job:
    """What every trial of the study runs: sent to Tune's actors (and Train's workers) by value."""

    trainable: str
    api: str  # trainable_api: auto, tuner or tune
    study: str  # the study's name
    entries: tuple[str, ...]  # the driver's import path, so the trainable's module imports there too
    max_steps: int | None
    gpus: float
    final: bool
    strategy: Any  # tuner.strategies.StrategyOptions
    store: str | None  # the checkpoint store's location (FSDP writes its shards there)


def trainable_for(job: Job, workers: int, cpus: float, gpus: float) -> Any:
    """What ``tune.Tuner`` runs: a function trainable with the study's resources per trial."""
    from ray import tune

    if workers == 1:
        return tune.with_resources(functools.partial(_single, job=job), {"cpu": cpus, "gpu": gpus})
    # the trial itself only drives its ranks, which hold the resources (Tune wants a bundle: 1 byte)
    driver = functools.partial(_group, job=job, workers=workers, cpus=cpus, gpus=gpus)
    return tune.with_resources(driver, {"cpu": 0, "memory": 1})


def _import(job: Job) -> Callable[..., Any]:
    for entry in reversed(job.entries):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    from tuner.backends.ray import _by_value
    from tuner.config import import_trainable

    _by_value.install()
    return import_trainable(job.trainable)


def _split(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    config = dict(config)
    meta = config.pop(RESERVED, None) or {"id": "trial", "seed": 0}
    return config, meta


def _single(config: dict[str, Any], job: Job) -> None:
    from tuner.backends.ray._user_runs import end_user_runs

    failed = False
    try:
        _run_single(config, job)
    except Exception:
        failed = True  # not Tune's own stop, which is no failure
        raise
    finally:
        end_user_runs(failed)  # the MLflow runs its code left open on this thread


def _run_single(config: dict[str, Any], job: Job) -> None:
    from ray import tune

    from tuner.config import is_tune_class, trainable_style

    fn = _import(job)
    config, meta = _split(config)
    if trainable_style(fn, job.api) == "tune":  # Ray Tune's own session answers its calls
        from tuner.backends.ray._tune_api import returned
        from tuner.backends.ray._tune_class import function_of

        run: Any = function_of(fn) if is_tune_class(fn) else fn  # Ray Tune's class API, as a function
        for metrics in returned(run(config) if inspect.signature(run).parameters else run()):
            tune.report(metrics)  # what it returned or yielded, as Tune takes it
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
    fn(config, trial)  # Tune ends a stopped trial itself: its reports never raise TrialPruned


def _group(config: dict[str, Any], job: Job, workers: int, cpus: float, gpus: float) -> None:
    """One trial on ``workers`` ranks of a worker group this Tune trial owns; rank 0's reports go
    to ``tune.report`` with, for a checkpoint, a Tune checkpoint pointing at it in the study's store."""
    import ray
    from ray import tune

    from tuner.backends.ray import TrialTask, WorkerGroup
    from tuner.storage import CheckpointStore

    config, meta = _split(config)
    group = WorkerGroup(workers, cpus, gpus, list(job.entries), job.trainable, name=f"tuner:{job.study}:{meta['id']}")
    task = TrialTask(
        trial_id=meta["id"],
        trainable=job.trainable,
        config=config,
        seed=meta["seed"],
        max_steps=job.max_steps,
        gpus=gpus,
        store=None if job.store is None else CheckpointStore(job.store),
        checkpoint=_pointer(tune.get_checkpoint()),
        final=job.final,
        strategy=job.strategy,
        api=job.api,
        study=job.study,
    )
    try:
        streams = group.launch(task)
        for ref in streams[0]:
            event = ray.get(ref)
            if event["kind"] == "report":
                _relay(tune, event)
            elif event["kind"] == "error":
                raise TrialFailed(event.get("traceback") or event.get("error") or "the trial failed")
        for stream in streams[1:]:  # every rank's end: an error on another rank fails the trial too
            for ref in stream:
                event = ray.get(ref)
                if event["kind"] == "error":
                    raise TrialFailed(event.get("traceback") or event.get("error") or "the trial failed")
    finally:
        group.close()


class TrialFailed(RuntimeError):
    """A rank's exception, with its traceback as the message (what tuner's diagnosis reads)."""


def _relay(tune: Any, event: dict[str, Any]) -> None:
    out = {**event["metrics"], "step": event["step"]}
    path = event.get("checkpoint_path")
    if path is None:
        tune.report(out)
        return
    with tempfile.TemporaryDirectory(prefix="tuner-ckpt-") as folder:
        (Path(folder) / POINTER).write_text(str(path))
        tune.report({**out, "checkpoint_path": str(path)}, checkpoint=tune.Checkpoint.from_directory(folder))


def _pointer(checkpoint: Any) -> str | None:
    """The path in the study's store that a group trial's Tune checkpoint points at."""
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        path = Path(folder) / POINTER
        return path.read_text().strip() if path.exists() else None


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
        record: dict[str, Any] = self._kept or {"metrics": {}}
        out = {**record["metrics"], "step": step}
        state = record.get("checkpoint")
        if state is None:
            self._send(out)
            return
        import torch

        with tempfile.TemporaryDirectory(prefix="tuner-ckpt-") as folder:
            torch.save({"step": step, "state": state}, Path(folder) / STATE)
            self._send(out, checkpoint=self._make(folder))
