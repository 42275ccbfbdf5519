"""``tuner.load``: a results folder, ours or Ray Tune's, as an :class:`Analysis`."""

from __future__ import annotations

import os
from pathlib import Path

from tuner.errors import UserError
from tuner.results._analysis import Analysis
from tuner.results._store import TRIALS
from tuner.results._study_folder import read_study_folder
from tuner.results._tune_folder import STATE, is_tune_folder, read_tune_folder


def load(path: str | os.PathLike[str], default_metric: str | None = None, default_mode: str | None = None) -> Analysis:
    """The trials of a tuner results folder (any backend's) or of a Ray Tune experiment folder
    (the ``storage_path/name`` a ``ray.tune.Tuner`` wrote, or its ``experiment_state-*.json``),
    with Ray Tune's ``ExperimentAnalysis`` methods. The default metric and mode are the study's
    metric and goal, or the Tune experiment's ``TuneConfig``'s; ``default_metric`` and
    ``default_mode`` replace them, as ``ExperimentAnalysis(path, default_metric=..., default_mode=...)``
    does."""
    folder = Path(path)
    if (folder / TRIALS).is_file():
        trials, metric, mode = read_study_folder(folder)
        return Analysis(folder, trials, default_metric or metric, default_mode or mode)
    if is_tune_folder(folder):
        where, trials, metric, mode = read_tune_folder(folder)
        return Analysis(where, trials, default_metric or metric, default_mode or mode)
    raise UserError(f"{path}: not a tuner results folder (no {TRIALS}) nor a Ray Tune experiment folder (no {STATE})")
