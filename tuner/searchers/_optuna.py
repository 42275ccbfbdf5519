"""``optuna``: Optuna's samplers (TPE by default, or its GP) through ask-and-tell."""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal

from pydantic import Field

from tuner.searchers._base import Known, Outcome, Searcher, SearcherOptions, start_up_only
from tuner.space import Categorical, Float, Int, Quantiled, Space, config_key

_PRIMITIVE = (str, int, float, bool, type(None))


class OptunaOptions(SearcherOptions):
    sampler: Literal["tpe", "gp", "random", "nsga2"] = "tpe"
    n_startup_trials: int = Field(default=10, ge=0)
    multivariate: bool = True


class OptunaSearcher(Searcher):
    multi_objective = True  # a study of several directions: TPE, NSGA-II, GP or random
    """An Optuna study in memory, asked and told.

    A repeat proposal is told its known value (or failed, if pending) and asked again. Trials
    told without being asked here (a resume's history, a warm start) are added to the study
    as they ended, or enqueued and asked when still running, so every result is credited to
    its configuration. The sampler's random state is not part of that history: a rebuilt
    study proposes as well as the original, not the same configurations. (Re-seeding Optuna's
    samplers at every ask would make them so, but measurably weakens its GP sampler.)
    """

    Options = OptunaOptions

    def __init__(self, space: Space, seed: int, options: SearcherOptions, objectives: int = 1) -> None:
        import optuna

        super().__init__(space, seed, options, objectives)
        assert isinstance(options, OptunaOptions)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        self._study = optuna.create_study(directions=["minimize"] * objectives, sampler=self._sampler(seed))
        self._dists = {name: _distribution(p) for name, p in space.searchable.items()}
        self.known = Known(space, seed)
        self._trials: dict[str, Any] = {}  # our trial id -> the Optuna trial asked for it
        self._ids: dict[int, str] = {}  # Optuna's trial number -> our trial id
        self._values: dict[str, Any] = {}  # config key -> value (values, with several objectives), once known

    def _sampler(self, seed: int) -> Any:
        import optuna

        options = self.options
        assert isinstance(options, OptunaOptions)
        if options.sampler == "tpe":
            return optuna.samplers.TPESampler(
                seed=seed,
                n_startup_trials=options.n_startup_trials,
                multivariate=options.multivariate,
                constant_liar=True,
            )
        if options.sampler == "gp":
            return optuna.samplers.GPSampler(seed=seed, n_startup_trials=options.n_startup_trials)
        if options.sampler == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed)
        return optuna.samplers.RandomSampler(seed=seed)

    def _ask(self) -> Any:
        """An Optuna trial with every active parameter suggested. With conditions, define-by-run:
        parameters are suggested in order, each only when those it depends on allow it, so the
        sampler never sees an inactive one (TPE models each by the trials that had it)."""
        if not self.space.conditions:
            return self._study.ask(self._dists)
        trial = self._study.ask()
        chosen: dict[str, Any] = {}
        for name, dist in self._dists.items():
            if name in self.space.active({**chosen, name: None}):
                chosen[name] = self._decode({name: _suggest(trial, name, dist)})[name]
        return trial

    @classmethod
    def notices(cls, options: SearcherOptions, trials: int, per: str = "") -> list[str]:
        assert isinstance(options, OptunaOptions)
        if options.sampler not in ("tpe", "gp"):
            return []
        return start_up_only(f"optuna ({options.sampler})", "n_startup_trials", options.n_startup_trials, trials, per)

    def _decode(self, params: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, p in self.space.searchable.items():
            if name not in params:  # inactive
                continue
            value = params[name]
            if isinstance(p, Categorical):
                out[name] = value if _primitive(p) else p.values[value]
            elif isinstance(p, Float | Int):
                out[name] = p.decode(value)
            elif isinstance(p, Quantiled):
                out[name] = p.ppf(value)
        return out

    def _encode(self, config: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for name, p in self.space.searchable.items():
            if name not in config:  # inactive
                continue
            value = config[name]
            if isinstance(p, Quantiled):
                out[name] = p.cdf(value)
            else:
                out[name] = p.values.index(value) if isinstance(p, Categorical) and not _primitive(p) else value
        return out

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        import optuna

        for _ in range(20):
            trial = self._ask()
            config = self._decode(trial.params)
            if self.known.is_new(config):
                self._trials[trial_id] = trial
                self._ids[trial.number] = trial_id
                return self.known.add(trial_id, config)
            known = self._values.get(config_key(config))
            if known is None:
                self._study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                self._study.tell(trial, known)
        fallback = self.known.random()  # the sampler keeps repeating itself: explore
        if fallback is not None:
            self._study.enqueue_trial(self._encode(fallback))
            self._trials[trial_id] = self._ask()
            self._ids[self._trials[trial_id].number] = trial_id
            self.known.add(trial_id, fallback)
        return fallback

    def tell(self, trial_id: str, config: dict[str, Any], outcome: Outcome) -> None:
        import optuna
        from optuna.trial import TrialState, create_trial

        self.known.tell(trial_id, config, outcome)
        trial = self._trials.pop(trial_id, None)
        if outcome.state == "running":
            if trial is None:
                self._study.enqueue_trial(self._encode(config))
                self._trials[trial_id] = self._ask()
                self._ids[self._trials[trial_id].number] = trial_id
            else:
                self._trials[trial_id] = trial
            return
        if self.objectives > 1:
            self._tell_several(trial_id, trial, config, outcome)
            return
        value = outcome.value
        if outcome.state == "infeasible":  # out of memory: as bad as the worst trial seen, so TPE avoids it
            done = [t.value for t in self._study.trials if t.value is not None]
            value = max(done) if done else None
        failed = value is None or not math.isfinite(value) or outcome.state == "failed"
        if not failed and outcome.state != "infeasible":
            self._values[config_key(config)] = value
        pruned = outcome.state == "pruned" and not failed
        step = int(outcome.step or 0)
        if trial is None:  # a trial from the history, not asked here
            state = TrialState.FAIL if failed else TrialState.PRUNED if pruned else TrialState.COMPLETE
            params = self._encode(config)
            self._study.add_trial(
                create_trial(
                    state=state,
                    value=None if failed or pruned else value,
                    params=params,
                    distributions={k: d for k, d in self._dists.items() if k in params},
                    intermediate_values={step: value} if pruned and value is not None else None,
                )
            )
            self._ids[len(self._study.trials) - 1] = trial_id
        elif failed:
            self._study.tell(trial, state=optuna.trial.TrialState.FAIL)
        elif pruned:
            trial.report(value, step)
            self._study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            self._study.tell(trial, value)

    def _tell_several(self, trial_id: str, trial: Any, config: dict[str, Any], outcome: Outcome) -> None:
        """Several objectives: a complete trial is told all its values; a pruned one is told pruned
        (Optuna keeps no intermediate values with several objectives); an infeasible one counts as
        the worst seen on every objective."""
        from optuna.trial import TrialState, create_trial

        values = list(outcome.values) if outcome.values is not None else None
        if outcome.state == "infeasible":
            done = [t.values for t in self._study.trials if t.state == TrialState.COMPLETE]
            values = [max(v[i] for v in done) for i in range(self.objectives)] if done else None
        failed = values is None or not all(math.isfinite(v) for v in values) or outcome.state == "failed"
        state = TrialState.FAIL if failed else TrialState.PRUNED if outcome.state == "pruned" else TrialState.COMPLETE
        if state == TrialState.COMPLETE and outcome.state != "infeasible":
            self._values[config_key(config)] = values
        told = values if state == TrialState.COMPLETE else None
        if trial is None:
            params = self._encode(config)
            dists = {k: d for k, d in self._dists.items() if k in params}
            self._study.add_trial(create_trial(state=state, values=told, params=params, distributions=dists))
            self._ids[len(self._study.trials) - 1] = trial_id
        elif told is None:
            self._study.tell(trial, state=state)
        else:
            self._study.tell(trial, told)

    def observed(self) -> dict[str, float]:
        """The value each ended trial counts as in the sampler (an infeasible one: the worst seen)."""
        return {  # the first objective's, with several
            self._ids[t.number]: t.values[0]
            for t in self._study.trials
            if t.values is not None and t.number in self._ids
        }


def _primitive(p: Categorical) -> bool:
    return all(isinstance(v, _PRIMITIVE) for v in p.values)


def _suggest(trial: Any, name: str, dist: Any) -> Any:
    """``trial.suggest_*`` for one of our distributions (define-by-run)."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


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
    if isinstance(p, Quantiled):  # searched by its quantile, as W&B's bayes does
        return FloatDistribution(0.0, 1.0)
    raise TypeError(f"optuna cannot search {p!r}")
