"""``bayes``: Gaussian-process Bayesian optimisation on :mod:`tuner.gp` (numpy and scipy).

- Every parameter kind natively: reals and log-scale reals in the unit cube (log space for a log
  scale), integers and ``q`` ladders as discrete values, categoricals with a Hamming kernel.
- One length scale per input (Matern 5/2, MAP fit with Optuna's GPSampler's priors, a noise
  floor low enough to resolve a deterministic objective's last digits); the values are
  Yeo-Johnson transformed (power fitted in [0, 2]) and standardised, so that a few very bad
  trials do not flatten the region that matters; log expected improvement; a mixed maximiser
  (see :mod:`tuner.gp._acquisition`).
- The first ``init_points`` trials (10) are drawn from the parameters' distributions.
- Concurrent trials: each pending configuration is given the model's mean there, but never
  better than the best value seen (a "clipped kriging believer"), so the next proposal is not
  drawn to it and a batch of pending trials stays spread out.
- Pruned trials: when a study prunes, a fidelity input (how far a row got, on a log scale) joins
  the model and proposals are made for the full budget. A pruned trial gives its last value; a
  finished one its final value and a row at each rung it passed (the steps where trials were
  pruned, read from its learning curve); each rung's rows are shifted by how much worse the
  finished trials were there than at the end. So trials are compared at equal steps, and a
  pruned one is not mistaken for a good one that merely stopped early. A configuration that
  starts slow and ends best is judged by what trials like it did at the end, not by where
  pruned ones stopped.
- Never a configuration twice; a proposal is a function of the history alone (seeded from the
  number of trials known), so a searcher rebuilt from a journal goes on as the original would.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import scipy.optimize
import scipy.stats
from pydantic import Field

from tuner.gp import Acquisition, Encoding, Hyper, fit, propose
from tuner.searchers._base import Known, Outcome, Searcher, SearcherOptions, start_up_only
from tuner.space import Space

REFIT_FROM_DEFAULTS_BELOW = 30  # under this many observations, every fit starts from the defaults
ANCHOR_EVERY = 10  # past it, a fit from the defaults every 10 observations, warm starts between
POWER = (0.0, 2.0)  # the range of the Yeo-Johnson power
SPREAD = 1e-3  # the least distance (unit cube) between a proposal and a trial in flight
RUNGS = 4  # at most this many early steps of each learning curve join the model


class BayesOptions(SearcherOptions):
    # the model proposes once this many trials have started and two have results
    init_points: int = Field(default=10, ge=0)
    acquisition: Literal["ei", "ucb", "poi"] = "ei"
    # ucb: how many standard deviations of optimism
    kappa: float = Field(default=2.576, ge=0)
    # ei, poi: the improvement that counts, in standard deviations of the values
    xi: float = Field(default=0.0, ge=0)


class GPSearcher(Searcher):
    """``init_points`` draws from the parameters' distributions, then the GP proposes."""

    Options = BayesOptions

    def __init__(self, space: Space, seed: int, options: SearcherOptions, objectives: int = 1) -> None:
        super().__init__(space, seed, options, objectives)
        assert isinstance(options, BayesOptions)
        self.known = Known(space, seed)
        self.encoding = Encoding(space)
        self._anchors: dict[int, Hyper] = {}  # observations -> the fit to the first that many, from defaults

    @classmethod
    def notices(cls, options: SearcherOptions, trials: int, per: str = "") -> list[str]:
        assert isinstance(options, BayesOptions)
        return start_up_only("bayes", "init_points", options.init_points, trials, per)

    def tell(self, trial_id: str, config: dict[str, Any], outcome: Outcome) -> None:
        self.known.tell(trial_id, config, outcome)

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

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        from threadpoolctl import threadpool_limits

        options = self.options
        assert isinstance(options, BayesOptions)
        rng = self.known.rng()
        observed = self.observed()
        config = None
        if len(self.known) >= options.init_points and len(observed) >= 2 and self.encoding.dim:
            with threadpool_limits(1):  # small matrices: one thread is faster, and trials keep the cores
                config = self._from_model(observed, rng)
        if config is None:
            config = self.known.random(rng)
        return None if config is None else self.known.add(trial_id, config)

    def _data(self, ids: list[str], observed: dict[str, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """Rows, transformed targets and categorical flags for these trials; with a last column
        for how far each row got (``(0, 1]``, log scale) when any of them was pruned. Then every
        finished trial also gives a row for each step at which some trial was pruned (the
        scheduler's rungs), read from its learning curve: its early values are what tells a
        configuration that is bad from one that is merely pruned. A row's value is shifted by its
        rung's gap (:func:`_gaps`). (The pruned trials' own early reports add rows, and cost,
        but not what they find.)"""
        enc = self.encoding
        x = enc.encode([self.known.configs[t] for t in ids])
        outcomes = [self.known.outcomes[t] for t in ids]
        values = [observed[t] for t in ids]
        if all(o.state != "pruned" for o in outcomes):
            return x, _transform(np.array(values)), enc.is_categorical, False
        top = math.log1p(max([o.step for o in outcomes if o.step is not None] + [1.0]))
        rungs = _rungs([o.step for o in outcomes if o.state == "pruned" and o.step is not None])
        rows = list(range(len(ids)))
        steps = [o.step if o.state == "pruned" else None for o in outcomes]  # None: the full budget
        finished = {i: dict(o.curve) for i, o in enumerate(outcomes) if o.state == "complete" and o.curve}
        for i, curve in finished.items():
            for step in rungs:
                if step < (outcomes[i].step or 0) and math.isfinite(curve.get(step, math.nan)):
                    rows.append(i)
                    steps.append(step)
                    values.append(curve[step])
        ends = [(curve, observed[ids[i]]) for i, curve in finished.items()]
        gaps = _gaps(ends, {s for s in steps if s is not None})
        y = np.array([v - (0.0 if s is None else gaps.get(s, 0.0)) for v, s in zip(values, steps, strict=True)])
        fidelity = [1.0 if s is None else math.log1p(s) / top for s in steps]
        x = np.column_stack([x[rows], fidelity])
        return x, _transform(y), np.append(enc.is_categorical, False), True

    def _from_model(self, observed: dict[str, float], rng: np.random.Generator) -> dict[str, Any] | None:
        options = self.options
        assert isinstance(options, BayesOptions)
        enc = self.encoding
        ids = list(observed)
        x, y, categorical, graded = self._data(ids, observed)
        gp = fit(x, y, categorical, start=self._anchor(ids, observed, x.shape[1]))
        fixed = {enc.dim: 1.0} if graded else {}
        full = x[:, -1] >= 1.0 if graded else np.ones(len(y), dtype=bool)
        if full.any():
            best = float(y[full].min())
        else:  # nothing reached the full budget yet: the best the model expects there
            best = float(gp.predict(np.column_stack([x[:, :-1], np.ones(len(x))]))[0].min())
        pending = enc.encode(list(self.known.pending.values()))
        if len(pending):
            xp = np.column_stack([pending, np.ones(len(pending))]) if graded else pending
            gp = gp.condition(xp, np.maximum(gp.predict(xp)[0], best))
        acq = Acquisition(gp, best, options.acquisition, options.kappa, options.xi)
        for row in propose(acq, enc, rng, incumbents=x[np.argsort(y)[:5]], fixed=fixed):
            if len(pending) and _distance(pending, row[: enc.dim], enc.is_categorical).min() < SPREAD:
                continue  # all but a repeat of a trial in flight: no information the batch lacks
            config = enc.decode(row[: enc.dim])
            if self.known.is_new(config):
                return config
        return None

    def _anchor(self, ids: list[str], observed: dict[str, float], dim: int) -> Hyper | None:
        """Where the hyperparameter search starts: the defaults while observations are few; past
        that, the fit (from the defaults) to the first multiple of ``ANCHOR_EVERY`` observations.
        Both follow from the history alone, which keeps a rebuilt searcher exact."""
        n = len(ids)
        if n < REFIT_FROM_DEFAULTS_BELOW:
            return None
        m = n - n % ANCHOR_EVERY
        if m not in self._anchors:
            x, y, categorical, _ = self._data(ids[:m], observed)
            self._anchors[m] = fit(x, y, categorical).hyper
        hyper = self._anchors[m]
        if len(hyper.log_ils) < dim:  # the fidelity column came later: it starts at the default
            extra = np.zeros(dim - len(hyper.log_ils))
            hyper = Hyper(np.append(hyper.log_ils, extra), hyper.log_scale, hyper.log_noise)
        return hyper


def _gaps(finished: list[tuple[dict[float, float], float]], steps: set[float]) -> dict[float, float]:
    """How much worse a trial is at each of these steps than at the end, the median over the
    finished trials (curve, final value) whose curves say (at least two): subtracted, it puts
    every row on the final scale and leaves the fidelity input only the differences in shape."""
    out = {}
    for step in steps:
        diffs = [curve[step] - final for curve, final in finished if math.isfinite(curve.get(step, math.nan))]
        if len(diffs) >= 2:
            out[step] = float(np.median(diffs))
    return out


def _rungs(pruned_at: list[float], most: int = RUNGS) -> list[float]:
    """The steps at which trials were pruned (with ASHA, its rungs); at most ``most`` of them,
    spread over the range, so that a rule that prunes at any step does not multiply the rows."""
    steps = sorted(set(pruned_at))
    if len(steps) <= most:
        return steps
    return [steps[round(i * (len(steps) - 1) / (most - 1))] for i in range(most)]


def _transform(values: np.ndarray) -> np.ndarray:
    """Standardised, Yeo-Johnson transformed (power by maximum likelihood within ``POWER``), and
    standardised again: a heavy tail of bad values is pulled in, the good end spread out."""
    sd = float(values.std())
    if sd == 0 or len(values) < 4:
        return values - values.mean()
    z = (values - values.mean()) / sd
    power = scipy.optimize.minimize_scalar(
        lambda lam: -scipy.stats.yeojohnson_llf(lam, z), bounds=POWER, method="bounded"
    ).x
    warped = scipy.stats.yeojohnson(z, lmbda=power)
    return (warped - warped.mean()) / max(float(warped.std()), 1e-12)


def _distance(rows: np.ndarray, centre: np.ndarray, categorical: np.ndarray) -> np.ndarray:
    """Euclidean distance in the unit cube; a categorical column adds 1 where it differs."""
    diff = rows - centre
    return np.sqrt(np.where(categorical, (diff != 0).astype(float), diff * diff).sum(axis=1))
