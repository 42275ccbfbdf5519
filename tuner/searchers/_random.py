"""Random search: independent draws from each parameter's distribution."""

from __future__ import annotations

from typing import Any

import numpy as np

from tuner.searchers._base import Outcome, Searcher, SearcherOptions, Unseen
from tuner.space import Space


class RandomSearcher(Searcher):
    """Seeded draws; on a finite space a configuration is never drawn twice."""

    def __init__(self, space: Space, seed: int, options: SearcherOptions) -> None:
        super().__init__(space, seed, options)
        self._unseen = Unseen(space, np.random.default_rng(seed))

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self._unseen.size is None:  # continuous: repeats are measure-zero, draw freely
            return self._unseen.add({k: p.sample(self._unseen.rng) for k, p in self.space.searchable.items()})
        return self._unseen.random()

    def tell(self, trial_id: str, outcome: Outcome) -> None:
        pass
