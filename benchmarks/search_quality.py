"""What the searchers find for a budget: simple regret on standard problems, over fixed seeds.

    python benchmarks/search_quality.py --seeds 8 --jobs 2   # the README's table (~35 min here; 16 seeds by default)
    python benchmarks/search_quality.py --seeds 10 --problems branin hartmann6
    python benchmarks/search_quality.py --cost          # seconds per bayes suggestion at 300 observations, 6-D
    python benchmarks/search_quality.py --batch         # bayes with 1, 2, 4, 8 pending trials
    python benchmarks/search_quality.py --problems hartmann6 --budgets 80 120 200  # longer runs
    python benchmarks/search_quality.py --basins --seeds 64  # Hartmann6: caught runs by initial design
    python benchmarks/search_quality.py --pruning --seeds 16  # bayes under ASHA: what pruned trials tell it

Arms: our searchers through the ``Searcher`` interface (``random``, ``bayes``, ``optuna`` with TPE
and with its GP), and the libraries called directly as their documentation shows
(bayesian-optimization's ``BayesianOptimization.maximize``, Optuna's ``GPSampler`` with
``study.optimize``, BoTorch's closed loop of ``SingleTaskGP`` and log EI), each with its
defaults: no arm is tuned for a problem. Regret is the best value found minus the known optimum;
the table gives the median over seeds, the quartiles, and how many seeds stalled. Seeds are fixed
(0..N-1), so a rerun on the same machine prints the same table.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tuner import searchers
from tuner.searchers import Outcome, Searcher
from tuner.space import Categorical, Float, Int, Space, parse_parameters

if TYPE_CHECKING:
    from tuner.engine._schedulers import Pruner


@dataclass(frozen=True)
class Problem:
    name: str
    parameters: dict[str, Any]  # the study file's vocabulary
    fn: Callable[[dict[str, Any]], float]
    optimum: float
    budget: int
    second: float | None = None  # the second-best local minimum, where a run can get stuck

    @property
    def space(self) -> Space:
        return parse_parameters(self.parameters)[0]


def branin(c: dict[str, Any]) -> float:
    x1, x2 = c["x1"], c["x2"]
    b, cc, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + cc * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


_H_A = np.array(
    [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
)
_H_P = 1e-4 * np.array(
    [[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
     [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]]
)  # fmt: skip
_H_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(c: dict[str, Any]) -> float:
    x = np.array([c[f"x{i}"] for i in range(6)])
    return float(-(_H_ALPHA * np.exp(-(_H_A * (x - _H_P) ** 2).sum(1))).sum())


def levy(c: dict[str, Any]) -> float:
    x = np.array([c[f"x{i}"] for i in range(len(c))])
    w = 1 + (x - 1) / 4
    head = math.sin(math.pi * w[0]) ** 2
    body = ((w[:-1] - 1) ** 2 * (1 + 10 * np.sin(math.pi * w[:-1] + 1) ** 2)).sum()
    tail = (w[-1] - 1) ** 2 * (1 + math.sin(2 * math.pi * w[-1]) ** 2)
    return float(head + body + tail)


_ACT = {"relu": (-3.0, 0.0), "tanh": (-2.5, 0.3), "gelu": (-3.3, 0.1)}  # best log10(lr), penalty


def mixed(c: dict[str, Any]) -> float:
    """A training-like response: the best learning rate depends on the activation, width and
    dropout interact; optimum 0 at lr 1e-3, width 96, relu, dropout 0.2."""
    best_u, penalty = _ACT[c["act"]]
    u = math.log10(c["lr"]) - best_u
    w = math.log2(c["width"] / 96)
    d = c["dropout"] - 0.2
    return u * u + 0.5 * w * w * (1 + c["dropout"]) + 4 * d * d + 0.5 * u * d + penalty


PROBLEMS = {
    "branin": Problem(
        "Branin", {"x1": {"min": -5.0, "max": 10.0}, "x2": {"min": 0.0, "max": 15.0}}, branin, 0.397887357729739, 50
    ),
    "hartmann6": Problem(
        "Hartmann6",
        {f"x{i}": {"min": 0.0, "max": 1.0} for i in range(6)},
        hartmann6,
        -3.32236801141551,
        80,
        second=-3.20316191839610,
    ),
    "mixed": Problem(
        "mixed (log float, int, 3-way categorical, float)",
        {
            "lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1},
            "width": {"distribution": "int_uniform", "min": 16, "max": 256},
            "act": {"values": ["relu", "tanh", "gelu"]},
            "dropout": {"min": 0.0, "max": 0.6},
        },
        mixed,
        0.0,
        30,
    ),
    "levy5": Problem("Levy-5", {f"x{i}": {"min": -10.0, "max": 10.0} for i in range(5)}, levy, 0.0, 100),
}


# -- arms ----------------------------------------------------------------------------------------
def ours(method: str, **options: Any) -> Callable[..., list[float]]:
    """An arm of ours: ``run(problem, seed, budget, told=(), configs=None)`` gives the values of
    ``budget`` trials, the searcher first told ``told`` (configuration, value) pairs (a warm
    start); each trial's configuration is appended to ``configs`` when given."""

    def run(
        problem: Problem, seed: int, budget: int, told: Any = (), configs: list[dict[str, Any]] | None = None
    ) -> list[float]:
        searcher = searchers.create(method, problem.space, seed, dict(options), run_cap=budget)
        for i, (config, value) in enumerate(told):
            searcher.tell(f"w{i}", config, Outcome(value, "complete", 1))
        values = []
        for i in range(budget):
            config = searcher.suggest(f"t{i}")
            if config is None:
                break
            value = problem.fn(config)
            searcher.tell(f"t{i}", config, Outcome(value, "complete", 1))
            values.append(value)
            if configs is not None:
                configs.append(config)
        return values

    return run


