"""Trials as DDP jobs of 2 gloo processes on a private Ray: averaging, faults, retries, cleanup."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest

import tuner
from tests.conftest import study
from tuner.errors import UserError

pytestmark = pytest.mark.slow


RANKS = """
name: ranks
trainable: trainables.toy:ranks
metric: {name: loss, goal: minimize}
method: grid
resources: {workers: 2}
parameters:
  steps: {value: 4}
"""


def trial_workers() -> list[psutil.Process]:
    """Rank processes of this test session's Ray (the raylet, and so its workers, descend from us)."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if cmd.startswith("ray::TrialWorker"):
            found.append(proc)
    return found


def no_trial_workers_left(timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while trial_workers():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_metrics_are_averaged_over_ranks(ray_local: None, in_tmp: Path) -> None:
    out = tuner.run(study(RANKS), quiet=True)
    history = tuner.load_history(out.folder)
    assert list(history["step"]) == [1, 2, 3, 4]
    assert list(history["loss"]) == [1.5, 2.5, 3.5, 4.5]  # mean of rank 0 (step) and rank 1 (step + 1)
    assert set(history["rank"]) == {0.5} and set(history["world"]) == {2.0}
    assert tuner.load_results(out.folder)["status"].tolist() == ["finished"]
    assert no_trial_workers_left()


def test_a_failing_rank_fails_the_trial_cleanly_and_the_next_trial_runs(ray_local: None, in_tmp: Path) -> None:
    """Rank 1 exits (``os._exit``) in one trial and raises in another: each fails with that rank's
    own error, its group killed at once (no collective timeout), and the next trial runs."""
    body = RANKS + "  how: {values: [exit, raise]}\n  die_rank: {values: [1, -1]}\n  die_at: {value: 2}\n"
    out = tuner.run(study(body), quiet=True)
    assert out.summary["respawns"] == 2  # each failed trial's group, and only those
    trials = tuner.load_results(out.folder).set_index(["params_how", "params_die_rank"])
    assert list(trials["status"]) == ["errored", "finished", "errored", "finished"]  # grid order: dies, then not
    assert "rank 1 process exited with code 1 (os._exit at toy.py:" in trials.loc[("exit", 1), "error"]
    assert "RuntimeError: rank 1 failed on purpose" in trials.loc[("raise", 1), "error"]
    assert no_trial_workers_left()


def test_a_killed_rank_is_retried_from_its_checkpoint(ray_local: None, in_tmp: Path) -> None:
    body = RANKS + "  die_rank: {value: 1}\n  die_at: {value: 3}\nmax_failures: 1\n"
    out = tuner.run(study(body), quiet=True)
    trials = tuner.load_results(out.folder)
    assert trials["status"].tolist() == ["finished"] and trials["attempts"].tolist() == [1]
    history = tuner.load_history(out.folder)
    assert list(history["step"]) == [1, 2, 3, 4]  # steps 1-2 kept, 3-4 from the retry, none twice
    assert (out.folder / "logs" / "t0001.log").exists()


def test_pruning_stops_every_rank_and_leaves_no_process(ray_local: None, in_tmp: Path) -> None:
    body = """
    name: prune
    trainable: trainables.toy:ranks
    metric: {name: loss, goal: minimize}
    method: grid
    resources: {workers: 2}
    early_terminate: {type: asha, max_t: 50, grace_period: 1, reduction_factor: 2}
    parameters:
      offset: {values: [0, 1, 2, 3]}
      steps: {value: 50}
      sleep: {value: 0.05}
    """
    out = tuner.run(study(body), quiet=True)
    trials = tuner.load_results(out.folder)
    assert (trials["status"] == "pruned").sum() >= 1
    assert out.summary["respawns"] == 0  # every rank of every pruned trial left by itself, none was killed
    assert no_trial_workers_left()


def test_two_workers_learn_as_well_as_one(ray_local: None, in_tmp: Path) -> None:
    body = """
    name: digits_{w}
    trainable: trainables.digits:train_mlp
    metric: {{name: val_accuracy, goal: maximize}}
    method: grid
    seed: 0
    resources: {{workers: {w}}}
    parameters:
      lr: {{value: 0.005}}
      hidden: {{value: 128}}
      batch_size: {{value: 64}}
      epochs: {{value: 12}}
    """
    acc = {}
    for w in (1, 2):
        out = tuner.run(study(body.format(w=w)), quiet=True)
        assert out.best is not None and out.best.value is not None
        acc[w] = out.best.value
    assert acc[1] > 0.93 and acc[2] > 0.93
    assert abs(acc[1] - acc[2]) < 0.03


def test_more_workers_than_the_cluster_holds_is_refused_before_the_run(ray_local: None, in_tmp: Path) -> None:
    with pytest.raises(UserError, match="resources: a trial needs 3 worker"):
        tuner.run(study(RANKS.replace("workers: 2", "workers: 3")), quiet=True)
    assert not (in_tmp / "results").exists()
