"""The searcher's view of a trial: minimised values (the sign flipped once, here, for maximize)."""

from __future__ import annotations

import math

from tuner.config import Study
from tuner.results import FAILED, TrialRecord
from tuner.searchers import Outcome

Curve = tuple[tuple[float, float], ...]


def minimised(study: Study, value: float) -> float:
    """``value`` as the searchers see it: they always minimise."""
    return -value if study.maximize else value


def minimised_curve(study: Study, curve: Curve) -> Curve:
    return tuple((step, minimised(study, value)) for step, value in curve)


def outcome(study: Study, rec: TrialRecord, action: str | None, curve: Curve | None) -> Outcome:
    """What the searcher is told of an ended trial: its minimised value (and each objective's),
    how it ended, and its learning curve when the study prunes."""
    value = None if rec.value is None or rec.status in FAILED else minimised(study, rec.value)
    if action in ("infeasible", "halve_batch"):  # halve_batch here: halving did not help
        state = "infeasible"
    else:
        state = "complete" if rec.status == "finished" else "failed" if value is None else "pruned"
    values = None
    if len(study.objectives) > 1 and value is not None:  # each objective's last value, minimised
        found = [rec.metrics.get(name) for name, _ in study.objectives]
        if all(v is not None and math.isfinite(v) for v in found):
            values = tuple((-v if up else v) for v, (_, up) in zip(found, study.objectives, strict=True))  # type: ignore[operator]
    return Outcome(value, state, rec.step, values, curve or None)  # type: ignore[arg-type]
