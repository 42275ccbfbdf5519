"""Population-based bandits (PB2, Parker-Holder et al. 2020): PBT's exploit, a GP-bandit's explore.

At each member's boundary the improvement of its score over the interval just ended is recorded
against the interval's end and the member's values (in the unit cube: log scale where the
parameter is searched on one). A member that exploits takes the values that maximise the upper
confidence bound of a GP (:mod:`tuner.gp`) fitted to those improvements, at the current step,
over random candidates; with fewer than :data:`MIN_DATA` intervals seen, it draws them at random.

The GP's data are a function of the reports and exploits alone (each interval is recorded when its
boundary is reported, each exploit rebases the member on the donor's score): a resumed study,
whose journal replays both in order, fits its GP to the same data as the uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from tuner.engine._pbt import PopulationBasedTraining
from tuner.space import Float, Int, Parameter

MIN_DATA = 4  # intervals seen before the GP chooses
WINDOW = 200  # the most recent intervals the GP is fitted to
CANDIDATES = 512
KAPPA = 2.0  # the upper confidence bound's width, in standard deviations


class PopulationBasedBandits(PopulationBasedTraining):
    """PBT whose explore step is a GP-UCB choice over the bounded numeric mutations."""

    def __init__(self, *, mutations: Mapping[str, Parameter], **options: Any) -> None:
        super().__init__(mutations=mutations, resample_probability=0.0, **options)
        self._data: list[tuple[float, list[float], float]] = []  # (step, values in the cube, improvement)
        self._previous: dict[str, tuple[float, float]] = {}  # member -> (step, score) at its last boundary
        self._now = 0.0
        # trial -> its values now (those the interval just reported trained with): the study's records
        self.values_of: Callable[[str], Mapping[str, Any]] = lambda trial_id: {}

    def report(self, trial_id: str, step: float, value: float) -> bool:
        super().report(trial_id, step, value)
        if self.due(trial_id):  # a boundary: the interval it closes is one more point for the GP
            score = self._score[trial_id][1]
            before = self._previous.get(trial_id)
            if before is not None and step > before[0] and math.isfinite(score) and math.isfinite(before[1]):
                point = (step, self._encode(self.values_of(trial_id)), score - before[1])
                self._data = [*self._data, point][-WINDOW:]
            self._previous[trial_id] = (step, score)
            self._now = step
        return False

    def applied(self, trial_id: str, donor_step: float, donor: str | None = None) -> None:
        super().applied(trial_id, donor_step, donor)
        if donor is not None and donor in self._score:  # it goes on from the donor's score
            self._previous[trial_id] = (donor_step, self._score[donor][1])

    @property
    def data(self) -> list[tuple[float, list[float], float]]:
        """The GP's data: ``(step, values in the unit cube, improvement)`` of each recent interval."""
        return list(self._data)

    def explore(self, values: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        out = dict(values)
        names = [n for n in self.mutations if n in out]
        if len(self._data) < MIN_DATA:
            out.update({n: self.mutations[n].sample(rng) for n in names})
            return out
        from tuner.gp import fit

        steps = np.array([d[0] for d in self._data], dtype=float)
        span = max(steps.max(), self._now, 1.0)
        x = np.column_stack([steps / span, np.array([d[1] for d in self._data])])
        y = np.array([d[2] for d in self._data], dtype=float)
        y = (y - y.mean()) / (y.std() or 1.0)
        gp = fit(x, y, np.zeros(x.shape[1], dtype=bool))
        candidates = rng.random((CANDIDATES, x.shape[1] - 1))
        query = np.column_stack([np.full(CANDIDATES, self._now / span), candidates])
        mean, var = gp.predict(query)
        best = candidates[int(np.argmax(mean + KAPPA * np.sqrt(var)))]
        out.update(self._decode(best, names))
        return out

    def _encode(self, values: Mapping[str, Any]) -> list[float]:
        return [_to_cube(p, values.get(n)) for n, p in self.mutations.items()]

    def _decode(self, cube: np.ndarray, names: list[str]) -> dict[str, Any]:
        order = list(self.mutations)
        return {n: _from_cube(self.mutations[n], float(cube[order.index(n)])) for n in names}


def _to_cube(param: Parameter, value: Any) -> float:
    if not isinstance(param, Float | Int) or not isinstance(value, int | float):
        return 0.5
    low, high, v = float(param.low), float(param.high), float(value)
    if param.log:
        low, high, v = math.log(low), math.log(high), math.log(max(v, param.low))
    return min(max((v - low) / (high - low), 0.0), 1.0) if high > low else 0.5


def _from_cube(param: Parameter, u: float) -> Any:
    assert isinstance(param, Float | Int)
    low, high = float(param.low), float(param.high)
    if param.log:
        return param.decode(math.exp(math.log(low) + u * (math.log(high) - math.log(low))))
    return param.decode(low + u * (high - low))
