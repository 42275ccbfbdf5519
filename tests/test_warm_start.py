"""Warm starts and queued points: an older study's trials feed a new searcher, known
configurations run first, and both are checked when the study is read."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import cli_here
from tuner.config import load_study
from tuner.errors import ConfigError
from tuner.results._warm import read_warm_start
from tuner.searchers import Outcome, create
from tuner.space import parse_parameters

SPACE = {
    "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1},
    "layers": {"min": 1, "max": 5},
    "act": {"values": ["relu", "tanh"]},
}


@pytest.mark.parametrize("method", ["random", "bayes", "optuna", "grid"])
def test_points_run_first_partial_ones_completed_and_never_twice(method: str) -> None:
    space, _ = parse_parameters({**SPACE, "lr": {"values": [0.001, 0.01, 0.1]}} if method == "grid" else SPACE)
    points = [{"lr": 0.01, "layers": 3, "act": "relu"}, {"layers": 5}]
    searcher = create(method, space, 0, {}, 10, points=points)
    first, second = searcher.suggest("t1"), searcher.suggest("t2")
    assert first == points[0]
    assert second is not None and second["layers"] == 5 and set(second) == {"lr", "layers", "act"}
    searcher.tell("t1", first, Outcome(1.0, "complete"))
    # a resumed study: the history is told to a new searcher, which does not run the point again
    again = create(method, space, 0, {}, 10, points=points)
    again.tell("t1", first, Outcome(1.0, "complete"))
    assert again.suggest("t2")["layers"] == 5  # type: ignore[index]


BASE = """
trainable: trainables.toy:quadratic
metric: {name: loss, goal: minimize}
method: bayes
run_cap: 4
parameters:
  lr: {distribution: log_uniform_values, min: 1e-4, max: 1e-1}
  layers: {min: 1, max: 5}
"""


def test_points_and_warm_starts_are_checked_when_the_study_is_read(tmp_path: Path) -> None:
    text = BASE + "points_to_evaluate:\n  - {lr: 0.5, layers: 3}\n  - {layers: 2, depth: 1}\nwarm_start: nowhere\n"
    with pytest.raises(ConfigError) as err:
        load_study(text=text)
    lines = str(err.value)
    assert "points_to_evaluate[0].lr: must be a number in [0.0001, 0.1]" in lines
    assert "points_to_evaluate[1].depth: is not a parameter of this study (lr, layers)" in lines
    assert "warm_start: no study results at 'nowhere' (a results/<name> folder)" in lines


@pytest.mark.slow
def test_a_study_warm_started_from_an_older_one(ray_local: None, tmp_path: Path) -> None:
    old = BASE.replace("run_cap: 4", "run_cap: 6\nseed: 1\nname: old\nmethod: random").replace("method: bayes\n", "")
    (tmp_path / "old.yaml").write_text(old)
    done = cli_here("run", "old.yaml", "--no-dashboard", "--num-cpus", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    before = pd.read_parquet(tmp_path / "results" / "old" / "trials.parquet")
    history = pd.read_parquet(tmp_path / "results" / "old" / "history.parquet")
    space = parse_parameters({k: SPACE[k] for k in ("lr", "layers")})[0]
    warm = read_warm_start(tmp_path / "results" / "old", space, "loss")
    curves = [curve for *_, curve in warm.observations]
    assert len(curves) == 6 and all(curve is not None and len(curve) == 10 for curve in curves)  # steps 1 to 10
    t1 = history[history["trial_id"] == "t0001"]
    assert curves[0] == tuple(zip(t1["step"].astype(float), t1["loss"], strict=True))
    assert curves[0][-1][1] == warm.observations[0][1]  # the curve ends at the value told
    narrower = float(before["params_lr"].median())  # half the old trials fall outside the new range
    new = textwrap.dedent(f"""
        name: new
        trainable: trainables.toy:quadratic
        metric: {{name: loss, goal: minimize}}
        method: bayes
        searcher: {{init_points: 2}}
        run_cap: 3
        warm_start: results/old
        points_to_evaluate: [{{lr: {narrower / 2}, layers: 3}}]
        parameters:
          lr: {{distribution: log_uniform_values, min: 1e-4, max: {narrower}}}
          layers: {{min: 1, max: 5}}
    """)
    (tmp_path / "new.yaml").write_text(new)
    done = cli_here("run", "new.yaml", "--no-dashboard", "--num-cpus", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    inside = int((before["params_lr"] <= narrower).sum())
    assert f"warm start: {inside} trial(s) from results/old, {6 - inside} skipped (t0" in done.stderr
    assert "lr=" in done.stderr and f"must be a number in [0.0001, {narrower:g}]" in done.stderr
    trials = pd.read_parquet(tmp_path / "results" / "new" / "trials.parquet")
    assert len(trials) == 3 and list(trials["trial_id"]) == ["t0001", "t0002", "t0003"]  # old trials not copied
    first = trials.iloc[0]
    assert (first["params_lr"], first["params_layers"]) == (narrower / 2, 3)  # the queued point ran first
