"""Ray Tune itself underneath: the study's searcher as a Tune searcher, its scheduler as Ray's own,
trials as Tune trials, and a Tune callback writing the same results a run of the default engine writes."""

from __future__ import annotations

from tuner.backends.ray.tune._run import run_on_tune

__all__ = ["run_on_tune"]
