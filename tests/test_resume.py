"""Resume as Ray tests its own restore: a driver killed at random moments, again and again."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import cli_env, cli_here, end_ray_processes

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
    frame = pd.read_parquet(folder / "trials.parquet")
    if frame.empty:  # killed before the first trial started (a loaded machine): no params columns yet
        return frame.reindex(columns=cols).set_index("trial_id")
    return frame[cols].round(9).set_index("trial_id")


def test_killed_again_and_again_then_resumed_matches_an_uninterrupted_run(
    ray_local: None, tmp_path: Path, ray_tmp: Path
) -> None:
    (tmp_path / "slow.yaml").write_text(textwrap.dedent(SLOW))
    start = time.monotonic()
    ref = cli_here("run", "slow.yaml", "--name", "ref", "--no-dashboard", "--num-cpus", "2", cwd=tmp_path)
    reference_s = time.monotonic() - start
    assert ref.returncode == 0, ref.stderr
    reference = _table(tmp_path / "results" / "ref")

    folder = tmp_path / "results" / "slow"
    rng = random.Random(11)
    ended: dict[str, tuple] = {}  # trial -> (status, value) once ended: never changes again
    start = time.monotonic()
    proc = _cli(["run", "slow.yaml"], tmp_path, ray_tmp)
    for _ in range(3):
        time.sleep(rng.uniform(4.0, 7.0))
        proc.kill()  # SIGKILL: no handler runs
        proc.wait()
        end_ray_processes(ray_tmp)
        if (folder / "trials.parquet").exists():
            now = _table(folder)
            done = now[now["status"] != "running"]
            for trial_id, row in done.iterrows():
                assert ended.setdefault(str(trial_id), (row["status"], row["value"])) == (row["status"], row["value"])
            assert set(ended) <= set(done.index)  # nothing finished is lost, progress never goes back
        started = (folder / "study.yaml").exists()  # a kill before the run began leaves nothing to resume
        proc = _cli(["resume", str(folder)] if started else ["run", "slow.yaml"], tmp_path, ray_tmp)
    code, log = _finish(proc)
    total_s = time.monotonic() - start
    assert code == 0, log

    final = _table(folder)
    assert list(final.index) == [f"t{i:04d}" for i in range(1, 17)]  # unique ids, none skipped or repeated
    pd.testing.assert_frame_equal(final, reference)  # same trials, same pruning, same best
    best = json.loads(json.dumps(__import__("yaml").safe_load((folder / "best.yaml").read_text())))
    assert best["trial_id"] == reference[reference["status"] == "finished"]["value"].idxmin()
    print(f"uninterrupted {reference_s:.1f} s, killed 3 times and resumed {total_s:.1f} s")


def test_ctrl_c_stops_cleanly_and_prints_the_resume_command(tmp_path: Path, ray_tmp: Path) -> None:
    (tmp_path / "slow.yaml").write_text(textwrap.dedent(SLOW))
    proc = _cli(["run", "slow.yaml"], tmp_path, ray_tmp)
    journal = tmp_path / "results" / "slow" / "journal.jsonl"
    deadline = time.monotonic() + 120
    while not (journal.exists() and journal.read_text().count('"e": "end"') >= 2) and time.monotonic() < deadline:
        time.sleep(0.2)  # interrupt mid-run, once trials are ending
    proc.send_signal(signal.SIGINT)
    code, log = _finish(proc, timeout=60)
    assert code == 130, log
    assert "continue with: python -m tuner resume results/slow" in log
    assert json.loads((tmp_path / "results" / "slow" / "state.json").read_text())["state"] == "interrupted"

    again = _cli(["run", "slow.yaml"], tmp_path, ray_tmp)
    code, log = _finish(again)
    assert code == 2 and "holds an unfinished run; continue it with: python -m tuner resume" in log

    code, log = _finish(_cli(["resume", "results/slow"], tmp_path, ray_tmp))
    assert code == 0, log
    assert len(pd.read_parquet(tmp_path / "results" / "slow" / "trials.parquet")) == 16


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
