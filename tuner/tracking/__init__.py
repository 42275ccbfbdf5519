"""Where a study's trials are written besides its results folder: MLflow, W&B, TensorBoard.

A :class:`Tracker` is told of the study, each trial's start, reports and end, and the study's
end, always from the driver (workers need no access to the tracking server). The study file's
``tracking:`` block names the trackers; :func:`open_tracking` makes them, each importing its
library only then. A new tracker is one module here and one line in :data:`TRACKERS`.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuner.config import Study
from tuner.tracking._base import StudyInfo, Tracker, TrialInfo, finite, scalar_params, whole_step
from tuner.tracking._fanout import STATE_FILE, Tracking, read_state

# name -> "module:class", imported when a study uses it
TRACKERS = {
    "mlflow": "tuner.tracking._mlflow:MlflowTracker",
    "wandb": "tuner.tracking._wandb:WandbTracker",
    "tensorboard": "tuner.tracking._tensorboard:TensorboardTracker",
    "callbacks": "tuner.tracking._tune_callbacks:TuneCallbacks",
}


def create(name: str, options: Any, state: dict[str, Any] | None = None) -> Tracker:
    """The tracker called ``name`` (a key of :data:`TRACKERS`) with its options."""
    if name not in TRACKERS:
        raise ValueError(f"unknown tracker {name!r}; trackers: {', '.join(TRACKERS)}")
    module, _, cls = TRACKERS[name].partition(":")
    tracker: Tracker = getattr(importlib.import_module(module), cls)(options, state or {})
    return tracker


def study_info(study: Study, folder: Path, seed: int | None) -> StudyInfo:
    spec = study.spec
    metric = study.metric if getattr(spec, "metric", None) is not None else None
    return StudyInfo(
        name=study.name,
        folder=folder,
        metric=metric,
        goal="maximize" if metric is not None and study.maximize else "minimize",
        seed=seed,
        method=spec.method,
        backend=spec.backend,
        description=spec.description,
        trainable=study.trainable,
    )


def open_tracking(study: Study, folder: Path, seed: int | None, say: Callable[[str], None]) -> Tracking | None:
    """The trackers ``study``'s file names, continuing the runs a resumed study's folder
    records; ``None`` when it names none."""
    names = study.spec.tracking.names
    if not names:
        return None
    state = read_state(folder)
    options = study.spec.tracking
    trackers = {name: functools.partial(create, name, getattr(options, name), state.get(name)) for name in names}
    return Tracking(study_info(study, folder, seed), trackers, say)


__all__ = [
    "STATE_FILE",
    "TRACKERS",
    "StudyInfo",
    "Tracker",
    "Tracking",
    "TrialInfo",
    "create",
    "finite",
    "open_tracking",
    "read_state",
    "scalar_params",
    "study_info",
    "whole_step",
]
