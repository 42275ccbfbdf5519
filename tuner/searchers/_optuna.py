"""``optuna``: Optuna's samplers (TPE by default, or its GP) through ask-and-tell."""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal

import numpy as np

from tuner.errors import Problem
from tuner.searchers._base import Outcome, Searcher, SearcherOptions, Unseen, unbounded
from tuner.space import Categorical, Float, Int, Space

_PRIMITIVE = (str, int, float, bool, type(None))


class OptunaOptions(SearcherOptions):
    sampler: Literal["tpe", "gp", "random"] = "tpe"
    n_startup_trials: int = 10
    multivariate: bool = True


class OptunaSearcher(Searcher):
    """A repeat proposal is told its known value (or failed, if pending) and asked again."""

    Options = OptunaOptions

    def __init__(self, space: Space, seed: int, options: SearcherOptions) -> None:
        import optuna

        super().__init__(space, seed, options)
        assert isinstance(options, OptunaOptions)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        sampler: optuna.samplers.BaseSampler
        if options.sampler == "tpe":
            sampler = optuna.samplers.TPESampler(
                seed=seed,
                n_startup_trials=options.n_startup_trials,
                multivariate=options.multivariate,
                constant_liar=True,
            )
        elif options.sampler == "gp":
            sampler = optuna.samplers.GPSampler(seed=seed, n_startup_trials=options.n_startup_trials)
        else:
            sampler = optuna.samplers.RandomSampler(seed=seed)
        self._study = optuna.create_study(direction="minimize", sampler=sampler)
        self._dists = {name: _distribution(p) for name, p in space.searchable.items()}
        self._unseen = Unseen(space, np.random.default_rng(seed))
        self._trials: dict[str, Any] = {}
        self._values: dict[str, float | None] = {}  # config key -> value, once known

    @classmethod
    def check_space(cls, space: Space, path: str = "parameters") -> list[Problem]:
        return unbounded(space, path, "optuna")

    def _decode(self, params: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, p in self.space.searchable.items():
            value = params[name]
            if isinstance(p, Categorical):
                out[name] = value if _primitive(p) else p.values[value]
            elif isinstance(p, Float | Int):
                out[name] = p.decode(value)
        return out

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        import optuna

        from tuner.space import config_key

        for _ in range(20):
            trial = self._study.ask(self._dists)
            config = self._decode(trial.params)
            if self._unseen.is_new(config):
                self._trials[trial_id] = trial
                return self._unseen.add(config)
            known = self._values.get(config_key(config))
            if known is None:
                self._study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                self._study.tell(trial, known)
        fallback = self._unseen.random()  # the sampler keeps repeating itself: explore
        if fallback is not None:
            enqueue = {k: self._encode(k, v) for k, v in fallback.items()}
            self._study.enqueue_trial(enqueue)
            self._trials[trial_id] = self._study.ask(self._dists)
        return fallback

    def _encode(self, name: str, value: Any) -> Any:
        p = self.space.searchable[name]
        if isinstance(p, Categorical) and not _primitive(p):
            return p.values.index(value)
        return value

    def tell(self, trial_id: str, outcome: Outcome) -> None:
        import optuna

        from tuner.space import config_key

        trial = self._trials.pop(trial_id, None)
        if trial is None:
            return
        config = self._decode(trial.params)
        value = outcome.value
        if outcome.state == "infeasible":  # out of memory: as bad as the worst trial seen, so TPE avoids it
            done = [t.value for t in self._study.trials if t.value is not None]
            value = max(done) if done else None
        if value is None or not math.isfinite(value) or outcome.state == "failed":
            self._study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return
        if outcome.state == "infeasible":
            self._study.tell(trial, value)
            return
        self._values[config_key(config)] = value
        if outcome.state == "pruned":
            trial.report(value, int(outcome.step or 0))
            self._study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            self._study.tell(trial, value)


def _primitive(p: Categorical) -> bool:
    return all(isinstance(v, _PRIMITIVE) for v in p.values)


def _distribution(p: Any) -> Any:
    """One pure conversion from our parameter model to an Optuna distribution."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(p, Categorical):
        return CategoricalDistribution(list(p.values) if _primitive(p) else list(range(len(p.values))))
    if isinstance(p, Int):
        return IntDistribution(p.low, p.high, log=p.log)
    if isinstance(p, Float):
        if p.q is not None and not p.log:
            lo = math.ceil(p.low / p.q - 1e-9) * p.q
            hi = math.floor(p.high / p.q + 1e-9) * p.q
            return FloatDistribution(lo, hi, step=p.q)
        return FloatDistribution(p.low, p.high, log=p.log)
    raise TypeError(f"optuna cannot search {p!r}")
