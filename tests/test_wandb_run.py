"""W&B sweeps as their users run them: no ``run_cap`` (the study runs until it is stopped) and
no ``metric`` on grid or random (every trial runs, nothing is ranked)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

import tuner
from tests.conftest import cli_env, cli_here, study
from tuner.errors import ConfigError

SIM = """
name: sim
trainable: tests.engine.curves:falling
backend: simulated
metric: {name: loss, goal: minimize}
method: random
seed: 1
early_terminate: {type: asha, max_t: 9, grace_period: 1, reduction_factor: 3}
parameters:
  x: {min: 0.0, max: 1.0}
"""

TOY = """
name: toy
trainable: trainables.toy:quadratic
metric: {name: loss, goal: minimize}
method: random
seed: 5
max_concurrent: 1
parameters:
  lr: {distribution: log_uniform_values, min: 1e-4, max: 1e-1}
  layers: {distribution: int_uniform, min: 1, max: 6}
  steps: {value: 3}
  sleep: {value: 0.05}
"""


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        study(text, allow_modules=["tests"])
    return [str(p) for p in info.value.problems]


def test_no_run_cap_runs_until_stopped_and_says_so() -> None:
    uncapped = study(TOY)
    assert uncapped.trial_count() is None
    assert uncapped.notices == (
        "<string>: no run_cap: the study runs until stopped (Ctrl-C; or the searcher running out)",
    )
    timed = study(TOY + "time_limit: 5m\n")
    assert "(Ctrl-C, time_limit; or the searcher running out)" in timed.notices[0]
    assert study(TOY + "run_cap: 3\n").notices == ()


def test_the_simulated_backend_refuses_an_endless_study_in_one_line() -> None:
    """Nobody presses Ctrl-C on a virtual clock: an uncapped simulated study needs a time limit
    and a bound on the trials at once."""
    expected = [
        "run_cap: backend simulated needs run_cap, or time_limit and max_concurrent: on its virtual clock "
        "an uncapped study would never end"
    ]
    assert _problems(SIM) == expected
    assert _problems(SIM + "time_limit: 60\n") == expected
    assert study(SIM + "time_limit: 60\nmax_concurrent: 4\n", allow_modules=["tests"]).trial_count() is None


def test_an_uncapped_simulated_study_ends_at_its_time_limit_keeping_every_trial(
    no_ray: None, in_tmp: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNER_PROGRESS", "plain")  # the live view's last lines, printed at the end
    out = tuner.run(study(SIM + "time_limit: 100\nmax_concurrent: 4\n", allow_modules=["tests"]))
    assert out.stop_reason == "time_limit reached" and not out.interrupted
    trials = pd.read_parquet(out.folder / "trials.parquet")
    assert len(trials) == sum(out.counts.values()) > 4  # slots were refilled until the limit
    assert set(trials["status"]) <= {"finished", "pruned", "stopped"}
    assert out.best is not None and (out.folder / "best.yaml").exists()
    assert "trials started (no run cap: Ctrl-C or time_limit ends the study)" in capsys.readouterr().err


def test_an_uncapped_random_search_of_a_finite_space_stops_when_it_has_tried_it_all(no_ray: None, in_tmp: Path) -> None:
    text = SIM.replace("x: {min: 0.0, max: 1.0}", "x: {values: [0.1, 0.2, 0.3]}\n  y: {values: [1, 2]}")
    out = tuner.run(study(text + "time_limit: 1h\nmax_concurrent: 2\n", allow_modules=["tests"]), quiet=True)
    trials = pd.read_parquet(out.folder / "trials.parquet")
    assert len(trials) == 6 and trials[["params_x", "params_y"]].drop_duplicates().shape[0] == 6
    assert out.stop_reason == "the searcher ran out: all 6 configurations of the space were proposed"


def test_plan_takes_the_overrides_run_takes(in_tmp: Path) -> None:
    (in_tmp / "toy.yaml").write_text(textwrap.dedent(TOY))
    done = cli_here("plan", "toy.yaml", cwd=in_tmp)
    assert done.returncode == 0, done.stderr
    assert "trials: no run_cap: until stopped (Ctrl-C; or the searcher running out);" in done.stdout
    args = ["--run-cap", "5", "--time-limit", "2m", "--max-concurrent", "1", "--name", "other", "--seed", "3"]
    done = cli_here("plan", "toy.yaml", *args, "--storage", "elsewhere", "--backend", "ray", cwd=in_tmp)
    assert done.returncode == 0, done.stderr
    assert "study other: random" in done.stdout and "trials: 5; 1 at a time" in done.stdout
    assert "time limit: 120 s" in done.stdout and "until stopped" not in done.stdout
    done = cli_here("plan", "toy.yaml", "--time-limit", "soon", cwd=in_tmp)
    assert done.returncode == 2 and "time_limit: must be seconds or a duration" in done.stderr
    assert not (in_tmp / "results").exists() and not (in_tmp / "elsewhere").exists()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["ray", "tune"])
def test_an_uncapped_study_on_ray_ends_at_its_time_limit(ray_local: None, in_tmp: Path, backend: str) -> None:
    """Ended by its time limit, on the engine and on Ray Tune alike: the trial running then ends
    stopped, not left running as if the driver had been killed."""
    out = tuner.run(study(TOY + f"time_limit: 8s\nbackend: {backend}\n"), quiet=True)
    assert out.stop_reason == "time_limit reached" and not out.interrupted
    trials = pd.read_parquet(out.folder / "trials.parquet")
    assert len(trials) >= 1 and set(trials["status"]) <= {"finished", "stopped"}  # none left running
    if (trials["status"] == "finished").any():  # how many finish in 8 s depends on the machine's load
        assert yaml.safe_load((out.folder / "best.yaml").read_text())["trial_id"] in set(trials["trial_id"])
    assert json.loads((out.folder / "state.json").read_text())["state"] == "done"


@pytest.mark.slow
def test_ctrl_c_ends_an_uncapped_study_keeping_its_trials_and_resume_continues_it(
    ray_local: None, tmp_path: Path, ray_tmp: Path
) -> None:
    """The CLI as a terminal runs it: SIGINT once trials have ended; exit 130, every ended trial
    and the results files kept, the best so far and the resume command printed; ``resume`` with a
    run_cap then continues the same study to it."""
    (tmp_path / "toy.yaml").write_text(textwrap.dedent(TOY))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuner", "run", "toy.yaml", "--no-dashboard", "--num-cpus", "2"],
        cwd=tmp_path,
        env=cli_env(ray_tmp),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as from a terminal
    )
    journal = tmp_path / "results" / "toy" / "journal.jsonl"
    deadline = time.monotonic() + 180
    while not (journal.exists() and journal.read_text().count('"e": "end"') >= 3) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    folder = tmp_path / "results" / "toy"
    trials = pd.read_parquet(folder / "trials.parquet")
    ended = trials[trials["status"] != "running"]
    assert len(ended) >= 3 and (ended["status"] == "finished").all()
    assert f"interrupted: {len(ended)} ended trial(s) kept in results/toy" in err
    assert "continue with: python -m tuner resume results/toy" in err
    best = yaml.safe_load((folder / "best.yaml").read_text())
    assert f"best {best['trial_id']} (so far): loss=" in out

    (tmp_path / "capped.yaml").write_text(textwrap.dedent(TOY) + f"run_cap: {len(trials) + 2}\n")
    done = cli_here("resume", "results/toy", "--space", "capped.yaml", "--no-dashboard", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    again = pd.read_parquet(folder / "trials.parquet").set_index("trial_id")
    assert len(again) == len(trials) + 2 and (again["status"] == "finished").all()
    kept = ended.set_index("trial_id")
    pd.testing.assert_series_equal(again.loc[kept.index, "value"], kept["value"])


GRID = """
name: nometric
trainable: trainables.toy:quadratic
method: grid
parameters:
  lr: {values: [0.001, 0.01]}
  layers: {values: [2, 3]}
  steps: {value: 2}
