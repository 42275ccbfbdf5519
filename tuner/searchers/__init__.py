"""Searchers by name: one registry, lazily imported, all behind :class:`Searcher`."""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import ValidationError

from tuner.errors import Problem
from tuner.searchers._base import Outcome, Searcher, SearcherOptions, space_size
from tuner.space import Space

# name -> "module:Class"; a new searcher is one module plus one line here.
SEARCHERS: dict[str, str] = {
    "grid": "tuner.searchers._grid:GridSearcher",
    "random": "tuner.searchers._random:RandomSearcher",
    "bayes": "tuner.searchers._gp:GPSearcher",
    "optuna": "tuner.searchers._optuna:OptunaSearcher",
}

__all__ = ["SEARCHERS", "Outcome", "Searcher", "SearcherOptions", "check", "create", "notices", "searcher_class"]


def searcher_class(method: str) -> type[Searcher]:
    if method not in SEARCHERS:
        raise KeyError(f"unknown method {method!r}; one of {', '.join(SEARCHERS)}")
    module, name = SEARCHERS[method].split(":")
    cls: type[Searcher] = getattr(importlib.import_module(module), name)
    return cls


def _options(method: str, raw: dict[str, Any]) -> tuple[SearcherOptions | None, list[Problem]]:
    cls = searcher_class(method)
    try:
        return cls.Options.model_validate(raw), []
    except ValidationError as exc:
        from tuner.config._schema import pydantic_problems

        return None, pydantic_problems(exc, "searcher")


def check(method: str, raw_options: dict[str, Any], space: Space, objectives: int = 1) -> list[Problem]:
    """Everything wrong with running ``method`` on ``space`` with these options."""
    if method not in SEARCHERS:
        return [Problem("method", f"unknown method {method!r}; one of {', '.join(SEARCHERS)}")]
    _, problems = _options(method, raw_options)
    cls = searcher_class(method)
    if objectives > 1 and not cls.multi_objective:
        several = [m for m, c in SEARCHERS.items() if searcher_class(m).multi_objective]
        problems.append(
            Problem(
                "method",
                f"{method} optimises one metric; with {objectives} use one of {', '.join(several)} "
                "(optuna: TPE, or searcher: {sampler: nsga2}), or keep one metric",
            )
        )
    grid_axes = list(space.grid_axes)
    if method == "grid" or not grid_axes:
        problems += cls.check_space(space)
    else:
        grid_cls = searcher_class("grid")
        problems += grid_cls.check_space(space.subspace(grid_axes))
        problems += cls.check_space(space.subspace([k for k in space.searchable if k not in grid_axes]))
    return problems


def notices(method: str, raw_options: dict[str, Any], space: Space, run_cap: int | None) -> list[str]:
    """What to tell the user before a run (options already checked): for now, a model-based
    searcher whose ``run_cap`` (per grid cell, with grid axes) ends the study before its model
    proposes anything."""
    options, _ = _options(method, raw_options)
    if options is None or run_cap is None or not space.searchable or method == "grid":
        return []
    cells = 1
    if space.grid_axes:
        cells = space_size(space.subspace(list(space.grid_axes))) or 1
        if set(space.grid_axes) == set(space.searchable):
            return []  # nothing left for the method: the grid runs alone
    per = f" per grid cell ({run_cap} over {cells})" if cells > 1 else ""
    return searcher_class(method).notices(options, -(-run_cap // cells), per)


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
    options, problems = _options(method, raw_options)
    if options is None:
        from tuner.errors import ConfigError

        raise ConfigError(problems)
    if options.seed is not None:
        seed = options.seed
    if not space.searchable:
        method = "grid"
    cls = searcher_class(method)
    if method != "grid" and space.grid_axes:
        from tuner.searchers._grid_product import GridProduct

        return GridProduct(space, seed, options, lambda sub, s: cls(sub, s, options, objectives), run_cap)
    return cls(space, seed, options, objectives)
