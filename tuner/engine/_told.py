"""What the searcher is told of a trial: minimised values (the study's direction applied)."""

from __future__ import annotations

import math

from tuner.config import Study, minimised
from tuner.results import TrialRecord
from tuner.searchers import Outcome
from tuner.status import FAILED, Action, outcome_state

Curve = tuple[tuple[float, float], ...]


def minimised_curve(study: Study, curve: Curve) -> Curve:
    return tuple((step, study.minimised(value)) for step, value in curve)


def outcome(study: Study, rec: TrialRecord, action: Action | None, curve: Curve | None) -> Outcome:
    """An ended trial: its minimised value (and each objective's), how it ended, and its learning
    curve when the study prunes."""
    value = None if rec.value is None or rec.status in FAILED else study.minimised(rec.value)
    state = outcome_state(rec.status, action, value)
    values = None
    if len(study.objectives) > 1 and value is not None:  # each objective's last value, minimised
        found = [rec.metrics.get(name) for name, _ in study.objectives]
        if all(v is not None and math.isfinite(v) for v in found):
            values = tuple(minimised(float(v), up) for v, (_, up) in zip(found, study.objectives, strict=True))  # type: ignore[arg-type]
    return Outcome(value, state, rec.step, values, curve or None)
