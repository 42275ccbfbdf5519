"""Population-based training's decisions, as Ray's ``PopulationBasedTraining`` makes them.

At a perturbation boundary of its own steps (``perturbation_interval`` steps since its last
one) a member in the bottom ``quantile_fraction`` of the live population *exploits* a member of
the top quantile (copies its checkpoint, carries on from its step) and *explores* (the donor's
configuration perturbed by a factor, or resampled; a categorical value moved to a neighbour, or
resampled). As in Ray, each member is ranked by its score at its last boundary, and a member
that has not reached one yet is not ranked: a score between boundaries would rank a member by
how far it has got into its interval.

A donor is chosen only among members of the top quantile that have a checkpoint near the
boundary their score was taken at (at it, or less than one interval before it): a member never
copies a donor that has nothing to copy, nor a state older than the score that ranked it. The
member carries on from that checkpoint's step, before or after its own (as in Ray: a member that
reached its boundary first takes a donor's state from the donor's last boundary). Each decision draws
from a generator seeded by ``(seed, number of exploits so far)``, so a resumed study that
replays its exploits draws the next one as the uninterrupted study would.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tuner.engine._scheduler import Scheduler
from tuner.space import Categorical, Float, Int, Normal, Parameter, same

#: ``(trial, step) -> (step, path)`` of its last checkpoint at or before ``step``, or ``None``
CheckpointOf = Callable[[str, float], tuple[float, str] | None]


@dataclass(frozen=True)
class Exploit:
    """A member takes on a donor's state: its checkpoint at ``donor_step``, and a new configuration."""

    trial_id: str
    donor: str
    step: float  # the member's step at the decision
    donor_step: float  # the donor's checkpoint's step: where the member carries on
    path: str  # the donor's checkpoint
    old: dict[str, Any]  # the member's mutable values before
    new: dict[str, Any]  # and after (the donor's, perturbed or resampled)

    def event(self) -> dict[str, Any]:
        """The journal's record of it."""
        return {
            "trial": self.trial_id,
            "donor": self.donor,
            "step": self.step,
            "donor_step": self.donor_step,
            "path": self.path,
            "old": self.old,
            "new": self.new,
        }


class PopulationBasedTraining(Scheduler):
    """Never stops a member; says at its boundaries whether it exploits another (:meth:`exploit`)."""

    prunes = False

    def __init__(
        self,
        *,
        mutations: Mapping[str, Parameter],
        perturbation_interval: int = 5,
        quantile_fraction: float = 0.25,
        resample_probability: float = 0.25,
        perturbation_factors: tuple[float, ...] = (0.8, 1.2),
        maximize: bool = False,
        seed: int = 0,
    ) -> None:
        self.mutations = dict(mutations)
        self.interval = perturbation_interval
        self.quantile = quantile_fraction
        self.resample_probability = resample_probability
        self.factors = perturbation_factors
        self._sign = 1.0 if maximize else -1.0  # scores are maximised
        self.seed = seed
        self.exploits = 0  # made so far (replayed ones included): the next decision's draw
        self._score: dict[str, tuple[float, float]] = {}  # live member -> (step, score) at its last boundary
        self._last: dict[str, float] = {}  # member -> the step of its last boundary
        self._due: set[str] = set()  # members whose last report was at a boundary

    # -- the Scheduler interface ------------------------------------------------------------
    def add(self, trial_id: str) -> None:
        self._last.setdefault(trial_id, 0.0)

    def report(self, trial_id: str, step: float, value: float) -> bool:
        if step - self._last.get(trial_id, 0.0) >= self.interval:
            score = self._sign * value
            self._score[trial_id] = (step, score if math.isfinite(score) else -math.inf)
            self._last[trial_id] = step
            self._due.add(trial_id)
        else:
            self._due.discard(trial_id)
        return False

    def end(self, trial_id: str, last: tuple[float, float] | None) -> None:
        self._score.pop(trial_id, None)
        self._due.discard(trial_id)

    # -- population-based training ----------------------------------------------------------
    def due(self, trial_id: str) -> bool:
        """Whether the member's last report was at one of its perturbation boundaries."""
        return trial_id in self._due

    def quantiles(self) -> tuple[list[str], list[str]]:
        """``(bottom, top)``: the live members that have reached a boundary, in the lower and upper
        quantile by their score there (Ray's rule: ``ceil(n * quantile_fraction)`` each, at most
        half of them; none below two)."""
        ranked = sorted(self._score, key=lambda t: self._score[t][1])
        if len(ranked) <= 1:
            return [], []
        count = min(math.ceil(len(ranked) * self.quantile), len(ranked) // 2)
        return ranked[:count], ranked[-count:]

    def rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.exploits])

    def exploit(self, trial_id: str, config: Mapping[str, Any], checkpoint_of: CheckpointOf) -> Exploit | None:
        """At the member's boundary: the exploit it makes, or ``None`` (not in the bottom quantile,
        or no member of the top one has a checkpoint near its own last boundary). ``config``: the
        flat configurations of the members, by trial (the member's and its possible donors')."""
        if not self.due(trial_id) or trial_id not in self._score:
            return None
        self._due.discard(trial_id)
        bottom, top = self.quantiles()
        if trial_id not in bottom:
            return None
        step = self._score[trial_id][0]
        donors = []
        for donor in top:
            scored = self._score[donor][0]
            saved = checkpoint_of(donor, scored)
            if saved is not None and scored - saved[0] < self.interval:
                donors.append((donor, saved))
        if not donors:
            return None
        rng = self.rng()
        donor, (donor_step, path) = donors[int(rng.integers(len(donors)))]
        old = {k: config[trial_id][k] for k in self.mutations if k in config[trial_id]}
        new = self.explore({k: config[donor][k] for k in self.mutations if k in config[donor]}, rng)
        self.applied(trial_id, donor_step, donor)
        return Exploit(trial_id, donor, step, donor_step, path, old, new)

    def applied(self, trial_id: str, donor_step: float, donor: str | None = None) -> None:
        """An exploit was made (live, or read back from the journal): the member carries on from
        ``donor_step`` of ``donor``'s."""
        self.exploits += 1
        self._last[trial_id] = donor_step

    def explore(self, values: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        """``values`` perturbed: each resampled with ``resample_probability``, else multiplied by
        one of ``perturbation_factors`` and kept within its range (a categorical one: moved to
        the value before or after it in its list, or kept at either end)."""
        out = dict(values)
        for name, param in self.mutations.items():
            if name not in out:
                continue
            resample = rng.random() < self.resample_probability
            out[name] = perturb(param, out[name], resample, self.factors, rng)
        return out


def perturb(param: Parameter, value: Any, resample: bool, factors: tuple[float, ...], rng: np.random.Generator) -> Any:
    """One value explored: drawn afresh, or scaled by a factor (numbers; clipped to their range),
    or moved one place along its list (categorical, as Ray shifts a list's index; clamped at the
    ends, so a value at either end stays half the time)."""
    if isinstance(param, Categorical) and not resample:
        index = next((i for i, v in enumerate(param.values) if same(v, value)), None)
        if index is None:  # a value not in the list: drawn from it
            return param.sample(rng)
        index += 1 if rng.random() < 0.5 else -1
        return param.values[min(max(index, 0), len(param.values) - 1)]
    if resample or isinstance(param, Categorical) or not isinstance(value, int | float):
        return param.sample(rng)
    scaled = float(value) * factors[int(rng.integers(len(factors)))]
    if isinstance(param, Float | Int):
        return param.decode(scaled)
    if isinstance(param, Normal) and param.q is not None:
        return round(scaled / param.q) * param.q
    return scaled
