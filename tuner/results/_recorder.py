"""Keeps every trial and report of a running study and writes them out as they come."""

from __future__ import annotations

import math
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tuner.config import by_value
from tuner.results._best import best_row
from tuner.results._journal import Journal
from tuner.results._pareto import pareto_mask, select
from tuner.results._store import BEST, HANDED, HISTORY, OLD_NAMES, STUDY, TRIALS, write_frame, write_yaml
from tuner.status import FAILED as FAILED  # re-exported: the Ray engine imports it from here
from tuner.status import RUNNING, STATUSES, Action, Cause, Status
from tuner.tracking import Tracking, TrialInfo

CONFIG = "config/"  # history's columns of the values a step trained with (population-based training)
# What each trial used (tuner.backends.ray._usage): the largest rank's memory, all ranks' CPU seconds,
# the GPU's busy fraction (the whole device's) and the trial's own share, and why a GPU figure is missing.
USAGE = (
    "peak_rss_mb",
    "cpu_s",
    "peak_gpu_mb",
    "peak_gpu_reserved_mb",
    "gpu_device_busy",
    "gpu_util_own",
    "gpu_util_note",
)


@dataclass
class TrialRecord:
    trial_id: str
    params: dict[str, Any]
    config: dict[str, Any]
    seed: int
    status: Status = RUNNING
    value: float | None = None
    best_value: float | None = None
    step: float | None = None
    iterations: int = 0
    started: float = field(default_factory=time.time)
    ended: float | None = None
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    attempts: int = 0  # retries after failures
    stop_s: float | None = None  # from the decision to stop it until all its processes had left
    usage: dict[str, float] = field(default_factory=dict)  # peak_rss_mb, cpu_s, peak_gpu_mb, ... (see USAGE)
    first_report_s: float | None = None  # seconds into the trial of its first and last report
    last_report_s: float | None = None
    interval_s: float = 0.0  # the time between consecutive reports of one attempt, summed
    intervals: int = 0  # how many such intervals (an attempt's clock starts again at 0)
    fresh: bool = True  # the next report is an attempt's first: no interval before it
    suggest_s: float | None = None  # how long the searcher took to propose it
    infra_retries: int = 0  # of the attempts, those caused by a lost node (not the trial's fault)
    leak_mb_per_step: float | None = None  # resident memory growing steadily by this much a report
    cause: Cause | None = None  # why it failed (tuner.diagnose)
    hint: str | None = None  # what to change
    action: Action | None = None  # what the study did about its failure (on_failure: retry, fail, ...)
    nodes: list[str] = field(default_factory=list)  # the Ray node of each rank, last attempt

    @property
    def wall_s(self) -> float:
        return (self.ended or time.time()) - self.started

    @property
    def s_per_step(self) -> float | None:
        """Seconds between consecutive reports of an attempt, on average (a retried or exploiting
        trial's restart, its start-up, is not a step); the first report's when there is one."""
        if self.last_report_s is None or self.first_report_s is None or self.step is None:
            return None
        return self.interval_s / self.intervals if self.intervals else self.first_report_s


def handed_names(study: dict[str, Any]) -> list[str | None]:
    """The names a study file gives objects by (trainable, stopper, Tune search algorithm and callbacks)."""
    tracking, searcher = study.get("tracking"), study.get("searcher")
    callbacks = tracking.get("callbacks", []) if isinstance(tracking, dict) else []
    search_alg = searcher.get("search_alg") if isinstance(searcher, dict) else None
    names = [study.get("trainable"), study.get("stopper"), search_alg, *callbacks]
    return [n if isinstance(n, str) else None for n in names]


