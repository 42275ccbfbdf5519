"""``tuner.load``: a results folder, ours or Ray Tune's, as an :class:`Analysis`."""

from __future__ import annotations

import os
from pathlib import Path

from tuner.errors import ResultsError, ResultsMissing, UserError
from tuner.results._analysis import Analysis, TrialResult
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


def load_trial(path: str | os.PathLike[str], trial_id: str | None = None) -> TrialResult:
    """One trial of a results folder: a Ray Tune trial's folder (``Result.from_path``), or a tuner
    results folder and the trial's id (its trials share the folder)."""
    folder = Path(path)
    if not folder.is_dir():
        raise ResultsMissing(f"{path}: no such trial folder")
    if (folder / TRIALS).is_file():
        trials = load(folder).trials
        if trial_id is None and len(trials) == 1:
            return trials[0]
        found = [t for t in trials if t.trial_id == trial_id]
        if not found:
            ids = ", ".join(t.trial_id for t in trials[:5]) + (", ..." if len(trials) > 5 else "")
            asked = f"no trial {trial_id!r} in it" if trial_id else f"it holds {len(trials)} trials"
            raise ResultsError(f"{path}: a tuner results folder, {asked}: pass trial_id= one of {ids}")
        return found[0]
    if is_tune_folder(folder.parent):
        for trial in load(folder.parent).trials:
            if Path(trial.path).resolve() == folder.resolve() and trial_id in (None, trial.trial_id):
                return trial
    raise ResultsMissing(
        f"{path}: not a trial of a Ray Tune experiment (its parent has no {STATE}) "
        f"nor a tuner results folder (no {TRIALS})"
    )
