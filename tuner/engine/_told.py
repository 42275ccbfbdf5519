"""What the searcher is told of a trial: minimised values (the study's direction applied)."""

from __future__ import annotations

import math

from tuner.config import Study, minimised
from tuner.results import FAILED, TrialRecord
from tuner.searchers import Outcome

Curve = tuple[tuple[float, float], ...]


def minimised_curve(study: Study, curve: Curve) -> Curve:
    return tuple((step, study.minimised(value)) for step, value in curve)


def outcome(study: Study, rec: TrialRecord, action: str | None, curve: Curve | None) -> Outcome:
    """An ended trial: its minimised value (and each objective's), how it ended, and its learning
    curve when the study prunes."""
    value = None if rec.value is None or rec.status in FAILED else study.minimised(rec.value)
    if action in ("infeasible", "halve_batch"):  # halve_batch here: halving did not help
        state = "infeasible"
    else:
        state = "complete" if rec.status == "finished" else "failed" if value is None else "pruned"
    values = None
    if len(study.objectives) > 1 and value is not None:  # each objective's last value, minimised
        found = [rec.metrics.get(name) for name, _ in study.objectives]
        if all(v is not None and math.isfinite(v) for v in found):
            values = tuple(minimised(v, up) for v, (_, up) in zip(found, study.objectives, strict=True))
    return Outcome(value, state, rec.step, values, curve or None)  # type: ignore[arg-type]
