"""Faults inside trials: out of memory (the real torch error, no GPU needed) and failure budgets."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import tuner
from tuner.config import load_study
from tuner.searchers import Outcome, create
from tuner.space import parse_parameters

pytestmark = pytest.mark.slow

HUNGRY = """
name: hungry
trainable: trainables.toy:memory_hungry
metric: {name: loss, goal: minimize}
method: grid
parameters:
  fits: {values: [64, 16]}
  batch_size: {value: 64}
"""


def test_out_of_memory_is_recorded_as_oom_and_never_best(ray_local: None, in_tmp: Path) -> None:
    out = tuner.run(load_study(text=textwrap.dedent(HUNGRY)), quiet=True)
    trials = tuner.load_results(out.folder).set_index("params_fits")
    assert trials.loc[16, "status"] == "oom"
    assert "OutOfMemoryError: CUDA out of memory" in trials.loc[16, "error"]
    assert trials.loc[64, "status"] == "finished"
    assert tuner.load_best(out.folder)["params"]["fits"] == 64
    assert "peak_gpu_mb" in trials.columns


def test_halve_batch_retries_with_gradient_accumulation(ray_local: None, in_tmp: Path) -> None:
    study = load_study(text=textwrap.dedent(HUNGRY) + "on_oom: halve_batch\n")
    out = tuner.run(study, quiet=True)
    trials = tuner.load_results(out.folder).set_index("params_fits")
    assert list(trials["status"]) == ["finished", "finished"]
    assert trials.loc[16, "attempts"] == 2  # 64 -> 32 -> 16 per step: accumulation 4
    assert trials.loc[16, "metric_accumulation"] == 4.0
    assert trials.loc[64, "metric_accumulation"] == 1.0


def test_failure_budget_stops_new_trials(ray_local: None, in_tmp: Path) -> None:
    body = """
    name: budget
    trainable: trainables.toy:faulty
    metric: {name: loss, goal: minimize}
    method: grid
    max_failed_trials: 1
    max_concurrent: 1
    parameters:
      mode: {values: [raise, ok, raise, ok, ok, ok]}
    """
    out = tuner.run(load_study(text=textwrap.dedent(body)), quiet=True)
    assert out.stop_reason == "2 trials failed, more than max_failed_trials (1)"
    assert sum(out.counts.values()) == 3


@pytest.mark.parametrize("method", ["bayes", "optuna"])
def test_infeasible_configurations_count_as_the_worst_seen(method: str) -> None:
    space, _ = parse_parameters({"x": {"min": 0.0, "max": 1.0}})
    searcher = create(method, space, 0, {}, run_cap=None)
    values = {"a": 0.5, "b": 2.0, "c": 1.0}
    configs = {t: searcher.suggest(t) for t in [*values, "d"]}
    for t, v in values.items():
        searcher.tell(t, configs[t], Outcome(v, "complete", 1))
    searcher.tell("d", configs["d"], Outcome(None, "infeasible"))
    assert sorted(searcher.observed().values()) == [0.5, 1.0, 2.0, 2.0]  # d counts as the worst seen, 2.0
    assert searcher.suggest("e") is not None
