"""``bayes``: Gaussian-process Bayesian optimisation on the ``bayesian-optimization`` package.

Unlike Ray's ``BayesOptSearch`` it searches integer and categorical parameters natively,
models log-scale parameters in log space, never proposes a configuration twice (a repeat is
replaced by a fresh random draw), and keeps concurrent suggestions apart with a constant liar (pending points
are given the worst value seen so far).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal

import numpy as np

from tuner.errors import Problem
from tuner.searchers._base import Known, Outcome, Searcher, SearcherOptions, unbounded
from tuner.space import Categorical, Float, Int, Space


class BayesOptions(SearcherOptions):
    init_points: int = 5
    acquisition: Literal["ucb", "ei", "poi"] = "ucb"
    kappa: float = 2.576
    xi: float = 0.01


class GPSearcher(Searcher):
    """The first ``init_points`` suggestions are random; after that the GP proposes."""

    Options = BayesOptions

    def __init__(self, space: Space, seed: int, options: SearcherOptions) -> None:
        from bayes_opt.parameter import CategoricalParameter

        super().__init__(space, seed, options)
        assert isinstance(options, BayesOptions)
        self.known = Known(space, seed)
        self._init_points = max(options.init_points, 1)
        pbounds: dict[str, Any] = {}
        for name, p in space.searchable.items():
            if isinstance(p, Categorical):
                pbounds[name] = CategoricalParameter(name, [str(i) for i in range(len(p.values))])
            elif isinstance(p, Int):
                pbounds[name] = (p.low, p.high, int)
            elif isinstance(p, Float):
                pbounds[name] = (math.log(p.low), math.log(p.high)) if p.log else (p.low, p.high)
        self._pbounds = pbounds

    def observed(self) -> dict[str, float]:
        """The value each ended trial counts as (minimised); an infeasible one: the worst seen."""
        done = self.known.outcomes
        values = [o.value for o in done.values() if o.value is not None and math.isfinite(o.value)]
        worst = max(values) if values else None
        out = {}
        for t, o in done.items():
            if o.state == "infeasible" and worst is not None:
                out[t] = worst
            elif o.state in ("complete", "pruned") and o.value is not None and math.isfinite(o.value):
                out[t] = o.value
        return out

    def _observed(self) -> list[tuple[dict[str, Any], float]]:
        """Encoded params and targets (maximised)."""
        return [(self._encode(self.known.configs[t]), -v) for t, v in self.observed().items()]

    def _model(self, observed: list[tuple[dict[str, Any], float]]) -> Any:
        """A GP fitted to the observations plus a pessimistic lie at each pending point.

        (``bayes_opt``'s own ``ConstantLiar`` loses categorical parameters when it copies
        the target space, so the lie is told here.)
        """
        from bayes_opt import BayesianOptimization, acquisition

        options = self.options
        assert isinstance(options, BayesOptions)
        acq: acquisition.AcquisitionFunction
        self._rs = np.random.RandomState(self.known.rng().integers(2**31))
        if options.acquisition == "ucb":
            acq = acquisition.UpperConfidenceBound(kappa=options.kappa, random_state=self._rs)
        elif options.acquisition == "ei":
            acq = acquisition.ExpectedImprovement(xi=options.xi, random_state=self._rs)
        else:
            acq = acquisition.ProbabilityOfImprovement(xi=options.xi, random_state=self._rs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            opt = BayesianOptimization(
                f=None,
                pbounds=self._pbounds,
                random_state=self._rs,
                verbose=0,
                allow_duplicate_points=True,
                acquisition_function=acq,
            )
            for params, target in observed:
                opt.register(params=params, target=target)
            lie = min(t for _, t in observed)
            for config in self.known.pending.values():
                opt.register(params=self._encode(config), target=lie)
        return opt

    @classmethod
    def check_space(cls, space: Space, path: str = "parameters") -> list[Problem]:
        return unbounded(space, path, "bayes")

    def _decode(self, raw: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, p in self.space.searchable.items():
            value = raw[name]
            if isinstance(p, Categorical):
                out[name] = p.values[int(value)]
            elif isinstance(p, Int):
                out[name] = p.decode(value)
            elif isinstance(p, Float):
                out[name] = p.decode(math.exp(value) if p.log else value)
        return out

    def _encode(self, config: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, p in self.space.searchable.items():
            value = config[name]
            if isinstance(p, Categorical):
                out[name] = str(p.values.index(value))
            elif isinstance(p, Float) and p.log:
                out[name] = math.log(value)
            else:
                out[name] = value
        return out

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        config: dict[str, Any] | None = None
        observed = self._observed()
        if len(self.known) >= self._init_points and observed:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                candidate = self._decode(self._model(observed).suggest())
            if self.known.is_new(candidate):
                config = candidate
        if config is None:
            config = self.known.random()
        return None if config is None else self.known.add(trial_id, config)

    def tell(self, trial_id: str, config: dict[str, Any], outcome: Outcome) -> None:
        self.known.tell(trial_id, config, outcome)
