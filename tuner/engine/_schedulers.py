"""The study's scheduler, built from its spec, as the engine drives it.

ASHA and the median rule make the decisions Ray's ``ASHAScheduler`` and ``MedianStoppingRule``
make (see :mod:`tuner.engine._asha`, :mod:`tuner.engine._median`), without importing Ray;
hyperband makes those of W&B's sweep controller (:mod:`tuner.engine._hyperband`).
"""

from __future__ import annotations

from typing import Any

from tuner.config import Asha, Hyperband, Median
from tuner.engine._asha import BIG_BUDGET, AsyncSuccessiveHalving
from tuner.engine._hyperband import WandbHyperband
from tuner.engine._median import MedianStopping
from tuner.engine._scheduler import NoScheduler, Scheduler

__all__ = [
    "BIG_BUDGET",
    "TIME_ATTR",
    "AsyncSuccessiveHalving",
    "MedianStopping",
    "NoScheduler",
    "Pruner",
    "Scheduler",
    "WandbHyperband",
    "scheduler_for",
]

TIME_ATTR = "step"


def scheduler_for(spec: Asha | Hyperband | Median | None, maximize: bool, seed: int = 0) -> Scheduler:
    """The scheduler a study's ``scheduler`` block asks for; ``seed`` draws ASHA's brackets."""
    if isinstance(spec, Asha):
        return AsyncSuccessiveHalving(
            max_t=spec.max_t,
            grace_period=spec.grace_period,
            reduction_factor=spec.reduction_factor,
            brackets=spec.brackets,
            maximize=maximize,
            seed=seed,
        )
    if isinstance(spec, Hyperband):
        return WandbHyperband(bands=spec.bands(), eta=spec.eta, strict=spec.strict, maximize=maximize)
    if isinstance(spec, Median):
        return MedianStopping(
            grace_period=spec.grace_period, min_samples_required=spec.min_samples_required, maximize=maximize
        )
    return NoScheduler()


class Pruner:
    """Decides after each report whether a trial goes on. ``None`` spec: never prunes."""

    def __init__(
        self, spec: Asha | Hyperband | Median | None, metric: str | None, maximize: bool, seed: int = 0
    ) -> None:
        self.metric = metric
        self.max_t: int | None = spec.max_t if isinstance(spec, Asha) else None
        self.scheduler = scheduler_for(spec, maximize, seed)
        self._live: set[str] = set()

    def add(self, trial_id: str) -> None:
        self._live.add(trial_id)
        self.scheduler.add(trial_id)

    def should_stop(self, trial_id: str, step: float, value: float) -> bool:
        return self.scheduler.report(trial_id, step, value)

    @property
    def prunes(self) -> bool:
        """Whether a scheduler may stop trials early (ASHA, the median rule)."""
        return self.scheduler.prunes

    def reached_budget(self, step: float) -> bool:
        return self.max_t is not None and step >= self.max_t

    def remove(self, trial_id: str, last: dict[str, Any] | None) -> None:
        """A trial ended; ``last``: its last result (with ``step`` and the metric), if any."""
        if trial_id not in self._live:
            return
        self._live.discard(trial_id)
        if last is not None and TIME_ATTR in last and self.metric in last:
            self.scheduler.end(trial_id, (last[TIME_ATTR], last[self.metric]))
        else:
            self.scheduler.end(trial_id, None)
