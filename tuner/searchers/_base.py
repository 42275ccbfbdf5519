"""The one interface every searcher implements, and the history every searcher keeps."""

from __future__ import annotations

import abc
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tuner.errors import Problem
from tuner.space import Space, config_key, space_size
from tuner.status import OutcomeState

State = OutcomeState  # what a searcher is told of a trial (tuner.status.outcome_state)


class SearcherOptions(BaseModel):
    """The ``searcher:`` block; each searcher extends it with its own options."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    seed: int | None = Field(default=None, ge=0)


@dataclass(frozen=True)
class Outcome:
    """What a trial tells its searcher. ``value`` is always to be minimised.

    ``state``: ``complete`` (trained to the full budget), ``pruned`` (stopped early by the
    scheduler at ``step``), ``failed``, ``infeasible`` (ran out of memory), or ``running``
    (the configuration is being evaluated; its result comes later).

    ``curve``: when the study prunes, the trial's learning curve, ``(step, value)`` for each of
    its reports (minimised, the last one is ``step``, ``value``), so that a model can compare a
    pruned trial with the finished ones at the steps both reached.
    """

    value: float | None
    state: State
    step: float | None = None
    values: tuple[float, ...] | None = None  # several objectives, each minimised (value is the first)
    curve: tuple[tuple[float, float], ...] | None = None


class Searcher(abc.ABC):
    """Proposes configurations and learns from their outcomes.

    Call order: ``check_space(space)`` before construction (problems are reported to the
    user, not raised); ``__init__(space, seed, options)`` once; then any interleaving of
    ``suggest(trial_id)`` and ``tell(trial_id, config, outcome)``.

    A searcher that optimises several objectives at once sets ``multi_objective`` and reads
    ``Outcome.values``; the others refuse a study with several metrics (``check_space`` is given
    their number).

    ``suggest`` returns a flat configuration of the space's searchable parameters, or ``None``
    when the searcher has nothing new to propose. Every suggested trial is told once with its
    final state. ``tell`` carries the configuration it is about, and may come for trials this
    instance never suggested: a resumed study rebuilds its searcher by telling it the recorded
    history (``running`` for a trial still in flight, told again when it ends), and a warm
    start tells it an older study's trials. So what a searcher proposes must follow from the
    tells alone: :class:`Known` keeps that history, and its :meth:`Known.rng` seeds each
    suggestion from the number of trials known. Values are minimised: the study flips the
    sign for ``goal: maximize`` before ``tell``.
    """

    Options: ClassVar[type[SearcherOptions]] = SearcherOptions
    multi_objective: ClassVar[bool] = False  # whether it can optimise several metrics at once

    def __init__(self, space: Space, seed: int, options: SearcherOptions, objectives: int = 1) -> None:
        self.space = space
        self.seed = seed
        self.options = options
        self.objectives = objectives

    @classmethod
    def check_space(cls, space: Space, path: str = "parameters") -> list[Problem]:
        """The parameters this searcher cannot search, each with what to write instead."""
        return []

    @classmethod
    def notices(cls, options: SearcherOptions, trials: int, per: str = "") -> list[str]:
        """What a user should hear before a run in which this searcher makes at most ``trials``
        suggestions with these options (``per``: how the cap is shared out, with grid cells): not
        errors, the study runs as written."""
        return []

    @abc.abstractmethod
    def suggest(self, trial_id: str) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    def tell(self, trial_id: str, config: dict[str, Any], outcome: Outcome) -> None: ...


def start_up_only(method: str, option: str, first: int, trials: int, per: str = "") -> list[str]:
    """The notice for a model-based searcher whose random start-up draws are all it will make."""
    if trials > first:
        return []
    return [
        f"{method} draws its first {first} trials at random (searcher.{option}) and run_cap allows {trials}{per}: "
        f"its model never proposes one; set searcher: {{{option}: N}} below {trials}, or raise run_cap"
    ]


class Known:
    """The trials a searcher knows of, by id: their configurations and, once ended, outcomes.

    Also draws fresh random configurations that repeat no known one, from a generator seeded by
    ``(seed, number of trials known)``, so that a searcher rebuilt from the same history draws
    the same.
    """

    def __init__(self, space: Space, seed: int) -> None:
        self.space = space
        self.seed = seed
        self.configs: dict[str, dict[str, Any]] = {}
        self.outcomes: dict[str, Outcome] = {}
        self.counts: Counter[str] = Counter()  # configuration key -> trials known with it
        self.size = space_size(space)

    def __len__(self) -> int:
        return len(self.configs)

    def rng(self, salt: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.seed % 2**32, len(self.configs), salt])

    def add(self, trial_id: str, config: dict[str, Any]) -> dict[str, Any]:
        """A trial now in flight with ``config`` (its inactive parameters left out, and returned so)."""
        config = self.space.active(config)
        old = self.configs.get(trial_id)
        if old is not None:
            key = config_key(old)
            self.counts[key] -= 1
            if self.counts[key] <= 0:  # drop a key that reached zero (in O(1): this runs per trial)
                del self.counts[key]
        self.configs[trial_id] = config
        self.counts[config_key(config)] += 1
        return config

    def tell(self, trial_id: str, config: dict[str, Any], outcome: Outcome) -> None:
        self.add(trial_id, config)
        if outcome.state == "running":
            self.outcomes.pop(trial_id, None)
        else:
            self.outcomes[trial_id] = outcome

    @property
    def pending(self) -> dict[str, dict[str, Any]]:
        return {t: c for t, c in self.configs.items() if t not in self.outcomes}

    def is_new(self, config: dict[str, Any]) -> bool:
        return config_key(self.space.active(config)) not in self.counts

    @property
    def exhausted(self) -> bool:
        return self.size is not None and len(self.counts) >= self.size

    def random(self, rng: np.random.Generator | None = None, tries: int = 200) -> dict[str, Any] | None:
        """A fresh random configuration, or ``None`` once a finite space is used up."""
        rng = rng or self.rng()
        for _ in range(tries):
            if self.exhausted:
                return None
            config = self.space.active({k: p.sample(rng) for k, p in self.space.searchable.items()})
            if self.is_new(config):
                return config
        if self.size is not None and self.size <= 100_000:  # nearly used up: pick from the rest
            from tuner.space import grid_product

            rest = [c for c in grid_product(self.space.subspace(list(self.space.searchable))) if self.is_new(c)]
            if rest:
                return rest[int(rng.integers(len(rest)))]
        return None
