"""``confirm``: the top trials trained again with fresh seeds, through the engine, and the
held-out test split reported only in final runs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import cli

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


def test_confirm_retrains_the_top_trials_over_fresh_seeds(tmp_path: Path, ray_tmp: Path) -> None:
    (tmp_path / "small.yaml").write_text(textwrap.dedent(DIGITS))
    done = cli("run", "small.yaml", "--no-dashboard", "--num-cpus", "2", cwd=tmp_path, ray_tmp=ray_tmp)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "results" / "small"
    search = pd.read_parquet(folder / "trials.parquet")
    assert "metric_test_accuracy" not in search  # the search never sees the test split

    done = cli(
        "confirm",
        "results/small",
        "--top",
        "2",
        "--seeds",
        "3",
        "--no-dashboard",
        "--num-cpus",
        "2",
        cwd=tmp_path,
        ray_tmp=ray_tmp,
    )
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
    report = cli("report", "results/small", cwd=tmp_path)
    assert report.returncode == 0
    assert "Confirmed over 3 seeds" in (folder / "report.html").read_text()
