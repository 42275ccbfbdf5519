"""Grid axes combined with a model-based searcher over the remaining parameters.

Every cell of the ``grid: true`` parameters gets its own searcher (its own model) over the
rest; ``run_cap`` is spread evenly over the cells and cells take turns, so that all of them
progress together. Ray Tune refuses this combination; here it is a wrapper.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tuner.searchers._base import Outcome, Searcher, SearcherOptions
from tuner.space import Space, config_key, grid_product


class GridProduct(Searcher):
    def __init__(
        self,
        space: Space,
        seed: int,
        options: SearcherOptions,
        inner: Callable[[Space, int], Searcher],
        run_cap: int | None,
    ) -> None:
        super().__init__(space, seed, options)
        self._axes = list(space.grid_axes)
        rest = space.subspace([k for k in space.searchable if k not in self._axes])
        self._cells = grid_product(space.subspace(self._axes))
        self._index = {config_key(cell): i for i, cell in enumerate(self._cells)}
        n = len(self._cells)
        self._caps: list[int | None] = [
            None if run_cap is None else run_cap // n + (1 if i < run_cap % n else 0) for i in range(n)
        ]
        self._searchers = [inner(rest, seed + i) if rest.searchable else None for i in range(n)]
        self._trials: list[set[str]] = [set() for _ in range(n)]  # the trials known in each cell
        self._done = [False] * n

    def _open(self, i: int) -> bool:
        cap = self._caps[i]
        if self._searchers[i] is None:  # nothing but grid axes: one trial per cell
            cap = 1 if cap is None else min(cap, 1)
        return not self._done[i] and (cap is None or len(self._trials[i]) < cap)

    def _turn(self) -> int:
        """Cells take turns: the open cell with the fewest trials, the first in YAML order on ties."""
        return min(range(len(self._cells)), key=lambda i: (not self._open(i), len(self._trials[i]), i))

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        for _ in range(len(self._cells)):
            i = self._turn()
            if not self._open(i):
                return None
            searcher = self._searchers[i]
            config = {} if searcher is None else searcher.suggest(trial_id)
            if config is None:
                self._done[i] = True
                continue
            self._trials[i].add(trial_id)
            return {**self._cells[i], **config}
        return None

    def tell(self, trial_id: str, config: dict[str, Any], outcome: Outcome) -> None:
        i = self._index.get(config_key({k: config.get(k) for k in self._axes}))
        if i is None:  # a configuration from outside this grid (an older study's)
            return
        self._trials[i].add(trial_id)
        searcher = self._searchers[i]
        if searcher is not None:
            searcher.tell(trial_id, {k: v for k, v in config.items() if k not in self._axes}, outcome)
