"""``bayes`` beyond the contract: batches that stay apart, pruned trials read as what they are,
and a small run of the search-quality benchmark."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from tests.conftest import ROOT
from tuner import searchers
from tuner.gp import Encoding
from tuner.searchers import Outcome
from tuner.searchers._gp import SPREAD

sys.path.insert(0, str(ROOT))
from benchmarks import search_quality as bench


def test_eight_pending_trials_stay_apart_and_the_model_steers_them() -> None:
    problem = bench.PROBLEMS["branin"]
    searcher = searchers.create("bayes", problem.space, 0, {}, run_cap=None)
    enc = Encoding(problem.space)
    for i in range(20):  # a history the model has converged on
        config = searcher.suggest(f"h{i}")
        assert config is not None
        searcher.tell(f"h{i}", config, Outcome(problem.fn(config), "complete", 1))
    batch = [searcher.suggest(f"p{i}") for i in range(8)]
    rows = enc.encode([c for c in batch if c is not None])
    gaps = np.sqrt(((rows[:, None] - rows[None]) ** 2).sum(-1))[np.triu_indices(8, 1)]
    assert gaps.min() >= SPREAD
    values = [problem.fn(c) for c in batch if c is not None]
    assert np.median(values) < 5.0  # still near the minima (0.4), not scattered over the range (up to 300)


def test_a_study_that_prunes_keeps_trying_configurations_that_start_slow() -> None:
    """Crossing learning curves under ASHA: near x = 0.85 training starts slowly and ends best.
    Told what pruned trials are (reports short of the budget), ``bayes`` keeps proposing such
    configurations; told their pruned values as if final, it learns to avoid them. (Whether one
    of them reaches the end is ASHA's doing: the best found is the same, seed by seed.)"""
    aware = [bench.asha_study(seed, trials=50, brackets=3) for seed in range(3)]
    naive = [bench.asha_study(seed, trials=50, brackets=3, told="final") for seed in range(3)]
    assert sum(late for _, late, _ in aware) > 3 * sum(late for _, late, _ in naive)
    assert all(a <= b + 0.02 for (a, _, _), (b, _, _) in zip(aware, naive, strict=True))


def test_under_asha_the_finished_trials_early_reports_tell_bad_from_pruned() -> None:
    """Curves that never cross: told only where pruned trials stopped, the model puts the
    difference between finished and pruned trials on how far they got and keeps proposing what
    ASHA prunes; told every trial's reports at the rungs, it compares them at equal steps."""
    problem = bench.PROBLEMS["mixed"]
    curves = [bench.pruned_regret(problem, seed, 30, "curve")[0] for seed in range(4)]
    last = [bench.pruned_regret(problem, seed, 30, "last")[0] for seed in range(4)]
    assert np.median(curves) < 0.05 * np.median(last)


def test_search_quality_smoke() -> None:
    """The benchmark's arms run, and on Branin the GP is orders of magnitude ahead of random search."""
    table = bench.quality(["branin"], ["random", "bayes"], seeds=2, jobs=1, budgets=[20, 50])
    assert np.median(table["branin", 50]["bayes"]) < 1e-2 * np.median(table["branin", 50]["random"])
    for arm, regrets in table["branin", 20].items():  # read from the same runs, 30 trials sooner
        assert all(early >= late for early, late in zip(regrets, table["branin", 50][arm], strict=True))
    hartmann6 = bench.PROBLEMS["hartmann6"]  # its second minimum is 0.119 above the optimum
    assert bench._trapped(hartmann6, [0.119, 0.05, 1e-5]) == "1/3"
    assert bench._trapped(bench.PROBLEMS["branin"], [1.0]) == ""
    glob = dict(zip(hartmann6.parameters, [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573], strict=True))
    second = dict(zip(hartmann6.parameters, [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381], strict=True))
    assert hartmann6.fn(glob) < hartmann6.fn(second) < -3.1  # the two minima the pulls tell apart
    g, s = bench.pulls([glob])
    assert g > 2.5 > 0.1 > s
    g, s = bench.pulls([second, {k: 0.0 for k in glob}])
    assert s > 3.0 and g < 0.1
    design = bench.first_draws("bayes", seed=0, n=10)
    assert design == bench.first_draws("bayes", seed=0, n=10) and len({str(c) for c in design}) == 10
    times = bench.suggest_cost(observations=40, measured=3)
    assert len(times) == 3 and all(t > 0 for t in times)


def test_botorch_arm_searches_every_parameter_kind() -> None:
    """The BoTorch reference arm proposes valid configurations of a mixed space (log scale,
    integer, category) from its model, not only from its Sobol start (the first 8 trials in 4-D)."""
    problem = bench.PROBLEMS["mixed"]
    configs: list[dict[str, Any]] = []
    values = bench.botorch_direct(problem, 0, 9, configs)
    assert len(values) == 9 and values == [problem.fn(c) for c in configs]
    for c in configs:
        assert 1e-5 <= c["lr"] <= 1e-1 and isinstance(c["width"], int) and 16 <= c["width"] <= 256
        assert c["act"] in ("relu", "tanh", "gelu") and 0.0 <= c["dropout"] <= 0.6
    assert len({str(c) for c in configs}) == 9
    assert bench.botorch_direct(problem, 0, 9) == values  # seeded: a rerun proposes the same
