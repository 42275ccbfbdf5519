"""Bugs a user met on ordinary study files, each through the way the user meets it."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml

import tuner
from tests.conftest import ROOT, cli_here, study
from tuner.results import unfinished_run

BUDGETED = """
name: budgeted
trainable: trainables.toy:quadratic
metric: {name: loss, goal: minimize}
method: random
seed: 1
run_cap: 3
early_terminate: {type: asha, max_t: 7, grace_period: 1, reduction_factor: 3}
parameters:
  lr: {distribution: log_uniform_values, min: 1e-3, max: 1e-1}
"""


@pytest.mark.slow
def test_train_trains_to_the_schedulers_full_budget(ray_local: None, in_tmp: Path) -> None:
    """``quadratic`` runs ``trial.max_steps`` steps when its config has none: ASHA's max_t, 7."""
    result = tuner.train(study(BUDGETED), {"lr": 0.01}, out=in_tmp / "final", quiet=True)
    assert result["step"] == 7
    shorter = tuner.train(study(BUDGETED), {"lr": 0.01}, out=in_tmp / "short", epochs=4, quiet=True)
    assert shorter["step"] == 4


def interrupted(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "study.yaml").write_text("name: x\n")
    (folder / "state.json").write_text(json.dumps({"state": "interrupted", "pid": 1, "host": "h"}))


def test_only_runs_of_the_same_study_count_as_its_unfinished_runs(tmp_path: Path) -> None:
    for name in ("toy-extra", "toy-extra-2", "toys"):
        interrupted(tmp_path / name)
    (tmp_path / "toy").mkdir()
    assert unfinished_run(tmp_path, "toy") is None  # other studies' runs do not count
    interrupted(tmp_path / "toy-2")
    left = unfinished_run(tmp_path, "toy")
    assert left is not None and left[0].name == "toy-2" and left[1]


@pytest.mark.slow
def test_an_unfinished_run_of_another_study_with_a_longer_name_does_not_block(ray_local: None, in_tmp: Path) -> None:
    interrupted(in_tmp / "results" / "budgeted-extra")
    out = tuner.run(study(BUDGETED), quiet=True)
    assert out.folder.name == "budgeted" and out.best is not None
    interrupted(in_tmp / "results" / "budgeted-7")
    with pytest.raises(tuner.UserError, match="budgeted-7 holds an unfinished run"):
        tuner.run(study(BUDGETED), quiet=True)


SWEEP = """
program: train.py
method: random
run_cap: {n}
seed: 2
metric: {{name: loss, goal: minimize}}
parameters:
  lr: {{distribution: log_uniform_values, min: 1e-3, max: 1e-1}}
  steps: {{value: 3}}
"""


@pytest.mark.slow
def test_a_sweep_file_run_with_flags_resumes_and_trains_with_the_same_flags(ray_local: None, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "trainables", tmp_path / "trainables")
    (tmp_path / "sweep.yaml").write_text(textwrap.dedent(SWEEP.format(n=2)))
    flags = ["--no-dashboard", "--num-cpus", "2"]
    done = cli_here("run", "sweep.yaml", "--trainable", "trainables.toy:quadratic", "--storage", "out", *flags,
                    cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    (tmp_path / "more.yaml").write_text(textwrap.dedent(SWEEP.format(n=4)))
    more = cli_here("resume", "out/sweep", "--space", "more.yaml", *flags, cwd=tmp_path)
    assert more.returncode == 0, more.stderr  # neither the missing trainable nor --storage counts as a change
    assert len(pd.read_parquet(tmp_path / "out" / "sweep" / "trials.parquet")) == 4

    missing = cli_here("train", "sweep.yaml", "--config", "out/sweep/best.yaml", cwd=tmp_path)
    assert missing.returncode == 2 and "--trainable" in missing.stderr
    trained = cli_here("train", "sweep.yaml", "--config", "out/sweep/best.yaml", "--trainable",
                       "trainables.toy:quadratic", *flags, cwd=tmp_path)  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    metrics = yaml.safe_load((tmp_path / "out" / "sweep" / "final" / "metrics.yaml").read_text())
    assert metrics["step"] == 3
    for command in ("resume", "train"):
        assert "--trainable" in cli_here(command, "--help", cwd=tmp_path).stdout


SIMULATED = """
name: sim
trainable: trainables.simulated:curve
backend: simulated
metric: {name: loss, goal: minimize}
method: random
seed: 0
run_cap: 4
early_terminate: {type: asha, max_t: 9, grace_period: 1, reduction_factor: 3}
parameters:
  lr: {distribution: log_uniform_values, min: 1e-4, max: 1e-1}
  width: {distribution: q_uniform, min: 16, max: 512, q: 16}
"""


def test_train_on_best_yaml_trains_the_winner_of_confirm_as_best_prints_it(tmp_path: Path) -> None:
    """After ``confirm`` changed the winner, ``train --config best.yaml`` trains the configuration
    ``best`` prints (the confirmed one), not the search's best."""
    (tmp_path / "sim.yaml").write_text(textwrap.dedent(SIMULATED))
    assert cli_here("run", "sim.yaml", cwd=tmp_path).returncode == 0
    folder = tmp_path / "results" / "sim"
    best = yaml.safe_load((folder / "best.yaml").read_text())
    other = {"lr": 0.002, "width": 256.0}  # as confirm writes it: the winner's searched params
    best["confirmed"] = {"trial_id": "t0003", "params": other, "mean": 0.31, "std": 0.01, "seeds": 3, "changed": True}
    (folder / "best.yaml").write_text(yaml.safe_dump(best))
    printed = cli_here("best", "results/sim", "--format", "json", cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    assert json.loads(printed.stdout) == other
    trained = cli_here("train", "sim.yaml", "--config", "results/sim/best.yaml", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "the winner of confirm: t0003" in trained.stderr
    metrics = yaml.safe_load((folder / "final" / "metrics.yaml").read_text())
    assert metrics["config"] == other
    args = ("train", "sim.yaml", "--config", "results/sim/best.yaml")
    seeded = cli_here(*args, "--seed", "5", "--out", "f2", cwd=tmp_path)
    assert yaml.safe_load((tmp_path / "f2" / "metrics.yaml").read_text())["seed"] == 5, seeded.stderr
    best["confirmed"]["changed"] = False  # confirm kept the search's best: its configuration and seed
    (folder / "best.yaml").write_text(yaml.safe_dump(best))
    kept = cli_here("train", "sim.yaml", "--config", "results/sim/best.yaml", "--out", "f3", cwd=tmp_path)
    assert kept.returncode == 0, kept.stderr
    metrics = yaml.safe_load((tmp_path / "f3" / "metrics.yaml").read_text())
    assert metrics["config"] == best["config"] != other and metrics["seed"] == best["seed"]


def test_confirm_table_shows_parameters_to_four_figures() -> None:
    from tuner.results import confirm_table

    params = {"lr": 0.008937183834867657, "hidden": 256, "act": "relu"}
    row = {"trial_id": "t0002", "params": params, "search_value": 0.06378, "values": [0.08, 0.07], "mean": 0.075}
    row |= {"std": 0.007, "runs": 2, "metrics": {"test_loss": 0.10912345}}
    lines = confirm_table({"configs": [row], "winner": "t0002"})
    assert lines[1].endswith("2/2  lr=0.008937, hidden=256, act=relu  test_loss=0.1091")
    assert lines[1].startswith("*  t0002")
