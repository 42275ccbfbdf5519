"""A study's results as TensorBoard runs: one per trial, its learning curves, and its parameters
and final metrics in the HParams view (written with tensorboardX, from the saved history)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from tuner.results._tables import read_tables

SKIP = {"trial_id", "step", "time_s"}


def _scalar(value: Any) -> bool:
    return isinstance(value, int | float | bool | str) and not (isinstance(value, float) and math.isnan(value))


def write_tensorboard(
    results: str | os.PathLike[str], out: str | os.PathLike[str], metric: str | None = None, mode: str | None = None
) -> Path:
    """Write ``out/<trial_id>/`` for every trial of the study at ``results`` (or of a Ray Tune
    experiment, see :func:`~tuner.results.read_tables`); returns ``out``."""
    from tensorboardX import SummaryWriter
    from tensorboardX.summary import hparams

    tables = read_tables(results, metric, mode)
    trials, history = tables.trials, tables.history
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    metrics = [c for c in history.columns if c not in SKIP]
    for _, trial in trials.iterrows():
        trial_id = str(trial["trial_id"])
        params = {str(k).removeprefix("params_"): trial[k] for k in trials.columns if str(k).startswith("params_")}
        params = {k: (v.item() if hasattr(v, "item") else v) for k, v in params.items() if _scalar(v)}
        params["status"] = str(trial["status"])
        finals = {
            f"hparam/{str(k).removeprefix('metric_')}": float(trial[k])
            for k in trials.columns
            if str(k).startswith("metric_") and pd.notna(trial[k])
        }
        with SummaryWriter(logdir=str(folder / trial_id)) as writer:
            for _, row in history[history["trial_id"] == trial_id].iterrows():
                for name in metrics:
                    if pd.notna(row[name]):
                        writer.add_scalar(name, float(row[name]), int(row["step"]))
            exp, ssi, sei = hparams(params, finals)
            for summary in (exp, ssi, sei):
                writer.file_writer.add_summary(summary)
            for name, value in finals.items():
                writer.add_scalar(name, value)
    return folder
