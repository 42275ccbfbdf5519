"""Asynchronous successive halving (ASHA), making the decisions Ray's ``ASHAScheduler`` makes.

Ray 2.60's ``AsyncHyperBandScheduler`` (``ray/tune/schedulers/async_hyperband.py``) is the
reference: the same rungs and brackets, the same bracket drawn for each trial from the same
seed, the same cutoff (numpy's ``nanpercentile``, linear method, at the ``1 - 1/eta`` quantile
of the scores recorded at a rung). Ray recomputes that percentile over every score of the rung
on each decision; here each rung keeps its scores split in two heaps around the quantile's
position, so a report costs O(log n) and the cutoff is read in O(1), bit for bit numpy's value.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_right

import numpy as np

from tuner.engine._scheduler import Scheduler

BIG_BUDGET = 10**9  # ASHA without max_t: rungs go on until the trainable returns


def lerp(a: float, b: float, t: float) -> float:
    """numpy's ``_lerp``, the interpolation of its quantiles, in the same float operations."""
    diff = b - a
    if t >= 0.5:
        return b - diff * (1 - t)
    return a + diff * t


class Rung:
    """The scores recorded at one milestone, and their cutoff as ``np.nanpercentile(scores,
    q * 100)`` computes it: index ``(n - 1) * q`` into the sorted non-NaN scores, interpolated.

    ``_low`` (a max-heap, negated) holds the ``floor((n - 1) * q) + 1`` smallest scores and
    ``_high`` the rest, so the two scores around that index are the heaps' tops.
    """

    __slots__ = ("_cutoff", "_high", "_low", "_q", "milestone", "recorded")

    def __init__(self, milestone: float, q: float) -> None:
        self.milestone = milestone
        self.recorded: set[str] = set()  # trials with a score here, NaN included
        self._q = q
        self._low: list[float] = []
        self._high: list[float] = []
        self._cutoff: float | None = None

    def record(self, trial_id: str, score: float) -> None:
        self.recorded.add(trial_id)
        if score != score:  # NaN: counted as recorded, left out of the percentile like nanpercentile does
            self._cutoff = math.nan if not self._low else self._cutoff
            return
        low, high = self._low, self._high
        if low and score <= -low[0]:
            heapq.heappush(low, -score)
        else:
            heapq.heappush(high, score)
        n = len(low) + len(high)
        keep = min(math.floor((n - 1) * self._q) + 1, n)  # the index can step by more than 1 as q nears 1
        while len(low) > keep:
            heapq.heappush(high, -heapq.heappop(low))
        while len(low) < keep:
            heapq.heappush(low, -heapq.heappop(high))
        self._cutoff = self._percentile(n)

    def _percentile(self, n: int) -> float:
        virtual = (n - 1) * self._q
        if virtual >= n - 1:
            # numpy's index past the end: both neighbours are the largest score (index -1), and
            # gamma is taken against that -1.
            top = -self._low[0]
            return lerp(top, top, virtual + 1)
        below = math.floor(virtual)
        return lerp(-self._low[0], self._high[0], virtual - below)

    def cutoff(self) -> float | None:
        """``None`` before any trial recorded here; NaN when all the scores recorded are NaN."""
        return self._cutoff


class AsyncSuccessiveHalving(Scheduler):
    """Stops a trial reaching a rung with a score below the rung's ``1 - 1/reduction_factor``
    quantile; ``brackets`` > 1 staggers the first rung, each trial drawn into one bracket.

    ``max_t=None``: rungs go on geometrically up to :data:`BIG_BUDGET` (so the brackets, and the
    draws, are those Ray makes with that ``max_t``). ``stop_last_trials``: stop at ``max_t``.
    """

    def __init__(
        self,
        *,
        max_t: int | None,
        grace_period: int = 1,
        reduction_factor: float = 4,
        brackets: int = 1,
        maximize: bool = False,
        seed: int = 0,
        stop_last_trials: bool = True,
    ) -> None:
        self.max_t = BIG_BUDGET if max_t is None else max_t
        self._sign = 1.0 if maximize else -1.0  # scores are maximised, as Ray's metric_op does
        self._stop_last_trials = stop_last_trials
        q = (1 - 1 / reduction_factor) * 100 / 100  # nanpercentile's q / 100 in the same steps
        self._brackets = [_rungs(grace_period, self.max_t, reduction_factor, s, q) for s in range(brackets)]
        # Ray draws the bracket with np.random.choice over a softmax of the rung counts, from
        # numpy's global generator; this is the same choice, from a RandomState of our own.
        sizes = np.array([len(b) for b in self._brackets])
        probs = np.e ** (sizes - sizes.max())
        cdf = (probs / probs.sum()).cumsum()
        cdf /= cdf[-1]
        self._cdf: list[float] = cdf.tolist()
        self._rng = np.random.RandomState(seed % 2**32)
        self._bracket_of: dict[str, int] = {}

    def add(self, trial_id: str) -> None:
        self._bracket_of[trial_id] = bisect_right(self._cdf, self._rng.random_sample())

    def bracket(self, trial_id: str) -> int:
        """The bracket a running trial was drawn into."""
        return self._bracket_of[trial_id]

    def rungs(self, bracket: int = 0) -> list[Rung]:
        """A bracket's rungs, highest milestone first."""
        return self._brackets[bracket]

    def report(self, trial_id: str, step: float, value: float) -> bool:
        if step >= self.max_t and self._stop_last_trials:
            return True
        return self._judge(self._brackets[self._bracket_of[trial_id]], trial_id, step, self._sign * value)

    def end(self, trial_id: str, last: tuple[float, float] | None) -> None:
        bracket = self._bracket_of.pop(trial_id)
        if last is not None:  # the last result is recorded at its rung, and judges no one
            step, value = last
            self._judge(self._brackets[bracket], trial_id, step, self._sign * value)

    def _judge(self, rungs: list[Rung], trial_id: str, step: float, score: float) -> bool:
        # Ray's _Bracket.on_result: the highest rung reached that has no score of this trial yet.
        for rung in rungs:
            if step >= rung.milestone and trial_id in rung.recorded and not self._stop_last_trials:
                break
            if step < rung.milestone or trial_id in rung.recorded:
                continue
            cutoff = rung.cutoff()
            rung.record(trial_id, score)
            return cutoff is not None and score < cutoff
        return False


def _rungs(min_t: int, max_t: int, rf: float, s: int, q: float) -> list[Rung]:
    # Ray's rung count and milestones, float operations included (np.log, rf ** k).
    count = int(np.log(max_t / min_t) / np.log(rf) - s + 1)
    return [Rung(min_t * rf ** (k + s), q) for k in reversed(range(count))]
