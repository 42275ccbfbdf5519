"""A study's results as TensorBoard runs: one per trial, its learning curves, and its parameters
and final metrics in the HParams view, written from the saved history by the same tracker a
study's ``tracking: {tensorboard: ...}`` writes with as it runs."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from tuner.config import TensorboardOptions
from tuner.results._tables import read_tables
from tuner.tracking import StudyInfo, TrialInfo, create

SKIP = {"trial_id", "step", "time_s"}


def write_tensorboard(
    results: str | os.PathLike[str], out: str | os.PathLike[str], metric: str | None = None, mode: str | None = None
) -> Path:
    """Write ``out/<trial_id>/`` for every trial of the study at ``results`` (or of a Ray Tune
    experiment, see :func:`~tuner.results.read_tables`); returns ``out``."""
    tables = read_tables(results, metric, mode)
    trials, history = tables.trials, tables.history
    folder = Path(out)
    tracker = create("tensorboard", TensorboardOptions(dir=str(folder)))
    tracker.study_started(StudyInfo(name=Path(results).name, folder=Path(results), metric=metric))
    metrics = [c for c in history.columns if c not in SKIP]
    for _, trial in trials.iterrows():
        trial_id = str(trial["trial_id"])
        params = {str(k).removeprefix("params_"): trial[k] for k in trials.columns if str(k).startswith("params_")}
        finals = {
            str(k).removeprefix("metric_"): float(trial[k])
            for k in trials.columns
            if str(k).startswith("metric_") and pd.notna(trial[k])
        }
        tracker.trial_started(TrialInfo(trial_id, params))
        for index, (_, row) in enumerate(history[history["trial_id"] == trial_id].iterrows(), start=1):
            values = {name: float(row[name]) for name in metrics if pd.notna(row[name])}
            tracker.trial_reported(trial_id, float(row["step"]), values, index)
        tracker.trial_ended(TrialInfo(trial_id, params, status=str(trial["status"]), metrics=finals))
    tracker.study_ended(None, [])
    return folder
