"""Searchers by name: one registry, lazily imported, all behind :class:`Searcher`."""

from __future__ import annotations

import importlib
from typing import Any

from tuner.searchers._base import Outcome, Searcher, SearcherOptions
from tuner.space import Space

# name -> "module:Class"; a new searcher is one module plus one line here.
SEARCHERS: dict[str, str] = {
    "grid": "tuner.searchers._grid:GridSearcher",
    "random": "tuner.searchers._random:RandomSearcher",
    "bayes": "tuner.searchers._gp:GPSearcher",
    "optuna": "tuner.searchers._optuna:OptunaSearcher",
    "tune": "tuner.backends.ray.tune._search_alg:TuneSearchAlg",  # a Ray Tune search algorithm
}
# tuner's own searchers, each keeping the whole Searcher contract (never the same configuration
# twice, a finite space covered once, rebuilt from its history); ``tune`` asks a user's object
OWN = ("grid", "random", "bayes", "optuna")

__all__ = ["OWN", "SEARCHERS", "Outcome", "Searcher", "SearcherOptions", "create", "searcher_class"]


def searcher_class(method: str) -> type[Searcher]:
    if method not in SEARCHERS:
        raise KeyError(f"unknown method {method!r}; one of {', '.join(SEARCHERS)}")
    module, name = SEARCHERS[method].split(":")
    cls: type[Searcher] = getattr(importlib.import_module(module), name)
    return cls


def create(
    method: str,
    space: Space,
    seed: int,
    raw_options: dict[str, Any],
    run_cap: int | None,
    points: list[dict[str, Any]] | None = None,
    objectives: int = 1,
) -> Searcher:
    """The searcher a study runs: grid axes, if any, wrap the chosen method; ``points`` (flat
    configurations, possibly partial) are run first."""
    searcher = _create(method, space, seed, raw_options, run_cap, objectives)
    if points:
        from tuner.searchers._queued import Queued

        return Queued(space, seed, searcher.options, searcher, points)
    return searcher


def _create(
    method: str, space: Space, seed: int, raw_options: dict[str, Any], run_cap: int | None, objectives: int
) -> Searcher:
    options = searcher_class(method).Options.model_validate(raw_options)  # checked by tuner.config
    if options.seed is not None:
        seed = options.seed
    if not space.searchable:
        method = "grid"
    cls = searcher_class(method)
    if method != "grid" and space.grid_axes:
        from tuner.searchers._grid_product import GridProduct

        return GridProduct(space, seed, options, lambda sub, s: cls(sub, s, options, objectives), run_cap)
    return cls(space, seed, options, objectives)
