"""Exhaustive grid search over finite parameters."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from tuner.errors import Problem
from tuner.searchers._base import Known, Outcome, Searcher, SearcherOptions
from tuner.space import Categorical, Space, config_key, describe, iter_grid


class GridSearcher(Searcher):
    """Every combination, in the order the YAML lists the values; cells already known (told, or
    suggested before) are skipped. A value listed twice gives its cells twice.

    Cells are enumerated lazily, so a grid of any size starts at once.
    """

    multi_objective = True  # it does not model the outcomes

    def __init__(self, space: Space, seed: int, options: SearcherOptions, objectives: int = 1) -> None:
        super().__init__(space, seed, options, objectives)
        self.known = Known(space, seed)
        self._cells = _cells(space)
        self._passed: Counter[str] = Counter()  # cells the enumeration has gone past, by key

    @classmethod
    def check_space(cls, space: Space, path: str = "parameters") -> list[Problem]:
        weighted = [
            Problem(
                f"{path}.{name}.probabilities",
                "grid runs every value alike, so probabilities have no meaning (W&B refuses them too); leave them out",
            )
            for name, p in space.searchable.items()
            if isinstance(p, Categorical) and p.probabilities is not None
        ]
        return weighted + [
            Problem(
                f"{path}.{name}",
                f"grid needs a finite set of values, got a {describe(p)}; "
                "write values: [...], or add q: (q_uniform), or use method random/bayes/optuna",
            )
            for name, p in space.searchable.items()
            if p.grid_values() is None
        ]

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        for cell in self._cells:
            key = config_key(cell)
            self._passed[key] += 1
            if self.known.counts[key] < self._passed[key]:  # not yet run as often as listed so far
                return self.known.add(trial_id, cell)
        return None

    def tell(self, trial_id: str, config: dict[str, Any], outcome: Outcome) -> None:
        self.known.tell(trial_id, config, outcome)

    def __getstate__(self) -> dict[str, Any]:
        """A copy (or a pickle: Ray Tune pickles its searcher) enumerates the cells again from the
        first, skipping those known, as a searcher rebuilt from its tells does."""
        return {**self.__dict__, "_cells": None, "_passed": Counter()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._cells = _cells(self.space)


def _cells(space: Space) -> Iterator[dict[str, Any]]:
    return iter_grid(space.subspace(list(space.searchable)))