def _optuna_suggest(trial: Any, name: str, spec: dict[str, Any]) -> Any:
    if "values" in spec:
        return trial.suggest_categorical(name, spec["values"])
    if spec.get("distribution") == "int_uniform" or all(isinstance(spec[k], int) for k in ("min", "max")):
        return trial.suggest_int(name, spec["min"], spec["max"])
    return trial.suggest_float(name, spec["min"], spec["max"], log=spec.get("distribution") == "log_uniform_values")


def optuna_gp_direct(
    problem: Problem, seed: int, budget: int, configs: list[dict[str, Any]] | None = None
) -> list[float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    values: list[float] = []

    def objective(trial: Any) -> float:
        config = {name: _optuna_suggest(trial, name, spec) for name, spec in problem.parameters.items()}
        values.append(problem.fn(config))
        if configs is not None:
            configs.append(config)
        return values[-1]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = optuna.create_study(sampler=optuna.samplers.GPSampler(seed=seed))
        study.optimize(objective, n_trials=budget)
    return values


def bayes_opt_direct(
    problem: Problem, seed: int, budget: int, configs: list[dict[str, Any]] | None = None
) -> list[float]:
    """As its README shows: bounds per parameter (a log-scale one as its exponent, an integer with
    ``int``, a categorical as its values), ``maximize(init_points=5, n_iter=...)``."""
    from bayes_opt import BayesianOptimization

    bounds: dict[str, Any] = {}
    for name, spec in problem.parameters.items():
        if "values" in spec:
            bounds[name] = tuple(spec["values"])
        elif spec.get("distribution") == "log_uniform_values":
            bounds[name] = (math.log(spec["min"]), math.log(spec["max"]))
        elif spec.get("distribution") == "int_uniform":
            bounds[name] = (spec["min"], spec["max"], int)
        else:
            bounds[name] = (float(spec["min"]), float(spec["max"]))
    values: list[float] = []

    def target(**params: Any) -> float:
        config = dict(params)
        for name, spec in problem.parameters.items():
            if spec.get("distribution") == "log_uniform_values":
                config[name] = math.exp(config[name])
        values.append(problem.fn(config))
        if configs is not None:
            configs.append(config)
        return -values[-1]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimizer = BayesianOptimization(f=target, pbounds=bounds, random_state=seed, verbose=0)
        optimizer.maximize(init_points=5, n_iter=budget - 5)
    return values[:budget]


def botorch_direct(
    problem: Problem, seed: int, budget: int, configs: list[dict[str, Any]] | None = None, noiseless: bool = False
) -> list[float]:
    """As BoTorch's closed-loop tutorial shows, with its defaults: a scrambled Sobol start of
    ``max(5, 2 d)`` points (Ax's rule), then per trial ``SingleTaskGP`` (``MixedSingleTaskGP`` with
    categories) on inputs scaled to the unit cube and standardised outputs, fitted by
    ``fit_gpytorch_mll``, and ``LogExpectedImprovement`` maximised by ``optimize_acqf`` (10
    restarts from 512 raw samples; ``optimize_acqf_mixed`` over the categories). A log-scale
    parameter is searched as its logarithm, an integer as a float rounded when evaluated."""
    import torch
    from torch.quasirandom import SobolEngine

    torch.set_num_threads(1)
    params: list[tuple[str, Categorical | Float | Int]] = []  # parsed as a study file's are
    for name, param in problem.space.params.items():
        assert isinstance(param, Categorical | Float | Int), param
        params.append((name, param))
    lows, highs, cats = [], [], {}
    for i, (_, param) in enumerate(params):
        if isinstance(param, Categorical):
            lows.append(0.0)
            highs.append(len(param.values) - 1.0)
            cats[i] = len(param.values)
        else:
            lows.append(math.log(param.low) if param.log else float(param.low))
            highs.append(math.log(param.high) if param.log else float(param.high))
    bounds = torch.tensor([lows, highs], dtype=torch.double)

    def decode(x: Any) -> dict[str, Any]:
        config: dict[str, Any] = {}
        for i, (name, param) in enumerate(params):
            if isinstance(param, Categorical):
                config[name] = param.values[round(float(x[i]))]
            else:
                config[name] = param.decode(math.exp(x[i]) if param.log else float(x[i]))
        return config

    d = len(params)
    start = SobolEngine(d, scramble=True, seed=seed).draw(min(max(5, 2 * d), budget), dtype=torch.double)
    scaled = bounds[0] + (bounds[1] - bounds[0]) * start
    for i, n in cats.items():
        scaled[:, i] = (start[:, i] * n).floor().clamp(max=n - 1)
    xs = list(scaled)
    values: list[float] = []
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        while len(values) < budget:
            if len(values) >= len(xs):
                xs.append(_botorch_step(torch.stack(xs), values, bounds, cats, noiseless))
            config = decode(xs[len(values)])
            values.append(problem.fn(config))
            if configs is not None:
                configs.append(config)
    return values


def _botorch_step(train_x: Any, values: list[float], bounds: Any, cats: dict[int, int], noiseless: bool) -> Any:
    """BoTorch's next point: its GP fitted to the trials so far, log EI maximised."""
    import torch
    from botorch.acquisition import LogExpectedImprovement
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import MixedSingleTaskGP, SingleTaskGP
    from botorch.models.transforms import Normalize, Standardize
    from botorch.optim import optimize_acqf, optimize_acqf_mixed
    from gpytorch.mlls import ExactMarginalLogLikelihood

    train_y = -torch.tensor(values, dtype=torch.double).unsqueeze(-1)  # BoTorch maximises
    yvar = torch.full_like(train_y, 1e-6) if noiseless else None  # BoTorch's way to say "noiseless"
    normalize, standardize = Normalize(train_x.shape[-1], bounds=bounds), Standardize(1)
    model: Any
    if cats:
        model = MixedSingleTaskGP(
            train_x, train_y, list(cats), train_Yvar=yvar, input_transform=normalize, outcome_transform=standardize
        )
    else:
        model = SingleTaskGP(train_x, train_y, yvar, input_transform=normalize, outcome_transform=standardize)
    fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    acqf = LogExpectedImprovement(model, best_f=train_y.max())
    if not cats:
        x, _ = optimize_acqf(acqf, bounds, 1, num_restarts=10, raw_samples=512)
        return x[0].detach()
    combos: list[dict[int, float]] = [{}]
    for i, n in cats.items():
        combos = [{**c, i: float(v)} for c in combos for v in range(n)]
    x, _ = optimize_acqf_mixed(acqf, bounds, 1, num_restarts=10, raw_samples=512, fixed_features_list=combos)
    return x[0].detach()


def bayes_opt_then_bayes(problem: Problem, seed: int, budget: int, first: int = 20) -> list[float]:
    """bayesian-optimization called directly for the first ``first`` trials (5 random, then UCB on
    one shared length scale), then ``bayes`` told them all: does its exploring start catch fewer
    Hartmann6 runs in the second basin? (README: within the seed spread.)"""
    configs: list[dict[str, Any]] = []
    values = bayes_opt_direct(problem, seed, min(first, budget), configs)
    return values + ours("bayes", init_points=0)(
        problem, seed, budget - len(values), told=zip(configs, values, strict=True)
    )


ARMS: dict[str, Callable[[Problem, int, int], list[float]]] = {
    "random": ours("random"),
    "bayes": ours("bayes"),
    "optuna TPE": ours("optuna"),
    "optuna gp": ours("optuna", sampler="gp"),
    "bayesian-optimization direct": bayes_opt_direct,
    "Optuna GPSampler direct": optuna_gp_direct,
    "BoTorch direct": botorch_direct,
}
EXPERIMENTS: dict[str, Callable[[Problem, int, int], list[float]]] = {  # by name only, not in the table
    "bayesian-optimization 20, then bayes": bayes_opt_then_bayes,
    "BoTorch direct, noiseless": lambda problem, seed, budget: botorch_direct(problem, seed, budget, noiseless=True),
}


def regret(problem: Problem, values: list[float]) -> float:
    return max(min(values) - problem.optimum, 0.0)


def _one(job: tuple[str, str, int, int]) -> list[float]:
    key, arm, seed, budget = job
    return {**ARMS, **EXPERIMENTS}[arm](PROBLEMS[key], seed, budget)


def quality(
    problems: list[str], arms: list[str], seeds: int, jobs: int, budgets: list[int] | None = None
) -> dict[tuple[str, int], dict[str, list[float]]]:
    """Regret per (problem, budget), arm and seed; runs in ``jobs`` processes of one BLAS thread
    each. The budget is each problem's own, or each of ``budgets``: one run per seed to the
    largest, read at each (a run's first trials are what a shorter run would have done: no arm
    is told its budget)."""
    from concurrent.futures import ProcessPoolExecutor

    table: dict[tuple[str, int], dict[str, list[float]]] = {}
    with ProcessPoolExecutor(jobs, initializer=_one_thread) as pool:
        for key in problems:
            problem = PROBLEMS[key]
            wanted = sorted(budgets or [problem.budget])
            for arm in arms:
                began = time.perf_counter()
                runs = list(pool.map(_one, [(key, arm, s, wanted[-1]) for s in range(seeds)]))
                spent = time.perf_counter() - began
                for budget in wanted:
                    regrets = table.setdefault((key, budget), {})[arm] = [regret(problem, v[:budget]) for v in runs]
                    cell = _cell(regrets)
                    if trapped := _trapped(problem, regrets):
                        cell += f"; {trapped} at or above the second minimum"
                    print(f"  {problem.name}, {budget} / {arm}: {cell} ({spent:.0f} s)", file=sys.stderr, flush=True)
    return table


def _one_thread() -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    warnings.simplefilter("ignore")


def _cell(regrets: list[float]) -> str:
    """Median in bold, quartiles, and how many seeds stalled (regret over 10x the median)."""
    q1, med, q3 = np.percentile(regrets, [25, 50, 75])
    stalled = sum(r > 10 * med for r in regrets)
    return f"**{med:.2g}** [{q1:.2g}, {q3:.2g}] {stalled}/{len(regrets)}"


def _caught(problem: Problem, regret: float) -> bool:
    """Whether a run ended no better than half way from the second minimum to the optimum."""
    return problem.second is not None and regret >= (problem.second - problem.optimum) / 2


def _trapped(problem: Problem, regrets: list[float]) -> str:
    """How many seeds were caught by the second minimum (``k/n``), or "" for a problem without a
    known second minimum."""
    if problem.second is None:
        return ""
    return f"{sum(_caught(problem, r) for r in regrets)}/{len(regrets)}"


def print_table(table: dict[tuple[str, int], dict[str, list[float]]], seeds: int) -> None:
    arms = list(next(iter(table.values())))
    print(f"\nmedian simple regret over {seeds} seeds [quartiles]; runs that stalled (regret over 10x the median)")
    print("| problem, budget | " + " | ".join(arms) + " |")
    print("|---|" + "---|" * len(arms))
    for (key, budget), row in table.items():
        cells = [_cell(v) for v in row.values()]
        print(f"| {PROBLEMS[key].name}, {budget} | " + " | ".join(cells) + " |")
    for (key, budget), row in table.items():
        if PROBLEMS[key].second is not None:
            counts = ", ".join(f"{arm} {_trapped(PROBLEMS[key], v)}" for arm, v in row.items())
            print(f"{PROBLEMS[key].name}, {budget}: seeds at or above the second minimum: {counts}")


# -- which basin ---------------------------------------------------------------------------------
def pulls(configs: list[dict[str, Any]]) -> tuple[float, float]:
    """How strongly Hartmann6's two deepest bumps show in these trials: the largest value of each
    bump's own term, ``alpha_k exp(-sum A_kj (x_j - P_kj)^2)``, over them. Bump 3 makes the global
    minimum (-3.32), bump 4 the second (-3.20); away from a bump its term is near 0."""
    x = np.array([[c[f"x{i}"] for i in range(6)] for c in configs])
    terms = [_H_ALPHA[k] * np.exp(-(_H_A[k] * (x - _H_P[k]) ** 2).sum(1)) for k in (2, 3)]
    return float(terms[0].max()), float(terms[1].max())


def first_draws(arm: str, seed: int, n: int = 10) -> list[dict[str, Any]]:
    """The configurations of an arm's first ``n`` Hartmann6 trials (its initial design: a shorter
    run makes the same first trials)."""
    recording = {"bayes": ours("bayes"), "Optuna GPSampler direct": optuna_gp_direct}
    if arm not in recording:
        raise ValueError(f"no initial design known for {arm}")
    configs: list[dict[str, Any]] = []
    recording[arm](PROBLEMS["hartmann6"], seed, n, configs=configs)
    return configs


def basins(arms: list[str], seeds: int, jobs: int) -> None:
    """Per arm, seeds counted by which bump their initial design came closer to (by the pull of
    :func:`pulls`) and where the run ended (at or above the second minimum: caught)."""
    problem = PROBLEMS["hartmann6"]
    table = quality(["hartmann6"], arms, seeds, jobs)[("hartmann6", problem.budget)]
    print(f"\nHartmann6, {problem.budget} trials, seeds 0..{seeds - 1}: where each run ended, by its first 10 trials")
    print("| arm | design favours the global bump: caught | design favours the second bump: caught |")
    print("|---|---|---|")
    for arm in arms:
        counts = {True: [0, 0], False: [0, 0]}
        for seed, r in enumerate(table[arm]):
            glob, second = pulls(first_draws(arm, seed))
            counts[glob >= second][0] += _caught(problem, r)
            counts[glob >= second][1] += 1
        print(f"| {arm} | {counts[True][0]} of {counts[True][1]} | {counts[False][0]} of {counts[False][1]} |")


# -- cost, batches -------------------------------------------------------------------------------
def suggest_cost(observations: int = 300, measured: int = 40, seed: int = 0, asha: bool = False) -> list[float]:
    """Seconds per ``bayes`` suggestion on Hartmann6 once ``observations`` trials are known;
    ``asha``: trials pruned by ASHA and told with their curves (as :func:`pruned_regret`), so the
    model also holds the rows of the rungs they passed."""
    problem = PROBLEMS["hartmann6"]
    searcher = searchers.create("bayes", problem.space, seed, {}, run_cap=None)
    pruner = _asha(seed) if asha else None
    rng = np.random.default_rng(seed)

    def evaluate(trial_id: str, config: dict[str, Any]) -> None:
        if pruner is None:
            searcher.tell(trial_id, config, Outcome(problem.fn(config), "complete", 1))
        else:
            _asha_trial(searcher, pruner, trial_id, config, lambda c, step: _parallel(problem.fn(c), step), "curve")

    for i in range(observations - measured):  # a history: random points, told
        evaluate(f"h{i}", {f"x{j}": float(v) for j, v in enumerate(rng.random(6))})
    times = []
    for i in range(measured):
        began = time.perf_counter()
        config = searcher.suggest(f"t{i}")
        times.append(time.perf_counter() - began)
        assert config is not None
        evaluate(f"t{i}", config)
    return times


def batch_run(problem: Problem, seed: int, pending: int) -> tuple[list[float], float]:
    """``bayes`` with ``pending`` trials in flight (the oldest ends first); the values in the order
    the trials ended and the smallest distance between two configurations in flight together
    (unit cube)."""
    from tuner.gp import Encoding

    enc = Encoding(problem.space)
    searcher = searchers.create("bayes", problem.space, seed, {}, run_cap=problem.budget)
    flight: list[tuple[str, dict[str, Any]]] = []
    values: list[float] = []
    closest, started = math.inf, 0
    while len(values) < problem.budget:
        while len(flight) < pending and started < problem.budget:
            config = searcher.suggest(f"t{started}")
            assert config is not None
            flight.append((f"t{started}", config))
            started += 1
            if len(flight) > 1:
                rows = enc.encode([c for _, c in flight])
                gaps = np.abs(rows[:-1] - rows[-1]).max(axis=1)
                closest = min(closest, float(gaps.min()))
        trial_id, config = flight.pop(0)
        values.append(problem.fn(config))
        searcher.tell(trial_id, config, Outcome(values[-1], "complete", 1))
    return values, closest


def batch(problem: Problem, seeds: int) -> None:
    """Median regret with 1, 2, 4 and 8 trials in flight, and the budget at which one trial at a
    time does as well: what the trials in flight cost, in trials."""
    reached: list[float] = []  # one at a time: the median regret by each trial
    for pending in (1, 2, 4, 8):
        runs = [batch_run(problem, s, pending) for s in range(seeds)]
        if not reached:
            budgets = range(1, problem.budget + 1)
            reached = [float(np.median([regret(problem, v[:b]) for v, _ in runs])) for b in budgets]
        regrets = [regret(problem, values) for values, _ in runs]
        median = float(np.median(regrets))
        budget = next((b for b, r in enumerate(reached, 1) if r <= median), None)
        matched = f"one at a time does as well by trial {budget}" if budget else "better than one at a time"
        print(
            f"{problem.name}, {problem.budget} trials, {pending} pending: median regret {median:.2g} "
            f"(worst {max(regrets):.2g}), {matched}; closest pair in flight {min(g for _, g in runs):.3g}",
            flush=True,
        )


# -- multi-fidelity ------------------------------------------------------------------------------
LATE = {"x": {"min": 0.0, "max": 1.0}, "y": {"min": 0.0, "max": 1.0}}


def late_bloomer_curve(config: dict[str, Any], step: int) -> float:
    """A learning curve whose final value is best near x = 0.85, where training starts slowly:
    there the loss is worse than elsewhere at steps 1, 3 and 9, and better at 27."""
    x, y = config["x"], config["y"]
    late = math.exp(-(((x - 0.85) / 0.1) ** 2))
    final = 0.3 - 0.3 * late + 0.2 * (x - 0.5) ** 2 + 0.05 * (y - 0.5) ** 2
    return final + (2 + 1.5 * late) * math.exp(-(step - 1) / (1 + 5 * late))


Told = Literal["curve", "last", "final"]
Curve = Callable[[dict[str, Any], int], float]  # a trial's report at a step


def _asha(seed: int, brackets: int = 1) -> Pruner:
    """ASHA as a study runs it (max_t 27, grace 1, reduction factor 3) on a metric ``loss``."""
    from tuner.config import Asha
    from tuner.engine._schedulers import Pruner

    asha = Asha(type="asha", max_t=27, grace_period=1, reduction_factor=3, brackets=brackets)
    return Pruner(asha, "loss", False, seed)


def _asha_trial(
    searcher: Searcher, pruner: Pruner, trial_id: str, config: dict[str, Any], curve: Curve, told: Told
) -> float | None:
    """One trial reporting ``curve(config, step)`` for steps 1 to 27 until ``pruner`` stops it,
    then told to ``searcher``: its value at 27, ``None`` if pruned. ``told``: what the searcher
    hears of a pruned trial, its reports (``curve``, as a study tells it), its last value at its
    last step only (``last``, before curves), or its last value as if final (``final``, a
    searcher without a multi-fidelity model)."""
    pruner.add(trial_id)
    reports: list[tuple[float, float]] = []
    for step in range(1, 28):
        value = curve(config, step)
        reports.append((step, value))
        done = step == 27
        if done or pruner.should_stop(trial_id, step, value):
            pruner.remove(trial_id, {"step": step, "loss": value})
            state = "complete" if done or told == "final" else "pruned"
            kept = tuple(reports) if told == "curve" else None
            searcher.tell(trial_id, config, Outcome(value, state, step, curve=kept))  # type: ignore[arg-type]
            return value if done else None
    return None


def _under_asha(
    space: Space, curve: Curve, seed: int, trials: int, told: Told, brackets: int = 1
) -> list[tuple[dict[str, Any], float | None]]:
    """``bayes`` under ASHA, trials one at a time: each trial's configuration and its value at
    step 27 (``None`` if pruned)."""
    searcher = searchers.create("bayes", space, seed, {}, run_cap=trials)
    pruner = _asha(seed, brackets)
    out: list[tuple[dict[str, Any], float | None]] = []
    for i in range(trials):
        config = searcher.suggest(f"t{i}")
        assert config is not None
        out.append((config, _asha_trial(searcher, pruner, f"t{i}", config, curve, told)))
    return out


def _parallel(final: float, step: float) -> float:
    """A learning curve that never crosses another: ``final`` plus ``3 exp(-(step - 1) / 4)``."""
    return final + 3.0 * math.exp(-(step - 1) / 4)


def asha_study(seed: int, trials: int = 40, told: Told = "curve", brackets: int = 1) -> tuple[float, int, int]:
    """The late-bloomer curve under ASHA: the best final value among trials that reached 27, how
    many trials were late bloomers (|x - 0.85| < 0.1), and how many of those reached 27."""
    runs = _under_asha(parse_parameters(LATE)[0], late_bloomer_curve, seed, trials, told, brackets)
    finals = [v for _, v in runs if v is not None]
    late = [v for c, v in runs if abs(c["x"] - 0.85) < 0.1]
    return (min(finals) if finals else math.inf), len(late), sum(v is not None for v in late)


def pruned_regret(problem: Problem, seed: int, trials: int, told: Told) -> tuple[float, int]:
    """``problem`` under ASHA with learning curves that never cross (:func:`_parallel`), so
    every rung ranks configurations as the end does: the simple regret among the trials that
    reached the end, and how many did."""
    runs = _under_asha(problem.space, lambda c, step: _parallel(problem.fn(c), step), seed, trials, told)
    finals = [v for _, v in runs if v is not None]
    return min(finals) - _parallel(problem.optimum, 27), len(finals)


def pruning(keys: list[str], seeds: int) -> None:
    """What ``bayes`` finds under ASHA, by what it is told of pruned trials."""
    for key in keys:
        problem = PROBLEMS[key]
        told: Told
        for told in ("curve", "last", "final"):
            runs = [pruned_regret(problem, seed, problem.budget, told) for seed in range(seeds)]
            regrets = [r for r, _ in runs]
            q1, q3 = np.percentile(regrets, [25, 75])
            print(
                f"{problem.name}, {problem.budget} trials under ASHA, told {told}: median regret "
                f"{np.median(regrets):.2g} [{q1:.2g}, {q3:.2g}], worst {max(regrets):.2g}, "
                f"trials to the end {np.median([n for _, n in runs]):.0f}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes (default: one per CPU)")
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=[*ARMS, *EXPERIMENTS])
    parser.add_argument("--cost", action="store_true", help="only the cost of a suggestion")
    parser.add_argument("--batch", action="store_true", help="only bayes with 1, 2, 4, 8 pending trials")
    parser.add_argument("--budgets", nargs="+", type=int, help="trials (default: each problem's own)")
    parser.add_argument("--basins", action="store_true", help="only Hartmann6: caught runs by initial design")
    parser.add_argument("--pruning", action="store_true", help="only bayes under ASHA: what pruned trials tell it")
    args = parser.parse_args()
    if args.basins:
        basins([a for a in args.arms if a in ("bayes", "Optuna GPSampler direct")], args.seeds, args.jobs)
        return
    if args.pruning:
        pruning(args.problems, args.seeds)
        return
    if args.cost:
        for asha in (False, True):
            times = suggest_cost(asha=asha)
            print(
                f"bayes, 300 observations, 6-D{', under ASHA' if asha else ''}: median {np.median(times):.3f} s, "
                f"p95 {np.percentile(times, 95):.3f} s"
            )
        return
    if args.batch:
        for key in args.problems:
            batch(PROBLEMS[key], args.seeds)
        return
    print_table(quality(args.problems, args.arms, args.seeds, args.jobs, args.budgets), args.seeds)


if __name__ == "__main__":
    main()
