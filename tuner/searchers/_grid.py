"""Exhaustive grid search over finite parameters."""

from __future__ import annotations

from typing import Any

from tuner.errors import Problem
from tuner.searchers._base import Outcome, Searcher, SearcherOptions
from tuner.space import Space, describe, grid_product


class GridSearcher(Searcher):
    """Every combination, in the order the YAML lists the values."""

    def __init__(self, space: Space, seed: int, options: SearcherOptions) -> None:
        super().__init__(space, seed, options)
        self._cells = grid_product(space.subspace(list(space.searchable)))
        self._next = 0

    @classmethod
    def check_space(cls, space: Space, path: str = "parameters") -> list[Problem]:
        return [
            Problem(
                f"{path}.{name}",
                f"grid needs a finite set of values, got a {describe(p)}; "
                "write values: [...], or add q: (q_uniform), or use method random/bayes/optuna",
            )
            for name, p in space.searchable.items()
            if p.grid_values() is None
        ]

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self._next >= len(self._cells):
            return None
        self._next += 1
        return dict(self._cells[self._next - 1])

    def tell(self, trial_id: str, outcome: Outcome) -> None:
        pass
