"""A population-based study on real Ray through the CLI, as a user runs it: its driver SIGKILLed
after the first exploit, resumed to its end, and the winner's schedule trained again."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import ROOT, cli_env, cli_here, end_ray_processes

pytestmark = pytest.mark.slow

STUDY = """
name: pop
trainable: trainables.digits:train_mlp
metric: {name: val_loss, goal: minimize}
method: random
seed: 0
run_cap: 4
max_concurrent: 2
early_terminate:
  type: pbt
  max_t: 6
  perturbation_interval: 2
  quantile_fraction: 0.25
  mutations:
    lr: {distribution: log_uniform_values, min: 1e-4, max: 3e-2}
parameters:
  lr: {distribution: log_uniform_values, min: 1e-4, max: 3e-2}
  optimizer: {value: sgd}
  hidden: {value: 32}
  layers: {value: 1}
  epochs: {value: 6}
  checkpoint_every: {value: 2}
"""


def _cli(args: list[str], cwd: Path, ray_tmp: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tuner", *args, "--no-dashboard", "--num-cpus", "2"],
        cwd=cwd,
        env=cli_env(ray_tmp),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_killed_population_resumes_without_losing_a_member_and_its_schedule_replays(
    ray_local: None, tmp_path: Path, ray_tmp: Path
) -> None:
    """Killed as a user's driver dies (a CLI process, SIGKILL); resumed and trained again in this
    process, on the session's Ray (the CLI's same verbs, without starting a Ray for each)."""
    (tmp_path / "pop.yaml").write_text(STUDY)
    (tmp_path / "trainables").symlink_to(ROOT / "trainables")
    folder = tmp_path / "results" / "pop"
    proc = _cli(["run", "pop.yaml"], tmp_path, ray_tmp)
    journal = folder / "journal.jsonl"
    deadline = time.monotonic() + 240
    while not (journal.exists() and '"e": "exploit"' in journal.read_text()) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)  # no handler runs: the exploit may be pending
    proc.wait()
    end_ray_processes(ray_tmp)
    before = [json.loads(line) for line in journal.read_text().splitlines() if line.strip().endswith("}")]
    exploit = next(e for e in before if e["e"] == "exploit")

    resumed = cli_here("resume", str(folder), "--quiet", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    trials = pd.read_parquet(folder / "trials.parquet")
    assert len(trials) == 4 and set(trials["status"]) == {"finished"} and set(trials["step"]) == {6}
    history = pd.read_parquet(folder / "history.parquet")
    rows = history[history["trial_id"] == exploit["trial"]].set_index("step")["config/lr"]
    assert rows[exploit["donor_step"] + 1] == exploit["new"]["lr"]  # it went on with its new value
    assert f"/{exploit['trial']}/from-{exploit['donor']}/" in exploit["copy"]  # its own copy of the donor's state

    best = yaml.safe_load((folder / "best.yaml").read_text())
    assert "lr" in best["schedule"]
    train = cli_here("train", "pop.yaml", "--config", str(folder / "best.yaml"), "--out", "final", cwd=tmp_path)
    assert train.returncode == 0, train.stdout + train.stderr
    final = [json.loads(line) for line in (tmp_path / "final" / "journal.jsonl").read_text().splitlines()]
    changes = [e for e in final if e["e"] == "exploit"]
    assert [[e["donor_step"], e["new"]["lr"]] for e in changes] == best["schedule"]["lr"][1:]
    history = pd.read_parquet(tmp_path / "final" / "history.parquet").set_index("step")["config/lr"]
    for (at, value), (until, _) in zip(best["schedule"]["lr"], [*best["schedule"]["lr"][1:], [6, None]], strict=True):
        assert set(history[(history.index > at) & (history.index <= until)]) == {value}  # each step's value
