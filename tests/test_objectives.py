"""Several objectives: which methods run them, the Pareto-optimal trials flagged, ``select``
and ``best``, and the front in the report."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import cli_here
from tuner.config import load_study
from tuner.errors import ConfigError
from tuner.results._pareto import pareto_mask

BASE = """
trainable: trainables.toy:tradeoff
metric: [{name: loss, goal: minimize}, {name: cost, goal: minimize}]
method: random
run_cap: 4
parameters:
  lr: {distribution: log_uniform_values, min: 1e-3, max: 1e-1}
  width: {values: [8, 16, 32, 64, 128]}
"""


def test_the_pareto_front_of_a_table() -> None:
    trials = pd.DataFrame(
        {
            "trial_id": ["a", "b", "c", "d", "e"],
            "status": ["finished", "finished", "finished", "pruned", "finished"],
            "metric_acc": [0.9, 0.8, 0.7, 0.99, 0.9],
            "metric_size": [10.0, 5.0, 6.0, 1.0, 12.0],
        }
    )
    mask = pareto_mask(trials, [("acc", True), ("size", False)])
    # c is dominated by b; e by a; d was pruned (its values are from before its end)
    assert list(trials.loc[mask, "trial_id"]) == ["a", "b"]


def test_methods_that_cannot_are_refused_and_select_is_checked() -> None:
    with pytest.raises(ConfigError) as err:
        load_study(text=BASE.replace("method: random", "method: bayes"))
    assert "method: bayes optimises one metric; with 2 use one of grid, random, optuna" in str(err.value)
    for extra, message in [
        ("select: {metric: accuracy}", "select: 'accuracy' is not one of the study's metrics (loss, cost)"),
        ("select: {metric: loss, limits: {size: 1}}", "select: 'size' is not one of the study's metrics"),
    ]:
        with pytest.raises(ConfigError) as err:
            load_study(text=BASE + extra + "\n")
        assert message in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_study(text=BASE.replace("{name: cost, goal: minimize}", "{name: loss, goal: maximize}"))
    assert "metric: each metric once, got loss, loss" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_study(text=BASE.replace("goal: minimize}, {", "goal: minimize, target: 0.1}, {"))
    assert "target stops a study with one metric; with several it is not supported" in str(err.value)
    one = "metric: {name: loss, goal: minimize}\n"
    with pytest.raises(ConfigError) as err:
        load_study(text=BASE.replace(BASE.splitlines()[2] + "\n", one) + "select: {metric: loss}\n")
    assert "select: picks among the Pareto-optimal trials of several metrics; this study has one" in str(err.value)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["optuna", "random"])
def test_a_two_objective_study_end_to_end(method: str, ray_local: None, tmp_path: Path) -> None:
    study = textwrap.dedent(f"""
        name: two
        trainable: trainables.toy:tradeoff
        metric: [{{name: loss, goal: minimize}}, {{name: cost, goal: minimize}}]
        method: {method}
        searcher: {{}}
        seed: 1
        run_cap: 14
        early_terminate: {{type: asha, max_t: 4, grace_period: 1, reduction_factor: 2}}
        parameters:
          lr: {{distribution: log_uniform_values, min: 1e-3, max: 1e-1}}
          width: {{values: [8, 16, 32, 64, 128]}}
    """)
    if method == "optuna":
        study = study.replace("searcher: {}", "searcher: {sampler: tpe, n_startup_trials: 5}")
    (tmp_path / "two.yaml").write_text(study)
    done = cli_here("run", "two.yaml", "--no-dashboard", "--num-cpus", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "several metrics: early_terminate prunes on the first, loss, only" in done.stderr
    assert "Pareto-optimal: " in done.stdout
    folder = tmp_path / "results" / "two"
    trials = pd.read_parquet(folder / "trials.parquet")
    front = trials[trials["pareto"]]
    assert len(front) >= 1 and set(front["status"]) == {"finished"}
    finished = trials[trials["status"] == "finished"]
    for _, row in finished[~finished["pareto"]].iterrows():  # every other finished trial is dominated
        assert any(
            f["metric_loss"] <= row["metric_loss"] and f["metric_cost"] <= row["metric_cost"]
            for _, f in front.iterrows()
        )
    best = yaml.safe_load((folder / "best.yaml").read_text())
    assert {p["trial_id"] for p in best["pareto"]} == set(front["trial_id"])
    shown = cli_here("best", "results/two", "--format", "json", cwd=tmp_path)
    assert shown.returncode == 0 and "Pareto-optimal trial(s) (minimize loss, minimize cost)" in shown.stderr
    assert {p["trial_id"] for p in json.loads(shown.stdout)} == set(front["trial_id"])
    report = cli_here("report", "results/two", cwd=tmp_path)
    assert report.returncode == 0 and (folder / "pareto.png").stat().st_size > 10_000

    # select: the lowest loss with a cost of at most 0.5 (width <= 32), every trial trained to its end
    picked = study.replace("name: two", "name: picked").replace("early_terminate", "# early_terminate")
    (tmp_path / "two.yaml").write_text(picked + "select: {metric: loss, limits: {cost: 0.5}}\n")
    done = cli_here("run", "two.yaml", "--no-dashboard", "--num-cpus", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    picked = yaml.safe_load((tmp_path / "results" / "picked" / "best.yaml").read_text())
    assert picked["params"]["width"] <= 32 and picked["chosen_by"] == "select: best loss within {'cost': 0.5}"
    within = pd.read_parquet(tmp_path / "results" / "picked" / "trials.parquet")
    within = within[within["pareto"] & (within["metric_cost"] <= 0.5)]
    assert picked["trial_id"] == within.loc[within["metric_loss"].idxmin(), "trial_id"]
