"""Random search: independent draws from each parameter's distribution."""

from __future__ import annotations

from typing import Any

from tuner.searchers._base import Known, Outcome, Searcher, SearcherOptions
from tuner.space import Space


class RandomSearcher(Searcher):
    """Seeded draws; a configuration is never drawn twice."""

    multi_objective = True  # it does not model the outcomes

    def __init__(self, space: Space, seed: int, options: SearcherOptions, objectives: int = 1) -> None:
        super().__init__(space, seed, options, objectives)
        self.known = Known(space, seed)

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        config = self.known.random()
        return None if config is None else self.known.add(trial_id, config)

    def tell(self, trial_id: str, config: dict[str, Any], outcome: Outcome) -> None:
        self.known.tell(trial_id, config, outcome)
