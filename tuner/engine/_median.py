"""The median stopping rule, making the decisions Ray's ``MedianStoppingRule`` makes.

Ray 2.60's rule (``ray/tune/schedulers/median_stopping_rule.py``, hard stop, ``min_time_slice=0``,
no trial ever paused) is the reference: a trial reporting at step ``t`` past the grace period
stops if its best value so far is worse than the median, over the other trials whose latest
result is at ``t`` or later, of their mean value over ``[grace_period, t]``. Ray recomputes
every such mean on each decision; here each step ``t`` that was reported keeps the finite means
at ``t`` in a sorted list, updated when a trial's results change them, so a report costs a few
means and bisections and the median is read by index. The means are ``np.mean`` of the same
lists and the median the same arithmetic as ``np.median``, so the floats are Ray's.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable

import numpy as np

from tuner.engine._scheduler import Scheduler


class _Means:
    """The finite means at one step, sorted, and which trial holds which."""

    __slots__ = ("of", "sorted")

    def __init__(self) -> None:
        self.of: dict[str, float] = {}
        self.sorted: list[float] = []

    def put(self, trial_id: str, mean: float | None) -> None:
        old = self.of.pop(trial_id, None)
        if old is not None:
            del self.sorted[bisect_left(self.sorted, old)]  # equal values are interchangeable
        if mean is not None and math.isfinite(mean):
            self.of[trial_id] = mean
            insort(self.sorted, mean)

    def median_without(self, trial_id: str) -> tuple[int, float]:
        """How many means the others have here, and ``np.median`` of them (NaN if none)."""
        mine = self.of.get(trial_id)
        count = len(self.sorted) - (mine is not None)
        skip = len(self.sorted) if mine is None else bisect_left(self.sorted, mine)

        def kth(k: int) -> float:
            return self.sorted[k if k < skip else k + 1]

        if count == 0:
            return 0, math.nan
        half = count // 2
        if count % 2:
            return count, kth(half)
        return count, (kth(half - 1) + kth(half)) / 2  # np.median: the mean of the middle two


class MedianStopping(Scheduler):
    """Stops a trial whose best value is worse than the median of the others' running means."""

    def __init__(self, *, grace_period: float = 0, min_samples_required: int = 3, maximize: bool = False) -> None:
        self._grace = grace_period
        self._min_samples = min_samples_required
        self._best_of: Callable[..., float] = max if maximize else min
        self._results: dict[str, list[tuple[float, float]]] = {}  # (step, value)s as reported
        self._best: dict[str, float] = {}  # the fold Python's min/max makes over them, NaN included
        self._at: dict[float, _Means] = {}  # by step reported (past the grace period)
        self._steps: list[float] = []  # those steps, sorted
        self._stopped: set[str] = set()

    def add(self, trial_id: str) -> None:
        pass  # a trial counts from its first result on

    def report(self, trial_id: str, step: float, value: float) -> bool:
        if trial_id in self._stopped:
            return True  # Ray asserts this never happens with a hard stop
        self._append(trial_id, step, value)
        if step < self._grace:
            return False
        means = self._at.get(step) or self._track(step)
        count, median = means.median_without(trial_id)
        if count < self._min_samples:
            return False
        best = self._best[trial_id]
        if self._best_of(median, best) != best:
            self._stopped.add(trial_id)
            return True
        return False

    def end(self, trial_id: str, last: tuple[float, float] | None) -> None:
        # Ray appends the final result to the trial's results (its last report may so count
        # twice in its means); a trial removed without one keeps the results it reported.
        if last is not None:
            self._append(trial_id, *last)

    def _append(self, trial_id: str, step: float, value: float) -> None:
        results = self._results.get(trial_id)
        if results is None:
            results = self._results[trial_id] = [(step, value)]
            self._best[trial_id] = value
            changed = [step] if step in self._at else []  # earlier steps: no result in scope yet
        else:
            before = results[-1][0]
            results.append((step, value))
            # max(list) folds as max(best, next): the old value stays on ties and against a NaN
            self._best[trial_id] = self._best_of(self._best[trial_id], value)
            # A trial counts at the steps up to its latest one; its mean changes from ``step``
            # on. So the steps between the previous latest and this one gain or lose it, and
            # ``step`` gets a new mean.
            low, high = min(before, step), max(before, step)
            changed = self._steps[bisect_right(self._steps, low) : bisect_right(self._steps, high)]
            if step in self._at and step <= low:
                changed.append(step)
        for t in changed:
            self._at[t].put(trial_id, self._mean(results, t) if step >= t else None)

    def _track(self, t: float) -> _Means:
        """The means at a step reported for the first time, from every trial that reached it."""
        means = self._at[t] = _Means()
        insort(self._steps, t)
        for trial_id, results in self._results.items():
            if results[-1][0] >= t:
                means.put(trial_id, self._mean(results, t))
        return means

    def _mean(self, results: list[tuple[float, float]], t: float) -> float:
        scoped = [v for s, v in results if self._grace <= s <= t]
        return float(np.mean(scoped)) if scoped else math.nan
