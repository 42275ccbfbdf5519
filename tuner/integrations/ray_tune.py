"""Ray Tune scripts on tuner: whole scripts, and our searchers inside yours.

A whole script on tuner's engine: ``python -m tuner run train_tune.py [args...]`` (``run_script``)
runs it with ``tune.Tuner`` and ``tune.run`` being :class:`Tuner` and :func:`run`, which take
Ray Tune's arguments and return results with ``ResultGrid``'s names; see
``docs/ray-tune.md``.

Our searchers inside your own Ray Tune script::

    from ray import tune
    from tuner.integrations.ray_tune import Searcher

    tuner = tune.Tuner(
        train_fn,
        param_space={"lr": tune.loguniform(1e-4, 1e-1), "layers": tune.randint(1, 5)},
        tune_config=tune.TuneConfig(search_alg=Searcher(method="bayes", metric="loss", mode="min", seed=0)),
    )

``Searcher`` is a ``ray.tune.search.Searcher`` for every method tuner ships; see
``docs/tune-searcher.md``. Ray is imported when ``Searcher`` is first used, not with this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tuner.integrations._tune_script import Tuner, run, run_script

if TYPE_CHECKING:
    from tuner.backends.ray.tune import ParamSpaceSearcher as Searcher

__all__ = ["Searcher", "Tuner", "run", "run_script"]


def __getattr__(name: str) -> Any:
    if name == "Searcher":
        from tuner.backends.ray.tune import ParamSpaceSearcher

        return ParamSpaceSearcher
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
