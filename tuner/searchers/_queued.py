"""``points_to_evaluate``: known configurations run first, then the study's method.

The wrapped searcher is told of each queued point as it starts (``running``) and of its
outcome, as of any trial it did not suggest, so its model starts from them. A point may be
partial: the parameters it leaves out are drawn at random (seeded). A point listed twice runs
twice. On resume the points already run are recognised by their configuration and not run
again.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from tuner.searchers._base import Known, Outcome, Searcher, SearcherOptions
from tuner.space import Space, config_key, same


class Queued(Searcher):
    def __init__(
        self, space: Space, seed: int, options: SearcherOptions, inner: Searcher, points: list[dict[str, Any]]
    ) -> None:
        super().__init__(space, seed, options)
        self.inner = inner
        self.known = Known(space, seed)
        self._points = list(points)
        self._passed: Counter[str] = Counter()  # points taken from the queue so far, by key (a point listed
        # twice runs twice: confirm's repeats)

    def _matches(self, point: dict[str, Any]) -> int:
        """How many known trials ran this point (its parameters at its values)."""
        return sum(all(k in c and same(c[k], v) for k, v in point.items()) for c in self.known.configs.values())

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        while self._points:
            point = self._points.pop(0)
            key = config_key(point)
            self._passed[key] += 1
            if self._matches(point) >= self._passed[key]:  # run before this searcher was rebuilt (resumed)
                continue
            rng = self.known.rng(salt=1)
            drawn = {k: p.sample(rng) for k, p in self.space.searchable.items() if k not in point}
            config = self.known.add(trial_id, {**drawn, **point})
            self.inner.tell(trial_id, config, Outcome(None, "running"))
            return config
        return self.inner.suggest(trial_id)

    def tell(self, trial_id: str, config: dict[str, Any], outcome: Outcome) -> None:
        self.known.tell(trial_id, config, outcome)
        self.inner.tell(trial_id, config, outcome)
