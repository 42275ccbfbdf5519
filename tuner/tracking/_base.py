"""What a tracker is told of a study, and in what order."""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class StudyInfo:
    """The study a tracker writes: its name, results folder and objective (``metric`` ``None``
    for a study without one)."""

    name: str
    folder: Path
    metric: str | None = None
    goal: str = "minimize"
    seed: int | None = None
    method: str = ""
    backend: str = ""
    description: str | None = None
    trainable: str = ""  # its dotted name


@dataclass(frozen=True)
class TrialInfo:
    """A trial as it stands when a tracker is told of it (a copy: the study goes on meanwhile).

    ``status`` is one of :data:`tuner.status.STATUSES`; ``cause`` says why a failed trial failed
    (:mod:`tuner.diagnose`); ``metrics`` holds the last value of each metric it reported."""

    trial_id: str
    params: dict[str, Any]
    status: str = "running"
    value: float | None = None
    step: float | None = None
    error: str | None = None
    cause: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)


class Tracker(abc.ABC):
    """Writes a study's trials somewhere else as well (MLflow, W&B, TensorBoard).

    Called from the driver only, one call at a time, in this order: :meth:`study_started` once;
    for each trial :meth:`trial_started`, then :meth:`trial_reported` for each report (steps
    strictly increasing, each step at most once) and :meth:`trial_ended`; :meth:`study_ended`
    once. A resumed study starts again with ``state``, what :meth:`state` returned last, and
    calls :meth:`trial_started` again for each trial it continues: the tracker continues the same
    run. A study stopped before its end (Ctrl-C, a time limit) calls :meth:`study_ended` with
    trials still running.
    """

    def __init__(self, options: Any, state: dict[str, Any]) -> None:
        self.options = options

    @abc.abstractmethod
    def study_started(self, study: StudyInfo) -> None: ...

    @abc.abstractmethod
    def trial_started(self, trial: TrialInfo) -> None: ...

    @abc.abstractmethod
    def trial_reported(self, trial_id: str, step: float, metrics: dict[str, float], index: int) -> None:
        """``index``: the report's number in its trial (1, 2, ...), for a step that is not whole
        (see :func:`whole_step`)."""

    @abc.abstractmethod
    def trial_ended(self, trial: TrialInfo) -> None: ...

    @abc.abstractmethod
    def study_ended(self, best: TrialInfo | None, running: list[str]) -> None:
        """``best``: the study's best trial (none without a metric or a finished trial);
        ``running``: the trials left unfinished, continued by ``resume``."""

    def trial_replayed(self, trial: TrialInfo) -> None:  # noqa: B027 - optional: most trackers have runs to go on with
        """A trial as a resumed study's history has it (started, or ended with ``trial.status``),
        before the study goes on: not written again; a trial that continues is told
        :meth:`trial_started` after."""

    def state(self) -> dict[str, Any]:
        """What a resumed study hands back to continue the same runs (JSON: run ids)."""
        return {}


def whole_step(step: float, index: int) -> int:
    """An integer step for libraries that take only integers: ``step`` itself when it is whole,
    else the report's number in its trial."""
    return int(step) if float(step).is_integer() else index


def finite(metrics: dict[str, float]) -> dict[str, float]:
    """The metrics a tracker can store: NaN and infinite values left out."""
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and math.isfinite(v)}


def scalar_params(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as trackers take them: numbers, strings and booleans kept, anything else as text."""
    return {k: v if isinstance(v, int | float | str | bool) or v is None else repr(v) for k, v in params.items()}
