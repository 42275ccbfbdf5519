"""Inside ``tune.Tuner``: our ``Searcher(method="bayes")`` against Ray's ``OptunaSearch``, same run.

    python benchmarks/tune_searcher.py                       # the README's table (~4 min here)
    python benchmarks/tune_searcher.py --seeds 10 --budget 50
    python benchmarks/tune_searcher.py --problems mixed --concurrent 2

Two problems, each written as a Tune ``param_space`` and evaluated in a function trainable (no
training): Branin (2 floats) and a 5-parameter training-like response (a log-scale float, a
float, an integer, a log-scale integer and a 3-way choice; see ``mixed``). Each arm runs
``--budget`` trials per seed, one at a time by default (``--concurrent``), both with their
defaults: ``tuner.integrations.ray_tune.Searcher(method="bayes", seed=s)`` and
``OptunaSearch(seed=s)`` (TPE). Regret is the best value found so far minus the known optimum;
the table gives its median over seeds (and the quartiles at the end) after a few budgets, and the
ratio of the final medians. Seeds are fixed (0..N-1).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def branin(c: dict[str, Any]) -> float:
    x1, x2 = c["x1"], c["x2"]
    b, cc, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + cc * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


_ACT = {"relu": (-3.0, 0.0), "tanh": (-2.5, 0.3), "gelu": (-3.3, 0.1)}  # best log10(lr), penalty


def mixed(c: dict[str, Any]) -> float:
    """A training-like response: the best learning rate depends on the activation, width and
    dropout interact, depth has its own optimum; 0 at lr 1e-3, width 96, relu, dropout 0.2, 3 layers."""
    opt, model = c["optimizer"], c["model"]
    best_u, penalty = _ACT[model["act"]]
    u = math.log10(opt["lr"]) - best_u
    w = math.log2(model["width"] / 96)
    d = opt["dropout"] - 0.2
    depth = 0.3 * (model["layers"] - 3) ** 2
    return u * u + 0.5 * w * w * (1 + opt["dropout"]) + 4 * d * d + 0.5 * u * d + penalty + depth


@dataclass(frozen=True)
class Problem:
    name: str
    fn: Callable[[dict[str, Any]], float]
    optimum: float

    def param_space(self) -> dict[str, Any]:
        from ray import tune

        if self.name == "branin":
            return {"problem": self.name, "x1": tune.uniform(-5.0, 10.0), "x2": tune.uniform(0.0, 15.0)}
        return {
            "problem": self.name,
            "optimizer": {"lr": tune.loguniform(1e-5, 1e-1), "dropout": tune.uniform(0.0, 0.6)},
            "model": {"layers": tune.randint(1, 6), "width": tune.lograndint(16, 257), "act": tune.choice(list(_ACT))},
        }


PROBLEMS = {"branin": Problem("branin", branin, 0.397887357729739), "mixed": Problem("mixed", mixed, 0.0)}


def objective(config: dict[str, Any]) -> None:
    """The trainable: the problem's value, reported once."""
    from ray import tune

    tune.report({"loss": PROBLEMS[config["problem"]].fn(config)})


def arm(name: str, seed: int) -> Any:
    if name == "tuner bayes":
        from tuner.integrations.ray_tune import Searcher

        return Searcher(method="bayes", seed=seed)
    from ray.tune.search.optuna import OptunaSearch

    return OptunaSearch(seed=seed)


ARMS = ("tuner bayes", "OptunaSearch")


def run(
    problem: Problem, name: str, seed: int, budget: int, concurrent: int, storage: str
) -> tuple[list[float], float]:
    """The values of the trials in the order Tune created them, and the run's wall time."""
    from ray import tune

    tuner = tune.Tuner(
        objective,
        param_space=problem.param_space(),
        tune_config=tune.TuneConfig(
            search_alg=arm(name, seed),
            num_samples=budget,
            metric="loss",
            mode="min",
            max_concurrent_trials=concurrent,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(storage_path=storage, name=f"{problem.name}-{name.split()[-1]}-{seed}", verbose=0),
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grid = tuner.fit()
    wall = time.perf_counter() - start
    assert len(grid) == budget and not grid.errors, (len(grid), grid.errors)
    return [float((grid[i].metrics or {})["loss"]) for i in range(len(grid))], wall


def regrets(values: list[float], optimum: float, budgets: list[int]) -> list[float]:
    best = np.minimum.accumulate(values)
    return [float(best[min(b, len(best)) - 1] - optimum) for b in budgets]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", nargs="+", choices=list(PROBLEMS), default=list(PROBLEMS))
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--budget", type=int, default=30)
    parser.add_argument("--concurrent", type=int, default=1, help="trials at once (default 1: sequential)")
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    os.environ.pop("RAY_ADDRESS", None)
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    budgets = sorted({b for b in (10, 20, args.budget) if b <= args.budget})

    import optuna

    from benchmarks._ray import private_ray

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    table: dict[tuple[str, str], list[list[float]]] = {}
    walls: dict[str, float] = dict.fromkeys(ARMS, 0.0)
    with tempfile.TemporaryDirectory(prefix="tuner-bench-") as tmp, private_ray(args.cpus, tmp):
        for key in args.problems:
            problem = PROBLEMS[key]
            for seed in range(args.seeds):
                for name in ARMS:
                    values, wall = run(problem, name, seed, args.budget, args.concurrent, tmp)
                    walls[name] += wall
                    table.setdefault((key, name), []).append(regrets(values, problem.optimum, budgets))
                    regret = min(values) - problem.optimum
                    print(f"{key:7s} seed {seed} {name:13s} regret {regret:.4g}  ({wall:.1f} s)")

    at = " | ".join(f"@{b}" for b in budgets)
    print(f"\n{args.seeds} seeds, {args.budget} trials each, {args.concurrent} at a time; median regret (quartiles)")
    print(f"| problem | arm | {at} | final quartiles |")
    print("|---|---|" + "---|" * len(budgets) + "---|")
    ratios = []
    for key in args.problems:
        finals = {}
        for name in ARMS:
            rows = np.array(table[(key, name)])
            medians = np.median(rows, axis=0)
            q1, q3 = np.percentile(rows[:, -1], [25, 75])
            finals[name] = medians[-1]
            cells = " | ".join(f"{m:.3g}" for m in medians)
            print(f"| {key} | {name} | {cells} | {q1:.3g} - {q3:.3g} |")
        ours, theirs = finals["tuner bayes"], finals["OptunaSearch"]
        ratios.append(f"{key} {ours / theirs:.3g}" + (f" ({theirs / ours:.3g}x lower)" if 0 < ours < theirs else ""))
    print("\nfinal median regret, tuner bayes / OptunaSearch: " + ", ".join(ratios))
    print("wall time of all runs: " + ", ".join(f"{name} {walls[name]:.0f} s" for name in ARMS))


if __name__ == "__main__":
    main()