"""


@pytest.mark.parametrize(
    ("extra", "rule"),
    [
        ("method: bayes\n", "method bayes"),
        ("method: optuna\n", "method optuna"),
        ("early_terminate: {type: asha, max_t: 2}\n", "early_terminate"),
    ],
)
def test_what_ranks_or_prunes_trials_needs_a_metric(extra: str, rule: str) -> None:
    text = GRID.replace("method: grid\n", "") + ("method: grid\n" if "method" not in extra else "") + extra
    assert _problems(text) == [f"metric: is required for {rule} (as in W&B: only grid and random run without one)"]


@pytest.mark.slow
def test_a_grid_study_without_a_metric_end_to_end(ray_local: None, in_tmp: Path) -> None:
    (in_tmp / "nometric.yaml").write_text(textwrap.dedent(GRID))
    flags = ["--no-dashboard", "--quiet"]
    done = cli_here("plan", "nometric.yaml", cwd=in_tmp)
    assert done.returncode == 0 and "no metric: every reported metric recorded, none ranked" in done.stdout
    done = cli_here("run", "nometric.yaml", *flags, cwd=in_tmp)
    assert done.returncode == 0, done.stderr
    assert "the study has no metric, so no trial is ranked and there is no best" in done.stdout
    folder = in_tmp / "results" / "nometric"
    trials = pd.read_parquet(folder / "trials.parquet")
    assert len(trials) == 4 and (trials["status"] == "finished").all()
    assert trials[["metric_loss", "metric_score"]].notna().all().all()
    history = pd.read_parquet(folder / "history.parquet")
    assert len(history) == 8 and {"loss", "score"} <= set(history.columns)
    assert not (folder / "best.yaml").exists()

    done = cli_here("results", "results/nometric", cwd=in_tmp)
    assert done.returncode == 0, done.stderr
    assert "loss" in done.stdout and "score" in done.stdout and "t0004" in done.stdout
    for verb in ("best", "report", "confirm"):
        done = cli_here(verb, "results/nometric", cwd=in_tmp)
        assert done.returncode == 2, (verb, done.stderr)
        (line,) = done.stderr.splitlines()
        assert "the study has no metric, so no trial is ranked and there is no best" in line

    loaded = tuner.load(str(folder))
    assert len(loaded.trials) == 4
