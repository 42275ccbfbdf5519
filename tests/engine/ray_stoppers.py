"""Ray Tune's own stoppers, as a study's ``stopper:`` names them (importing ray.tune starts nothing)."""

from __future__ import annotations

from typing import Any

from ray.tune.stopper import MaximumIterationStopper, Stopper, TrialPlateauStopper

plateau = TrialPlateauStopper(metric="loss", std=0.001, num_results=3, grace_period=3)
three = MaximumIterationStopper(max_iter=3)


class FiveReports(Stopper):
    """A Stopper subclass with a no-argument constructor: the smallest ``x`` is done at its first
    report, and ``stop_all`` ends the study after five reports."""

    def __init__(self) -> None:
        self.reports = 0

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        self.reports += 1
        return bool(result["config"]["x"] < 0.2)

    def stop_all(self) -> bool:
        return self.reports >= 5


class NoStopAll(Stopper):
    """Ray's abstract ``stop_all`` left as it is: it never ends the study."""

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return bool(result["training_iteration"] >= 2)
