"""When the study as a whole stops starting trials: a target reached, too many failures."""

from __future__ import annotations

from tuner.config import Study

FAIL_FAST = 3  # stop when this many failed and none reported a value


def reached(study: Study, trial_id: str, status: str, value: float | None) -> str | None:
    """Why the study stops after this trial ended, if its value reached ``metric.target``."""
    target = None if study.spec.primary is None else study.spec.primary.target
    if status != "finished" or value is None or target is None:
        return None
    hit = not study.better(target, value)  # as good as the target or better
    return f"{study.metric} reached its target {target} in {trial_id}" if hit else None


def too_many_failures(study: Study, failed: int, any_value: bool) -> str | None:
    """Why the study stops for its failures: more than ``max_failed_trials``, or the first
    ``FAIL_FAST`` all failed (a broken trainable or space, not bad luck)."""
    cap = study.spec.max_failed_trials
    if cap is not None and failed > cap:
        return f"{failed} trials failed, more than max_failed_trials ({cap})"
    if failed >= FAIL_FAST and not any_value:
        return f"the first {failed} trials all failed"
    return None
