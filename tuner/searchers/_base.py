"""The one interface every searcher implements."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from tuner.errors import Problem
from tuner.space import Space, config_key


class SearcherOptions(BaseModel):
    """The ``searcher:`` block; each searcher extends it with its own options."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    seed: int | None = None


@dataclass(frozen=True)
class Outcome:
    """What a finished trial tells its searcher. ``value`` is always to be minimised."""

    value: float | None
    state: Literal["complete", "pruned", "failed", "infeasible"]  # infeasible: ran out of memory
    step: float | None = None


class Searcher(abc.ABC):
    """Proposes configurations and learns from their outcomes.

    Call order: ``check_space(space)`` before construction (problems are reported to the
    user, not raised); ``__init__(space, seed, options)`` once; then any interleaving of
    ``suggest(trial_id)`` and ``tell(trial_id, outcome)``, each suggested trial told exactly
    once. ``suggest`` returns a flat configuration of the space's searchable parameters,
    or ``None`` when the searcher has nothing new to propose. Values are minimised: the
    study flips the sign for ``goal: maximize`` before ``tell``.
    """

    Options: ClassVar[type[SearcherOptions]] = SearcherOptions

    def __init__(self, space: Space, seed: int, options: SearcherOptions) -> None:
        self.space = space
        self.seed = seed
        self.options = options

    @classmethod
    def check_space(cls, space: Space, path: str = "parameters") -> list[Problem]:
        """The parameters this searcher cannot search, each with what to write instead."""
        return []

    @abc.abstractmethod
    def suggest(self, trial_id: str) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    def tell(self, trial_id: str, outcome: Outcome) -> None: ...


class Unseen:
    """Remembers proposed configurations and draws fresh random ones to replace repeats."""

    def __init__(self, space: Space, rng: np.random.Generator) -> None:
        self.space = space
        self.rng = rng
        self.seen: set[str] = set()
        sizes = [p.grid_values() for p in space.searchable.values()]
        self.size: int | None = None
        if all(v is not None for v in sizes):
            self.size = int(np.prod([len(v) for v in sizes if v is not None]))

    def is_new(self, config: dict[str, Any]) -> bool:
        return config_key(config) not in self.seen

    def add(self, config: dict[str, Any]) -> dict[str, Any]:
        self.seen.add(config_key(config))
        return config

    @property
    def exhausted(self) -> bool:
        return self.size is not None and len(self.seen) >= self.size

    def random(self, tries: int = 200) -> dict[str, Any] | None:
        """A fresh random configuration, or ``None`` once a finite space is used up."""
        for _ in range(tries):
            if self.exhausted:
                return None
            config = {k: p.sample(self.rng) for k, p in self.space.searchable.items()}
            if self.is_new(config):
                return self.add(config)
        if self.size is not None and self.size <= 100_000:  # nearly used up: pick from the rest
            from tuner.space import grid_product

            rest = [c for c in grid_product(self.space.subspace(list(self.space.searchable))) if self.is_new(c)]
            if rest:
                return self.add(rest[int(self.rng.integers(len(rest)))])
        return None


def unbounded(space: Space, path: str, method: str) -> list[Problem]:
    """Problems for parameters with no bounds, which model-based searchers cannot search."""
    from tuner.space import Normal

    return [
        Problem(
            f"{path}.{name}",
            f"{method} needs a bounded range, got a normal distribution; "
            "use distribution: uniform (or log_uniform_values) with min and max",
        )
        for name, p in space.searchable.items()
        if isinstance(p, Normal)
    ]
