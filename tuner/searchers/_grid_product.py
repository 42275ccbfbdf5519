"""Grid axes combined with a model-based searcher over the remaining parameters.

Every cell of the ``grid: true`` parameters gets its own searcher (its own model) over the
rest; ``run_cap`` is spread evenly over the cells and cells take turns, so that all of them
progress together. Ray Tune refuses this combination; here it is a wrapper.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tuner.searchers._base import Outcome, Searcher, SearcherOptions
from tuner.space import Space, grid_product


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
        axes = list(space.grid_axes)
        rest = space.subspace([k for k in space.searchable if k not in axes])
        self._cells = grid_product(space.subspace(axes))
        n = len(self._cells)
        self._caps: list[int | None] = [
            None if run_cap is None else run_cap // n + (1 if i < run_cap % n else 0) for i in range(n)
        ]
        self._searchers = [inner(rest, seed + i) if rest.searchable else None for i in range(n)]
        self._counts = [0] * n
        self._done = [False] * n
        self._turn = 0
        self._owner: dict[str, int] = {}

    def _open(self, i: int) -> bool:
        cap = self._caps[i]
        if self._searchers[i] is None:  # nothing but grid axes: one trial per cell
            cap = 1 if cap is None else min(cap, 1)
        return not self._done[i] and (cap is None or self._counts[i] < cap)

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        n = len(self._cells)
        for offset in range(n):
            i = (self._turn + offset) % n
            if not self._open(i):
                continue
            searcher = self._searchers[i]
            config = {} if searcher is None else searcher.suggest(trial_id)
            if config is None:
                self._done[i] = True
                continue
            self._turn = (i + 1) % n
            self._counts[i] += 1
            self._owner[trial_id] = i
            return {**self._cells[i], **config}
        return None

    def tell(self, trial_id: str, outcome: Outcome) -> None:
        i = self._owner.pop(trial_id, None)
        searcher = None if i is None else self._searchers[i]
        if searcher is not None:
            searcher.tell(trial_id, outcome)
