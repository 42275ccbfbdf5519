"""A results folder as tuner's two tables, whoever wrote it: what ``results``, ``best`` and
``report`` read.

A tuner study's folder holds them (``trials.parquet``, ``history.parquet``). A Ray Tune
experiment's trials are converted: one row per trial with its status, ``params_<name>`` for
each configuration value (nested keys joined by ``.``), ``value`` and ``best_value`` of the
metric, ``metric_<name>`` for the last value of every metric it reported, and one history row
per result with ``step`` its ``training_iteration`` and ``time_s`` its ``time_total_s``.
Tune records no difference between a trial its scheduler stopped and one that ran to its end:
a ``TERMINATED`` trial that stopped short of the furthest trial's ``training_iteration`` is
shown as ``pruned``, an ``ERROR`` one as ``errored``, any other as ``stopped``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from tuner.errors import UserError
from tuner.results._analysis import TrialResult
from tuner.results._best import ranked
from tuner.results._load import load
from tuner.results._scopes import flat
from tuner.results._store import BEST, STUDY, TRIALS, load_history, load_results, missing, objectives
from tuner.space import flatten
from tuner.status import ERRORED, FINISHED, PRUNED, STOPPED

# What Tune adds to every result (and the configuration): not the trainable's metrics.
TUNE_KEYS = {
    "timestamp", "checkpoint_dir_name", "should_checkpoint", "done", "training_iteration", "trial_id", "date",
    "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip", "config", "time_since_restore",
    "iterations_since_restore", "timesteps_since_restore", "timesteps_total", "episodes_total",
    "experiment_id", "experiment_tag", "warmup_time",
}  # fmt: skip
FLAGS = "--metric NAME --mode min|max"


@dataclass(frozen=True)
class Tables:
    folder: Path
    trials: pd.DataFrame  # the columns of trials.parquet
    history: pd.DataFrame  # the columns of history.parquet
    metric: str | None  # None: a study with no metric
    maximize: bool
    tune: bool = False  # converted from a Ray Tune experiment
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)  # by trial id (a Tune experiment's)

    def best(self) -> dict[str, Any] | None:
        """tuner's best trial as ``best.yaml`` holds it (``trial_id``, ``metric``, ``config``,
        ``status``, ``step``): a study's own ``best.yaml``; for a Tune experiment, chosen by the
        same rule (:func:`ranked`: trials that ran furthest first). ``None`` when there is none."""
        if not self.tune:
            path = self.folder / BEST
            return yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
        order = ranked(self.trials, self.maximize)
        if order.empty:
            return None
        row = order.iloc[0]
        goal = "maximize" if self.maximize else "minimize"
        return {
            "trial_id": str(row["trial_id"]),
            "metric": {"name": self.metric, "goal": goal, "value": float(row["value"])},
            "config": self.configs[str(row["trial_id"])],
            "status": str(row["status"]),
            "step": None if missing(row["step"]) else int(row["step"]),
        }


def read_tables(folder: str | os.PathLike[str], metric: str | None = None, mode: str | None = None) -> Tables:
    """The tables of ``folder``; ``metric`` and ``mode`` (``min`` or ``max``) name the metric of
    a Ray Tune experiment that recorded none (a tuner study has its own: they are refused)."""
    path = Path(folder)
    if (path / TRIALS).is_file():
        study = yaml.safe_load((path / STUDY).read_text(encoding="utf-8")) if (path / STUDY).is_file() else None
        if metric is not None or mode is not None:
            raise UserError(f"--metric and --mode are for a Ray Tune experiment; {folder} is a tuner study's results")
        if study is None:
            raise UserError(f"{folder}: not a tuner results folder (no {STUDY})")
        found = objectives(study)
        name, maximize = found[0] if found else (None, False)
        return Tables(path, load_results(path), load_history(path), name, maximize)
    analysis = load(path)
    metric = metric or analysis.default_metric
    mode = mode or analysis.default_mode
    if not metric or mode not in ("min", "max"):
        raise UserError(f"{folder}: this Ray Tune experiment records no metric and mode; pass {FLAGS}")
    return _converted(Path(analysis.experiment_path), analysis.trials, metric, mode == "max")


def _converted(folder: Path, trials: list[TrialResult], metric: str, maximize: bool) -> Tables:
    furthest = max((_iteration(t) for t in trials), default=0)
    rows, history = [], []
    for t in trials:
        results = [{str(k): v for k, v in r.items()} for r in t.metric_history.to_dict("records")]
        for r in results:
            history.append({"trial_id": t.trial_id, "step": r.get("training_iteration"),
                            "time_s": r.get("time_total_s"), **_metrics(r)})  # fmt: skip
        values = [r[metric] for r in results if _number(r.get(metric))]
        finite = [v for v in values if math.isfinite(v)]
        last = flat(t.metrics)
        rows.append(
            {
                "trial_id": t.trial_id,
                "status": _status(t, furthest),
                "value": t.metric_analysis.get(metric, {}).get("last"),
                "best_value": (max(finite) if maximize else min(finite)) if finite else None,
                "step": _iteration(t) or None,
                "iterations": len(results),
                "wall_s": last.get("time_total_s"),
                "error": None if t.error is None else getattr(t.error, "line", str(t.error)),
                **{f"params_{k}": v for k, v in _flat_config(t.config).items()},
                **{f"metric_{k}": v for k, v in _metrics(last).items()},
            }
        )
    trials_frame = pd.DataFrame(rows, columns=None if rows else ["trial_id", "status", "value", "step"])
    history_frame = pd.DataFrame(history, columns=None if history else ["trial_id", "step", "time_s"])
    configs = {t.trial_id: t.config for t in trials}
    return Tables(folder, trials_frame, history_frame, metric, maximize, tune=True, configs=configs)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _iteration(trial: TrialResult) -> int:
    value = trial.metrics.get("training_iteration")
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _status(trial: TrialResult, furthest: int) -> str:
    if trial.status == "TERMINATED":
        return PRUNED if 0 < _iteration(trial) < furthest else FINISHED
    return ERRORED if trial.status == "ERROR" else STOPPED


def _metrics(result: dict[str, Any]) -> dict[str, Any]:
    """A flat result's own metrics: numbers the trainable reported, none of Tune's keys."""
    return {
        k: v
        for k, v in flat(result).items()
        if k not in TUNE_KEYS and not k.startswith("config/") and (_number(v) or isinstance(v, bool))
    }


def _flat_config(config: dict[str, Any]) -> dict[str, Any]:
    """A configuration as ``params_`` columns take it: nested keys joined by ``.``, values that
    parquet cannot hold in a column (lists, dicts) written as text."""
    plain = (int, float, str, bool, type(None))
    return {k: v if isinstance(v, plain) else repr(v) for k, v in flatten(config).items()}
