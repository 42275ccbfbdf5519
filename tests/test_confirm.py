"""``confirm``: the top trials trained again with fresh seeds, through the engine, and the
held-out test split reported only in final runs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import cli_here

pytestmark = pytest.mark.slow

DIGITS = """
name: small
trainable: trainables.digits:train_mlp
metric: {name: val_accuracy, goal: maximize}
method: random
seed: 3
run_cap: 4
early_terminate: {type: asha, max_t: 3, grace_period: 1, reduction_factor: 2}
parameters:
  lr: {distribution: log_uniform_values, min: 1e-3, max: 3e-2}
  hidden: {values: [32, 64]}
  epochs: {value: 3}
"""


def test_confirm_retrains_the_top_trials_over_fresh_seeds(ray_local: None, tmp_path: Path) -> None:
    (tmp_path / "small.yaml").write_text(textwrap.dedent(DIGITS))
    done = cli_here("run", "small.yaml", "--no-dashboard", "--num-cpus", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "results" / "small"
    search = pd.read_parquet(folder / "trials.parquet")
    assert "metric_test_accuracy" not in search  # the search never sees the test split

    args = ("confirm", "results/small", "--top", "2", "--seeds", "3", "--no-dashboard", "--num-cpus", "2")
    done = cli_here(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "val_accuracy over 3 seed(s) at the full budget" in done.stdout
    runs = pd.read_parquet(folder / "confirm" / "trials.parquet")
    assert len(runs) == 6 and set(runs["status"]) == {"finished"} and runs["seed"].nunique() == 6
    assert runs["metric_test_accuracy"].notna().all()  # final runs report the held-out split
    summary = yaml.safe_load((folder / "confirm.yaml").read_text())
    assert [len(c["values"]) for c in summary["configs"]] == [3, 3]
    assert all(c["std"] >= 0 and 0 < c["mean"] <= 1 and "test_accuracy" in c["metrics"] for c in summary["configs"])
    assert summary["winner"] in {c["trial_id"] for c in summary["configs"]}
    best = yaml.safe_load((folder / "best.yaml").read_text())
    assert best["confirmed"]["trial_id"] == summary["winner"] and best["confirmed"]["seeds"] == 3
    verdict = "stays the best" if not summary["changed"] else "confirmation changed the winner"
    assert verdict in done.stdout
    report = cli_here("report", "results/small", cwd=tmp_path)
    assert report.returncode == 0
    assert "Confirmed over 3 seeds" in (folder / "report.html").read_text()


TWO = """
name: two
trainable: trainables.digits:train_mlp
metric:
  - {name: val_accuracy, goal: maximize}
  - {name: params_k, goal: minimize}
select: {metric: val_accuracy, limits: {params_k: 1}}
method: random
seed: 1
run_cap: 4
parameters:
  lr: {distribution: log_uniform_values, min: 3e-3, max: 3e-2}
  hidden: {values: [8, 64]}
  epochs: {value: 2}
"""


def test_confirm_with_two_objectives_averages_both_and_picks_among_the_front(ray_local: None, tmp_path: Path) -> None:
    (tmp_path / "two.yaml").write_text(textwrap.dedent(TWO))
    done = cli_here("run", "two.yaml", "--no-dashboard", "--num-cpus", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "results" / "two"
    search = pd.read_parquet(folder / "trials.parquet")
    front = set(search.loc[search["pareto"], "trial_id"])

    args = ("confirm", "results/two", "--top", "2", "--seeds", "2", "--no-dashboard", "--num-cpus", "2")
    done = cli_here(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "val_accuracy, params_k over 2 seed(s)" in done.stdout
    summary = yaml.safe_load((folder / "confirm.yaml").read_text())
    taken = [c["trial_id"] for c in summary["configs"]]
    assert set(taken) <= front or front <= set(taken)  # the front first
    best = yaml.safe_load((folder / "best.yaml").read_text())
    assert taken[0] == best["trial_id"]  # select's pick leads
    for c in summary["configs"]:
        assert len(c["values"]) == 2 and c["metrics"]["params_k"] > 0 and "pareto" in c
    winner = next(c for c in summary["configs"] if c["trial_id"] == summary["winner"])
    small = [c for c in summary["configs"] if c["metrics"]["params_k"] <= 1 and c["pareto"]]
    assert winner["pareto"] and (not small or winner in small)
    assert best["confirmed"]["trial_id"] == summary["winner"]
    report = cli_here("report", "results/two", cwd=tmp_path)
    assert report.returncode == 0
    assert "the pick among the Pareto-optimal means" in (folder / "report.html").read_text()