class Recorder:
    """In-memory trials and history, flushed to ``folder`` atomically (at most every ``every`` s)."""

    def __init__(
        self,
        folder: Path,
        metric: str | None,
        maximize: bool,
        every: float = 2.0,
        objectives: list[tuple[str, bool]] | None = None,
        select: Any = None,
        tracking: Tracking | None = None,
    ) -> None:
        self.folder = folder
        self.tracking = tracking  # MLflow, W&B, ... (tuner.tracking): told of every trial as it goes
        self.metric = metric
        self.maximize = maximize
        # several: Pareto-optimal trials are flagged; none: a study with no metric, no trial is best
        self.objectives = objectives or ([] if metric is None else [(metric, maximize)])
        self.select = select  # with several, which Pareto-optimal trial is "best" (tuner.config.Select)
        self.every = every
        self.trials: dict[str, TrialRecord] = {}
        self.history: list[dict[str, Any]] = []
        self._curves: dict[str, list[tuple[float, float]]] = {}  # trial -> (step, metric) of its finite reports
        self._flushed = 0.0
        self._dirty = True
        self._gap = every  # seconds between snapshots: grows with the cost of one (large studies)
        self._counts: dict[str, int] = dict.fromkeys(STATUSES, 0)  # trials by status, kept as they change
        self.journal = Journal(folder / "journal.jsonl")
        self.replaying = False  # while ``resume`` replays the journal, nothing is written to it
        # parameters that change during training (population-based training): each report
        # records their values then, and each trial keeps its schedule of them
        self.mutable: list[str] = []
        self.schedules: dict[str, list[tuple[float, dict[str, Any]]]] = {}

    def _log(self, event: dict[str, Any]) -> None:
        self._dirty = True
        if not self.replaying:
            self.journal.write(event)

    def save_study(self, resolved: dict[str, Any]) -> None:
        write_yaml(self.folder / STUDY, resolved)
        handed = by_value.pickled_where_possible(handed_names(resolved))
        if handed:  # objects a Python script handed over: Tuner.restore takes them back
            (self.folder / HANDED).write_bytes(pickle.dumps(handed))

    def start(self, record: TrialRecord) -> None:
        self.trials[record.trial_id] = record
        self._counts[record.status] += 1
        if self.mutable:
            self.schedules[record.trial_id] = [(0, {k: record.params.get(k) for k in self.mutable})]
        self._log(
            {
                "e": "start",
                "trial": record.trial_id,
                "params": record.params,
                "seed": record.seed,
                "t": record.started,
                "suggest_s": record.suggest_s,
            }
        )
        if self.tracking is not None:
            self.tracking.started(_info(record), live=not self.replaying)

    def report(self, trial_id: str, step: float, elapsed: float, metrics: dict[str, float]) -> None:
        rec = self.trials[trial_id]
        rec.iterations += 1
        rec.step = step
        if not rec.fresh and rec.last_report_s is not None and elapsed >= rec.last_report_s:
            rec.interval_s, rec.intervals = rec.interval_s + elapsed - rec.last_report_s, rec.intervals + 1
        rec.fresh = False
        rec.first_report_s = elapsed if rec.iterations == 1 else rec.first_report_s
        rec.last_report_s = elapsed
        rec.metrics.update(metrics)
        value = None if self.metric is None else metrics.get(self.metric)
        if value is not None:
            rec.value = value
            if math.isfinite(value):
                self._curves.setdefault(trial_id, []).append((step, value))
            if math.isfinite(value) and (
                rec.best_value is None or (value > rec.best_value if self.maximize else value < rec.best_value)
            ):
                rec.best_value = value
        values = {f"{CONFIG}{k}": rec.params.get(k) for k in self.mutable}  # the values this step trained with
        self.history.append({"trial_id": trial_id, "step": step, "time_s": elapsed, **metrics, **values})
        self._log({"e": "report", "trial": trial_id, "step": step, "time": elapsed, "metrics": metrics})
        if self.tracking is not None:
            self.tracking.reported(trial_id, step, metrics, live=not self.replaying)

    def curve(self, trial_id: str) -> tuple[tuple[float, float], ...]:
        """A trial's learning curve: ``(step, metric)`` for each finite report, rewinds applied."""
        return tuple(self._curves.get(trial_id, ()))

    def checkpoint(self, trial_id: str, step: float, path: str) -> None:
        self._log({"e": "ckpt", "trial": trial_id, "step": step, "path": path})

    def placed(self, trial_id: str, nodes: list[str]) -> None:
        """Where a trial's ranks run (recorded at each start)."""
        self.trials[trial_id].nodes = list(nodes)
        self._log({"e": "placed", "trial": trial_id, "nodes": nodes})

    def rewind(self, trial_id: str, step: float | None, error: str | None = None, cause: Cause | None = None) -> None:
        """Forget a trial's reports after ``step`` (all of them for ``None``): it resumes from there.
        ``cause``: ``node_lost`` for a retry the infrastructure caused."""
        event = {"e": "retry", "trial": trial_id, "step": step, "error": error}
        self._log({**event, "cause": cause} if cause else event)
        if self.tracking is not None and not self.replaying:
            self.tracking.rewound(trial_id)
        replaying, self.replaying = self.replaying, True
        own = [h for h in self.history if h["trial_id"] == trial_id and step is not None and h["step"] <= step]
        self.history = [h for h in self.history if h["trial_id"] != trial_id]
        self._curves.pop(trial_id, None)
        rec = self.trials[trial_id]
        rec.iterations, rec.step, rec.value, rec.best_value, rec.metrics = 0, None, None, None, {}
        rec.first_report_s = rec.last_report_s = None
        rec.interval_s, rec.intervals, rec.fresh = 0.0, 0, True
        for row in own:
            metrics = {k: v for k, v in row.items() if k not in ("trial_id", "step", "time_s")}
            values = {k: metrics.pop(k) for k in list(metrics) if k.startswith(CONFIG)}
            self.report(trial_id, row["step"], row["time_s"], metrics)
            self.history[-1].update(values)
        rec.fresh = True  # the attempt that goes on from here starts its clock again
        self.replaying = replaying

    def exploit(self, event: dict[str, Any]) -> None:
        """A trial takes on new values at ``donor_step`` (from its donor's checkpoint there, or
        its own): journaled, its configuration changed, its schedule the donor's up to that step."""
        from tuner.space import nest

        trial_id, donor, at = event["trial"], event["donor"], event["donor_step"]
        self._log({"e": "exploit", **event})
        rec = self.trials[trial_id]
        rec.params = {**rec.params, **event["new"]}
        rec.config = nest(rec.params)
        before = [(s, v) for s, v in self.schedules.get(donor, []) if s < at]
        self.schedules[trial_id] = [*before, (at, {k: rec.params.get(k) for k in self.mutable})]

    def schedule(self, trial_id: str) -> dict[str, list[list[Any]]]:
        """Each mutable parameter's values over the trial's steps: ``{lr: [[0, 0.01], [10, 0.005]]}``
        (from step 0 until step 10, then from step 10 on), changes only."""
        out: dict[str, list[list[Any]]] = {}
        for at, values in self.schedules.get(trial_id, []):
            for name, value in values.items():
                points = out.setdefault(name, [])
                if not points or points[-1][1] != value:
                    points.append([at, value])
        return out

    def end(
        self,
        trial_id: str,
        status: Status,
        error: str | None = None,
        *,
        at: float | None = None,
        stop_s: float | None = None,
        usage: dict[str, float] | None = None,
        cause: Cause | None = None,
        hint: str | None = None,
    ) -> None:
        """A trial's end, with the cause and hint of a failure as the engine diagnosed it."""
        rec = self.trials[trial_id]
        self._counts[rec.status] -= 1
        self._counts[status] += 1
        rec.status, rec.error = status, error
        rec.ended = at or time.time()
        rec.stop_s = stop_s if stop_s is not None else rec.stop_s
        # the ranks' own figures replace what the reports showed
        figures = {OLD_NAMES.get(k, k): v for k, v in (usage or {}).items() if v is not None}  # an old journal's
        rec.usage = {**rec.usage, **figures}
        rec.cause, rec.hint = cause, hint
        self._log(
            {
                "e": "end",
                "trial": trial_id,
                "status": status,
                "error": error,
                "t": rec.ended,
                "stop_s": rec.stop_s,
                "usage": rec.usage,
                "cause": rec.cause,
                "hint": rec.hint,
            }
        )
        if self.tracking is not None:
            self.tracking.ended(_info(rec), live=not self.replaying)

    def leak(self, trial_id: str, mb_per_step: float) -> None:
        self.trials[trial_id].leak_mb_per_step = mb_per_step
        self._log({"e": "leak", "trial": trial_id, "mb": mb_per_step})

    def counts(self) -> dict[str, int]:
        return dict(self._counts)

    def _row(self, rec: TrialRecord) -> dict[str, Any]:
        return {
            "trial_id": rec.trial_id,
            "status": rec.status,
            "value": rec.value,
            "best_value": rec.best_value,
            "step": rec.step,
            "iterations": rec.iterations,
            "wall_s": round(rec.wall_s, 3),
            "seed": rec.seed,
            "attempts": rec.attempts,
            "stop_s": rec.stop_s,
            **{name: rec.usage.get(name) for name in USAGE},
            "s_per_step": None if rec.s_per_step is None else round(rec.s_per_step, 4),
            "suggest_s": rec.suggest_s,
            "infra_retries": rec.infra_retries,
            "nodes": ",".join(dict.fromkeys(rec.nodes)),
            "error": rec.error,
            "cause": rec.cause,
            "hint": rec.hint,
            "on_failure": rec.action,
            "leak_suspected": rec.leak_mb_per_step is not None,
            "leak_mb_per_step": rec.leak_mb_per_step,
            **{f"params_{k}": v for k, v in rec.params.items()},
            **{f"metric_{k}": v for k, v in rec.metrics.items()},
        }

    def trials_frame(self) -> pd.DataFrame:
        return _frame([self._row(rec) for rec in self.trials.values()], self.objectives)

    def best(self) -> TrialRecord | None:
        """The best trial: with several objectives, the Pareto-optimal one ``select`` picks (by
        default the best on the first objective), while none finished: as for one."""
        frame = self.trials_frame()
        if len(self.objectives) > 1:
            row, _ = select(frame, self.objectives, self.select)
            if row is not None:
                return self.trials[str(row["trial_id"])]
        row = best_row(frame, self.maximize)
        return None if row is None else self.trials[str(row["trial_id"])]

    def snapshot(self, force: bool = False) -> Callable[[], None] | None:
        """The results files as they stand, as a job that writes them (on any thread), or ``None``
        when nothing changed or the last snapshot is under ``every`` seconds old. Taking it is
        cheap; building the tables and writing them is the job's."""
        now = time.monotonic()
        if not force and (not self._dirty or now - self._flushed < self._gap):
            return None
        self._flushed, self._dirty = now, False
        rows = [self._row(rec) for rec in self.trials.values()]
        history = list(self.history)
        folder, journal, objectives = self.folder, self.journal, self.objectives

        def write() -> None:
            journal.sync()
            write_frame(folder / TRIALS, _storable(_frame(rows, objectives)))
            write_frame(
                folder / HISTORY, pd.DataFrame(history, columns=None if history else ["trial_id", "step", "time_s"])
            )
            # A snapshot rewrites every row: with many trials, space them so that they take at
            # most a tenth of the time (the journal holds every event meanwhile).
            self._gap = max(self.every, 10 * (time.monotonic() - now)) if self.every else 0.0

        return write

    def flush(self, force: bool = False) -> bool:
        """Write the snapshot files now (see :meth:`snapshot`); ``False`` when there was nothing to do."""
        job = self.snapshot(force)
        if job is not None:
            job()
        return job is not None

    def finish(
        self, study_info: dict[str, Any], checkpoint_of: Callable[[str], str | None] | None = None
    ) -> TrialRecord | None:
        """Final write; ``best.yaml`` only when a best trial exists. The trackers are told the end."""
        self.flush(force=True)
        best = self.best()
        if self.tracking is not None:
            running = [t for t, r in self.trials.items() if r.status == RUNNING]
            self.tracking.close(None if best is None else _info(best), running)
        if best is not None:
            ckpt = checkpoint_of(best.trial_id) if checkpoint_of else None
            study_info = {**study_info, "checkpoint": str(ckpt) if ckpt else None}
            if self.mutable:
                study_info["schedule"] = self.schedule(best.trial_id)
            write_yaml(
                self.folder / BEST,
                {
                    "trial_id": best.trial_id,
                    "metric": {
                        "name": self.metric,
                        "goal": "maximize" if self.maximize else "minimize",
                        "value": best.value,
                    },
                    "params": best.params,
                    "config": best.config,
                    "seed": best.seed,
                    "status": best.status,
                    "step": best.step,
                    **self._pareto(),
                    **study_info,
                },
            )
        return best

    def _pareto(self) -> dict[str, Any]:
        """With several objectives: the Pareto-optimal trials, and how the best was chosen."""
        if len(self.objectives) < 2:
            return {}
        frame = self.trials_frame()
        _, note = select(frame, self.objectives, self.select)
        front = [self.trials[str(t)] for t in frame.loc[frame["pareto"], "trial_id"]]
        return {
            "objectives": {name: "maximize" if up else "minimize" for name, up in self.objectives},
            "chosen_by": (
                f"select: best {self.select.metric}" + (f" within {self.select.limits}" if self.select.limits else "")
                if self.select is not None
                else f"the best {self.objectives[0][0]} of the Pareto-optimal trials (no select: rule)"
            ),
            **({"select_note": note} if note else {}),
            "pareto": [
                {"trial_id": r.trial_id, **{n: r.metrics.get(n) for n, _ in self.objectives}, "params": dict(r.params)}
                for r in front
            ],
        }


def _info(rec: TrialRecord) -> TrialInfo:
    """What a tracker is told of a trial: a copy, as the trial stands now."""
    return TrialInfo(
        rec.trial_id, dict(rec.params), rec.status, rec.value, rec.step, rec.error, rec.cause, dict(rec.metrics)
    )


def _frame(rows: list[dict[str, Any]], objectives: list[tuple[str, bool]] | None = None) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame(columns=["trial_id", "status", "value", "best_value", "step", "iterations"])
    frame = pd.DataFrame(rows)
    if objectives is not None and len(objectives) > 1:
        frame["pareto"] = pareto_mask(frame, objectives)
    return frame


def _storable(frame: pd.DataFrame) -> pd.DataFrame:
    """Parquet wants one type per column: categorical values that mix types become strings."""
    for col in frame.columns:
        if frame[col].dtype == object:
            kinds = {type(v) for v in frame[col] if v is not None and not (isinstance(v, float) and math.isnan(v))}
            if len(kinds) > 1 or kinds & {list, dict, tuple}:
                frame[col] = frame[col].map(lambda v: None if v is None else repr(v) if not isinstance(v, str) else v)
    return frame
