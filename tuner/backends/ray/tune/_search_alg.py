"""``method: tune``: a Ray Tune search algorithm as the study's searcher, on any backend.

``searcher: {search_alg: pkg.module:name}`` names a ``ray.tune.search.Searcher`` instance (or a
class made with no arguments): ``HyperOptSearch``, ``AxSearch``, ``OptunaSearch`` with a sampler
or a space of its own, a searcher of your own. The engine asks it as Tune does:
``set_search_properties(metric, mode, param_space)`` once, with the study's parameters as Tune
domains (:func:`param_space`) unless it was made with a space of its own; ``suggest(trial_id)``
for each trial (a nested configuration, flattened to the study's parameters; ``None`` or
``FINISHED``: nothing more to propose); ``on_trial_complete(trial_id, result, error)`` when the
trial ends, with its value under the searcher's metric (the study's), pruned trials with their
last value as under Tune. A trial it never suggested (a resumed study's history, a warm start)
reaches it through ``add_evaluated_point`` where the searcher has one.

Grid axes are refused (Tune's searchers take no ``grid_search``), as are parameters with no Tune
domain (``beta``, ``log_normal``). Each study has its own copy of a module-level instance; one a
script hands over (:class:`tuner.integrations.ray_tune.Tuner`) is used itself, as Tune uses it.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import math
from typing import Any

from tuner.backends.ray.tune._pbt import mutation
from tuner.config import by_value, import_named
from tuner.errors import Problem
from tuner.searchers import Outcome, Searcher, SearcherOptions
from tuner.space import Beta, Categorical, Constant, Normal, Space, flatten, nest

VALUE = "_value"  # the metric a searcher made without one is told of (minimised)


class SearchAlgOptions(SearcherOptions):
    search_alg: str  # pkg.module:name of a ray.tune.search.Searcher instance or class


def param_space(space: Space) -> dict[str, Any]:
    """The study's parameters as a Tune ``param_space`` (nested, Tune's domains)."""
    from ray import tune

    flat: dict[str, Any] = {}
    for name, param in space.params.items():
        if isinstance(param, Constant):
            flat[name] = param.value
        elif isinstance(param, Categorical):
            flat[name] = tune.choice(list(param.values))
        else:
            flat[name] = mutation(param)
    return nest(flat, space.paths)


class TuneSearchAlg(Searcher):
    """A Ray Tune search algorithm behind tuner's :class:`Searcher` (see the module)."""

    Options = SearchAlgOptions

    @classmethod
    def check_space(cls, space: Space, path: str = "parameters") -> list[Problem]:
        problems = []
        for name, param in space.searchable.items():
            if param.grid:
                problems.append(
                    Problem(f"{path}.{name}", "method tune: a Ray Tune search algorithm takes no grid axis")
                )
            elif isinstance(param, Beta) or (isinstance(param, Normal) and param.log):
                problems.append(Problem(f"{path}.{name}", "method tune: Ray Tune has no domain for this distribution"))
        return problems

    def __init__(self, space: Space, seed: int, options: SearcherOptions, objectives: int = 1) -> None:
        super().__init__(space, seed, options, objectives)
        assert isinstance(options, SearchAlgOptions)
        alg = import_named(options.search_alg)
        if inspect.isclass(alg):
            alg = alg()
        elif not by_value.given(options.search_alg):  # a module's instance: each study its own copy
            with contextlib.suppress(Exception):  # one that cannot be copied is used as it is
                alg = copy.deepcopy(alg)
        self.alg = alg
        metric, mode = getattr(alg, "metric", None), getattr(alg, "mode", None)
        self.metric = metric if isinstance(metric, str) else VALUE
        self.sign = -1.0 if mode == "max" else 1.0  # the searcher's values from minimised ones
        if not getattr(alg, "_space", None) and not getattr(alg, "_config_space", None):
            told = alg.set_search_properties(self.metric, mode or "min", param_space(space))
            if told is False and not isinstance(metric, str):
                raise ValueError(f"{type(alg).__name__} refused the study's parameters (set_search_properties)")
        self.suggested: set[str] = set()

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        proposed = self.alg.suggest(trial_id)
        if proposed is None or proposed == "FINISHED":
            return None
        flat = flatten(proposed)
        missing = [k for k in self.space.searchable if k not in flat]
        if missing:
            raise ValueError(f"{type(self.alg).__name__} proposed no value for {', '.join(missing)}")
        self.suggested.add(trial_id)
        return {k: flat[k] for k in self.space.searchable}

    def tell(self, trial_id: str, config: dict[str, Any], outcome: Outcome) -> None:
        if outcome.state == "running":
            return
        value = outcome.value
        failed = outcome.state in ("failed", "infeasible") or value is None or not math.isfinite(value)
        told = None if failed or value is None else self.sign * value
        if trial_id in self.suggested:
            self.suggested.discard(trial_id)
            result = None if told is None else {self.metric: told}
            self.alg.on_trial_complete(trial_id, result=result, error=failed)
            return
        with contextlib.suppress(NotImplementedError):  # a searcher without it learns from its own trials only
            self.alg.add_evaluated_point(
                nest(config, self.space.paths), told, error=failed, pruned=outcome.state == "pruned"
            )
