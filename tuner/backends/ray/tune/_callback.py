"""What Ray Tune decides, written where tuner writes it: a Tune callback feeding the study's
:class:`tuner.results.Recorder` (journal, ``trials.parquet``, ``history.parquet``), a scheduler
that remembers which trials it stopped (and its rungs across ``Tuner.restore``), and a stopper
for what tuner stops that Tune does not (a NaN metric, too many failed trials, a reached target).
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ray.tune import Callback, Stopper
from ray.tune.schedulers import ASHAScheduler, MedianStoppingRule, TrialScheduler

from tuner.backends.ray import numeric
from tuner.backends.ray.tune._trainable import POINTER, RESERVED
from tuner.config import Asha, Hyperband, Median, Pb2, Pbt, Stopping, Study
from tuner.diagnose import diagnose
from tuner.results import Recorder, TrialRecord, read_journal
from tuner.space import flatten
from tuner.status import ERRORED, FINISHED, NAN, PRUNED, STOPPED, Status

# What Tune adds to every result: kept out of a trial's metrics.
AUTO = frozenset(
    (
        "done",
        "training_iteration",
        "trial_id",
        "date",
        "timestamp",
        "time_this_iter_s",
        "time_total_s",
        "time_since_restore",
        "iterations_since_restore",
        "timesteps_total",
        "timesteps_since_restore",
        "episodes_total",
        "pid",
        "hostname",
        "node_ip",
        "config",
        "experiment_tag",
        "should_checkpoint",
        "checkpoint_dir_name",
        "step",
    )
)


@dataclass
class TuneStudy:
    """What this process knows of a study running on Tune. Never pickled: Tune pickles its callbacks,
    scheduler and stopper with the Tuner (for ``Tuner.restore``), so they hold only the key."""

    study: Study
    recorder: Recorder
    pruned: set[str] = field(default_factory=set)  # tuner ids the scheduler stopped early
    nan: set[str] = field(default_factory=set)  # stopped for a NaN or infinite metric
    enough: set[str] = field(default_factory=set)  # finished by a criterion of the study's stop:
    failed: int = 0
    halt: str | None = None  # why the study stopped starting trials
    checkpoints: dict[str, str] = field(default_factory=dict)  # tuner id -> its last checkpoint
    max_steps: float | None = None  # a trial's budget (the scheduler's max_t, or train's epochs)
    time_attr: str = "step"
    deadline: float | None = None  # time.monotonic() at which time_limit is reached
    store: str | None = None  # the study's checkpoint store (a population copies a group trial's donor there)
    stopper: Stopping | None = None  # the study's stopper: (re-)imported by this process, never pickled
    say: Callable[[str], None] | None = None  # the study's notices
    unreported: set[str] = field(default_factory=set)  # stop's metrics a result lacked: said once


LIVE: dict[str, TuneStudy] = {}  # by results folder


def ours_of(result: dict[str, Any], trial_id: str) -> str:
    """The tuner id of the trial a Tune result is of (Tune's id when its config has none)."""
    return str(((result.get("config") or {}).get(RESERVED) or {}).get("id", trial_id))


def ours(trial: Any) -> str:
    """The tuner id (``t0001``) of a Tune trial."""
    return str(trial.config[RESERVED]["id"])


def metrics_of(result: dict[str, Any], keep: frozenset[str] = frozenset()) -> dict[str, float]:
    """The numbers a trial reported, named as the default backend names them (nested dicts as
    ``outer/inner``); Tune's own keys but ``keep``, and anything not a number, left out."""
    return numeric({k: v for k, v in result.items() if k != RESERVED and (k not in AUTO or k in keep)})


def make_scheduler(study: Study, time_attr: str, key: str, slots: int | None = None) -> TrialScheduler | None:
    """Ray's own scheduler for the study's ``early_terminate``, as the engine's is configured
    (hyperband: the engine's W&B rule behind Tune's interface; pbt, pb2: Ray's, recording each
    exploit, with at most ``slots`` members running at a time)."""
    sched, metric = study.spec.scheduler, study.metric
    if sched is None or metric is None:  # a study without a metric has no early_terminate
        return None
    mode = "max" if study.maximize else "min"
    if isinstance(sched, Asha):
        return _Asha(
            key=key,
            time_attr=time_attr,
            metric=metric,
            mode=mode,
            max_t=sched.max_t if sched.max_t is not None else 100,
            grace_period=sched.grace_period,
            reduction_factor=sched.reduction_factor,
            brackets=sched.brackets,
        )
    if isinstance(sched, Hyperband):
        from tuner.backends.ray.tune._hyperband import TuneHyperband

        return TuneHyperband(key=key, time_attr=time_attr, metric=metric, mode=mode, spec=sched)
    if isinstance(sched, Pbt | Pb2):
        from tuner.backends.ray.tune._pbt import population_scheduler

        return population_scheduler(study, sched, time_attr, key, slots)
    if isinstance(sched, Median):
        return _Median(
            key=key,
            time_attr=time_attr,
            metric=metric,
            mode=mode,
            grace_period=sched.grace_period,
            min_samples_required=sched.min_samples_required,
        )
    return None


class _Asha(ASHAScheduler):
    """Ray's ASHA over tuner ids; remembers the trials it stopped early, and rebuilds its rungs from
    the study's journal when ``Tuner.restore`` brings it back (Tune itself does not save them)."""

    def __init__(self, *, key: str, **options: Any) -> None:
        super().__init__(**options)
        self.key = key
        self.replayed = False

    def _proxy(self, trial: Any) -> Any:
        if not self.replayed:
            self.replayed = True
            self._replay()
        return SimpleNamespace(trial_id=ours(trial))

    def _replay(self) -> None:
        nobody: Any = None  # no controller: nothing is started or stopped, the rungs only fill
        for ev in read_journal(Path(self.key)):
            proxy: Any = SimpleNamespace(trial_id=ev.get("trial"))
            if ev.get("e") == "start" and proxy.trial_id not in self._trial_info:
                super().on_trial_add(nobody, proxy)
            elif ev.get("e") == "report" and proxy.trial_id in self._trial_info:
                value = ev["metrics"].get(self._metric)
                if value is not None:
                    super().on_trial_result(nobody, proxy, {self._time_attr: ev["step"], self._metric: value})
            elif ev.get("e") == "end" and proxy.trial_id in self._trial_info:
                super().on_trial_remove(nobody, proxy)

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        proxy = self._proxy(trial)
        if proxy.trial_id not in self._trial_info:
            super().on_trial_add(tune_controller, proxy)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        proxy = self._proxy(trial)
        if proxy.trial_id not in self._trial_info:
            super().on_trial_add(tune_controller, proxy)
        decision = super().on_trial_result(tune_controller, proxy, result)
        if decision == TrialScheduler.STOP and result.get(self._time_attr, 0) < self._max_t:
            LIVE[self.key].pruned.add(proxy.trial_id)
        return str(decision)

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> None:
        proxy = self._proxy(trial)
        if proxy.trial_id in self._trial_info:
            super().on_trial_complete(tune_controller, proxy, result)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        proxy = self._proxy(trial)
        if proxy.trial_id in self._trial_info:
            super().on_trial_remove(tune_controller, proxy)


class _Median(MedianStoppingRule):
    """Ray's median stopping rule; remembers the trials it stopped."""

    def __init__(self, *, key: str, **options: Any) -> None:
        super().__init__(**options)
        self.key = key

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        if decision == TrialScheduler.STOP:
            LIVE[self.key].pruned.add(ours(trial))
        return str(decision)


class Judge(Stopper):
    """Stops what tuner stops and Tune would not: a trial at its budget without a scheduler to stop
    it, a trial whose metric is NaN or infinite, one that meets a criterion of the study's
    ``stop:`` (as Tune's own ``stop=`` would), and the whole study past ``max_failed_trials``
    failed trials. The study's ``stopper`` is asked at every result with a finite metric (as a
    ``CombinedStopper`` asks each of its stoppers) before the budget and ``stop:``; its
    ``stop_all()`` ends the study."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        live = LIVE[self.key]
        tuner_id = ours_of(result, trial_id)
        value = None if live.study.metric is None else result.get(live.study.metric)
        if isinstance(value, numbers.Real) and not math.isfinite(float(value)):
            live.nan.add(tuner_id)
            return True
        if live.stopper is not None and live.stopper.asks(trial_id, result):
            live.enough.add(tuner_id)
            return True
        step = result.get(live.time_attr)
        if live.max_steps is not None and isinstance(step, numbers.Real) and float(step) >= live.max_steps:
            return True  # its whole budget: it ends finished
        stop = live.study.spec.stop
        at = float(step) if isinstance(step, numbers.Real) else 0.0
        if stop is not None and live.say is not None:  # as the engine's judge says it
            for line in stop.unreported(tuner_id, at, result, live.unreported, (k for k in result if k not in AUTO)):
                live.say(line)
        if stop is not None and stop.reached(at, float(result.get("time_total_s") or 0.0), result) is not None:
            live.enough.add(tuner_id)
            return True
        return False

    def stop_all(self) -> bool:
        live = LIVE[self.key]
        limit = live.study.spec.max_failed_trials
        if limit is not None and live.failed > limit and live.halt is None:
            live.halt = f"more than max_failed_trials ({limit}) trials failed"
        if live.deadline is not None and time.monotonic() >= live.deadline and live.halt is None:
            live.halt = "time_limit reached"
        if live.stopper is not None and live.halt is None:
            live.halt = live.stopper.halt()
        return live.halt is not None


class Recording(Callback):
    """Writes each Tune trial's start, reports, checkpoints, retries and end to the study's
    recorder, under the tuner id its config carries."""

    def __init__(self, key: str, time_attr: str) -> None:
        self.key, self.time_attr = key, time_attr

    @property
    def live(self) -> TuneStudy:
        return LIVE[self.key]

    def _record(self, trial: Any) -> TrialRecord:
        trial_id, recorder = ours(trial), self.live.recorder
        rec = recorder.trials.get(trial_id)
        if rec is None:
            config = {k: v for k, v in trial.config.items() if k != RESERVED}
            rec = TrialRecord(
                trial_id=trial_id,
                params=flatten(config),
                config=config,
                seed=int(trial.config[RESERVED]["seed"]),
                started=time.time(),
            )
            recorder.start(rec)
        return rec

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        rec = self._record(trial)
        if rec.iterations:  # continued by Tuner.restore from its last checkpoint
            self.live.recorder.rewind(rec.trial_id, _restored_step(trial, rec), "resumed")

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        rec = self._record(trial)
        step = result.get(self.time_attr, result.get("training_iteration"))
        # a Ray Tune trainable's step is its training_iteration: kept, as the default engine keeps it
        keep = frozenset({self.time_attr}) if self.time_attr == "training_iteration" else frozenset()
        metrics = metrics_of(result, keep)
        if step is None or not metrics:
            return
        self.live.recorder.report(rec.trial_id, step, float(result.get("time_total_s") or 0.0), metrics)
        path = result.get("checkpoint_path")  # a group trial's checkpoint, in the study's store
        if isinstance(path, str):
            self._checkpoint(rec.trial_id, step, path)

    def on_checkpoint(self, iteration: int, trials: list[Any], trial: Any, checkpoint: Any, **info: Any) -> None:
        rec = self._record(trial)
        if not (Path(checkpoint.path) / POINTER).exists():  # a group trial's: recorded where it points
            self._checkpoint(rec.trial_id, rec.step or 0.0, checkpoint.path)

    def _checkpoint(self, trial_id: str, step: float, path: str) -> None:
        self.live.checkpoints[trial_id] = path
        self.live.recorder.checkpoint(trial_id, step, path)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        rec, live = self._record(trial), self.live
        if rec.trial_id in live.nan:
            error = f"{live.study.metric} is {rec.metrics.get(str(live.study.metric))}"
            found = diagnose(NAN, error, rec.config)
            live.recorder.end(rec.trial_id, NAN, error, cause=found.cause if found else None)
            return
        status: Status = PRUNED if rec.trial_id in live.pruned else FINISHED
        if live.halt is not None and status == FINISHED and not _reached_end(live, rec):
            status = STOPPED
        live.recorder.end(rec.trial_id, status)

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        rec = self._record(trial)
        error, detail = _error_of(trial)
        found = diagnose(ERRORED, error, rec.config, detail)
        rec.attempts += 1
        self.live.recorder.rewind(rec.trial_id, _restored_step(trial, rec), error, found.cause if found else None)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        rec = self._record(trial)
        error, detail = _error_of(trial)
        found = diagnose(ERRORED, error, rec.config, detail)
        self.live.failed += 1
        self.live.recorder.end(
            rec.trial_id, ERRORED, error, cause=found.cause if found else None, hint=found.hint if found else None
        )

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        """Tune stops the running trials of a halted study without telling its callbacks: they
        end stopped, as the engine ends them (an interrupted study leaves them running)."""
        live = self.live
        if live.halt is None:
            return
        why = "stopped at the time limit" if live.halt == "time_limit reached" else f"stopped: {live.halt}"
        for trial in trials:
            rec = live.recorder.trials.get(ours(trial))
            if rec is not None and rec.status == "running":
                live.recorder.end(rec.trial_id, STOPPED, why)

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        snapshot = self.live.recorder.snapshot()
        if snapshot is not None:
            snapshot()


def _reached_end(live: TuneStudy, rec: TrialRecord) -> bool:
    if rec.trial_id in live.enough:
        return True
    sched = live.study.spec.scheduler
    max_t = getattr(sched, "max_t", None)
    return max_t is None or (rec.step is not None and rec.step >= max_t)


def _restored_step(trial: Any, rec: TrialRecord) -> float | None:
    """The step a trial continues from: its last checkpoint's (none: from the start)."""
    checkpoint = getattr(getattr(trial, "run_metadata", None), "checkpoint_manager", None)
    latest = getattr(checkpoint, "latest_checkpoint_result", None)
    metrics = getattr(latest, "metrics", None) or {}
    step = metrics.get("step", metrics.get("training_iteration"))
    return None if step is None else float(step)


def _error_of(trial: Any) -> tuple[str, str]:
    """The exception that ended a trial: its last line, and the whole traceback."""
    path = getattr(trial, "error_file", None)
    text = ""
    if path and Path(path).exists():
        text = Path(path).read_text(errors="replace").strip()
    text = text or str(getattr(trial, "error_msg", "") or "the trial failed")
    lines = [line for line in text.splitlines() if line.strip()]
    return (lines[-1] if lines else text), text
