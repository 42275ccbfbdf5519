"""Resume as Ray tests its own restore: a driver stopped by Ctrl-C, then killed at random moments,
again and again."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

import tuner
from tests.conftest import cli_env, cli_here, end_ray_processes, study

pytestmark = pytest.mark.slow

SLOW = """
name: slow
trainable: trainables.toy:quadratic
metric: {name: loss, goal: minimize}
method: bayes
seed: 3
run_cap: 16
max_concurrent: 1
searcher: {init_points: 3}
early_terminate: {type: asha, max_t: 9, grace_period: 1, reduction_factor: 3}
parameters:
  lr: {distribution: log_uniform_values, min: 1e-4, max: 1e-1}
  layers: {distribution: int_uniform, min: 1, max: 6}
  act: {values: [relu, tanh]}
  steps: {value: 9}
  sleep: {value: 0.12}
"""


def _cli(args: list[str], cwd: Path, ray_tmp: Path) -> subprocess.Popen[str]:
    env = cli_env(ray_tmp)
    return subprocess.Popen(
        [sys.executable, "-m", "tuner", *args, "--no-dashboard", "--num-cpus", "2"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as from a terminal: a suite started in the background (``cmd &`` without job control)
        # hands its children SIGINT ignored, and Python then never raises KeyboardInterrupt
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _finish(proc: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out + err


def _table(folder: Path) -> pd.DataFrame:
    cols = ["trial_id", "status", "value", "step", "params_lr", "params_layers", "params_act"]
    return pd.read_parquet(folder / "trials.parquet")[cols].round(9).set_index("trial_id")


def _check_ended(folder: Path, ended: dict[str, tuple]) -> None:
    """Every trial that had ended is still there, unchanged (``ended`` keeps what was seen)."""
    now = _table(folder)
    done = now[now["status"] != "running"]
    for trial_id, row in done.iterrows():
        assert ended.setdefault(str(trial_id), (row["status"], row["value"])) == (row["status"], row["value"])
    assert set(ended) <= set(done.index)  # nothing finished is lost, progress never goes back


def _interrupted_again_and_again(tmp_path: Path, ray_tmp: Path) -> Path:
    """``run`` stopped by Ctrl-C, then resumed and SIGKILLed three times, then resumed to its end."""
    folder = tmp_path / "results" / "slow"
    proc = _cli(["run", "slow.yaml"], tmp_path, ray_tmp)
    journal = folder / "journal.jsonl"
    deadline = time.monotonic() + 120
    while not (journal.exists() and journal.read_text().count('"e": "end"') >= 2) and time.monotonic() < deadline:
        time.sleep(0.2)  # interrupt mid-run, once trials are ending
    proc.send_signal(signal.SIGINT)
    code, log = _finish(proc, timeout=60)
    assert code == 130, log
    assert "continue with: python -m tuner resume results/slow" in log
    assert json.loads((folder / "state.json").read_text())["state"] == "interrupted"
    code, log = _finish(_cli(["run", "slow.yaml"], tmp_path, ray_tmp))
    assert code == 2 and "holds an unfinished run; continue it with: python -m tuner resume" in log

    rng = random.Random(11)
    ended: dict[str, tuple] = {}  # trial -> (status, value) once ended: never changes again
    _check_ended(folder, ended)
    assert len(ended) >= 2  # the trials that had ended before Ctrl-C
    for _ in range(2):
        proc = _cli(["resume", str(folder)], tmp_path, ray_tmp)
        time.sleep(rng.uniform(4.0, 7.0))
        proc.kill()  # SIGKILL: no handler runs
        proc.wait()
        end_ray_processes(ray_tmp)
        _check_ended(folder, ended)
    code, log = _finish(_cli(["resume", str(folder)], tmp_path, ray_tmp))
    assert code == 0, log
    return folder


def test_stopped_by_ctrl_c_then_killed_again_and_again_then_resumed_matches_an_uninterrupted_run(
    ray_local: None, tmp_path: Path, ray_tmp: Path
) -> None:
    """Ctrl-C mid-run stops cleanly and prints the resume command; ``run`` again is refused; the
    resumed run is then SIGKILLed twice at random moments, each time resumed again. The
    end is the uninterrupted run's table, and no trial that had ended ever changes."""
    (tmp_path / "slow.yaml").write_text(textwrap.dedent(SLOW))
    with ThreadPoolExecutor(1) as pool:  # the uninterrupted run, meanwhile, on the session's Ray
        uninterrupted = pool.submit(tuner.run, study(SLOW, name="ref", storage=str(tmp_path / "results")), quiet=True)
        folder = _interrupted_again_and_again(tmp_path, ray_tmp)
        reference = _table(uninterrupted.result().folder)

    final = _table(folder)
    assert list(final.index) == [f"t{i:04d}" for i in range(1, 17)]  # unique ids, none skipped or repeated
    pd.testing.assert_frame_equal(final, reference)  # same trials, same pruning, same best
    best = json.loads(json.dumps(__import__("yaml").safe_load((folder / "best.yaml").read_text())))
    assert best["trial_id"] == reference[reference["status"] == "finished"]["value"].idxmin()


def test_resume_refuses_a_changed_study_but_takes_a_bigger_budget(ray_local: None, tmp_path: Path) -> None:
    (tmp_path / "slow.yaml").write_text(textwrap.dedent(SLOW).replace("run_cap: 16", "run_cap: 3"))
    flags = ["--no-dashboard", "--num-cpus", "2"]
    done = cli_here("run", "slow.yaml", *flags, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    changed = tmp_path / "changed.yaml"
    changed.write_text(
        textwrap.dedent(SLOW).replace("seed: 3", "seed: 3\nmax_failures: 2").replace("min: 1,", "min: 2,")
    )
    done = cli_here("resume", "results/slow", "--space", "changed.yaml", *flags, cwd=tmp_path)
    assert done.returncode == 2
    assert "differs from the run in max_failures, parameters; a resume may change only run_cap" in done.stderr
    (tmp_path / "more.yaml").write_text(textwrap.dedent(SLOW).replace("run_cap: 16", "run_cap: 5"))
    done = cli_here("resume", "results/slow", "--space", "more.yaml", *flags, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    trials = pd.read_parquet(tmp_path / "results" / "slow" / "trials.parquet")
    assert list(trials["trial_id"]) == ["t0001", "t0002", "t0003", "t0004", "t0005"]
