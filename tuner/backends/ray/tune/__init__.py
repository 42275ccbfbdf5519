"""Ray Tune itself underneath: the study's searcher as a Tune searcher, its scheduler as Ray's own,
trials as Tune trials, and a Tune callback writing the same results a run of the default engine writes.
Also our searchers inside a user's own Tune script (:class:`ParamSpaceSearcher`)."""

from __future__ import annotations

from tuner.backends.ray.tune._domains import convert_param_space
from tuner.backends.ray.tune._param_space import ParamSpaceSearcher
from tuner.backends.ray.tune._run import run_on_tune
from tuner.backends.ray.tune._script import Script, study_data
from tuner.backends.ray.tune._searcher import TuneSearcher

__all__: list[str] = [
    "ParamSpaceSearcher",
    "Script",
    "TuneSearcher",
    "convert_param_space",
    "run_on_tune",
    "study_data",
]
