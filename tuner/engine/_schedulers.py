"""Ray's trial schedulers (ASHA, median stopping), driven directly by the engine.

The engine is not Tune's controller, so Ray's schedulers get a minimal stand-in for the
pieces they touch: a hashable trial with ``trial_id`` and a controller with no live trials
(so the median rule never asks to pause). ASHA draws each trial's bracket from numpy's
global generator; the pruner gives it a generator of its own, seeded by the study, for the
length of that call.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from tuner.config import Asha, Median

TIME_ATTR = "step"
_GLOBAL_NUMPY = threading.Lock()
BIG_BUDGET = 10**9  # ASHA without max_t: rungs go on until the trainable returns


@dataclass(frozen=True)
class _TrialRef:
    trial_id: str


class _NoController:
    def get_live_trials(self) -> list[Any]:
        return []


class Pruner:
    """Decides after each report whether a trial goes on. ``None`` spec: never prunes."""

    def __init__(self, spec: Asha | Median | None, metric: str, maximize: bool, seed: int = 0) -> None:
        self._refs: dict[str, _TrialRef] = {}
        self._rng_state = np.random.RandomState(seed % 2**32).get_state()
        self._ctl = _NoController()
        self.max_t: int | None = None
        self._impl: Any = None
        mode = "max" if maximize else "min"
        if isinstance(spec, Asha):
            from ray.tune.schedulers import ASHAScheduler

            self.max_t = spec.max_t
            self._impl = ASHAScheduler(
                time_attr=TIME_ATTR,
                metric=metric,
                mode=mode,
                max_t=spec.max_t or BIG_BUDGET,
                grace_period=spec.grace_period,
                reduction_factor=spec.reduction_factor,
                brackets=spec.brackets,
            )
        elif isinstance(spec, Median):
            from ray.tune.schedulers import MedianStoppingRule

            self._impl = MedianStoppingRule(
                time_attr=TIME_ATTR,
                metric=metric,
                mode=mode,
                grace_period=spec.grace_period,
                min_samples_required=spec.min_samples_required,
                min_time_slice=0,
            )
        self.metric = metric

    def add(self, trial_id: str) -> None:
        self._refs[trial_id] = _TrialRef(trial_id)
        if self._impl is None:
            return
        with _GLOBAL_NUMPY:  # our generator in numpy's global slot for this one call
            outside = np.random.get_state()
            np.random.set_state(self._rng_state)
            try:
                self._impl.on_trial_add(self._ctl, self._refs[trial_id])
            finally:
                self._rng_state = np.random.get_state()
                np.random.set_state(outside)

    def should_stop(self, trial_id: str, step: float, value: float) -> bool:
        if self._impl is None:
            return False
        from ray.tune.schedulers import TrialScheduler

        result = {TIME_ATTR: step, self.metric: value}
        return bool(self._impl.on_trial_result(self._ctl, self._refs[trial_id], result) == TrialScheduler.STOP)

    @property
    def prunes(self) -> bool:
        """Whether a scheduler may stop trials early (ASHA, the median rule)."""
        return self._impl is not None

    def reached_budget(self, step: float) -> bool:
        return self.max_t is not None and step >= self.max_t

    def remove(self, trial_id: str, last: dict[str, Any] | None) -> None:
        ref = self._refs.pop(trial_id, None)
        if self._impl is None or ref is None:
            return
        if last is not None and self.metric in last:
            self._impl.on_trial_complete(self._ctl, ref, last)
        else:
            self._impl.on_trial_remove(self._ctl, ref)
