"""The ``method`` and ``searcher`` fields checked against the study's space and metrics."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from tuner.config._schema import pydantic_problems
from tuner.errors import Problem
from tuner.searchers import SEARCHERS, SearcherOptions, searcher_class
from tuner.space import Space, space_size


def _options(method: str, raw: dict[str, Any]) -> tuple[SearcherOptions | None, list[Problem]]:
    try:
        return searcher_class(method).Options.model_validate(raw), []
    except ValidationError as exc:
        return None, pydantic_problems(exc, "searcher")


def check_method(method: str, raw_options: dict[str, Any], space: Space, objectives: int = 1) -> list[Problem]:
    """Everything wrong with running ``method`` on ``space`` with these options."""
    if method not in SEARCHERS:
        return [Problem("method", f"unknown method {method!r}; one of {', '.join(SEARCHERS)}")]
    _, problems = _options(method, raw_options)
    cls = searcher_class(method)
    if objectives > 1 and not cls.multi_objective:
        several = [m for m in SEARCHERS if searcher_class(m).multi_objective]
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


def method_notices(method: str, raw_options: dict[str, Any], space: Space, run_cap: int | None) -> list[str]:
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
