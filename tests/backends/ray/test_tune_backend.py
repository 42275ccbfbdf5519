"""``backend: tune``: the same study run by Ray Tune's own ``Tuner``, into the same results folder."""

from __future__ import annotations

import random
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

import tuner
from tests.conftest import cli_here, end_ray_processes, study
from tests.test_resume import SLOW, _cli, _finish, _table
from tuner.errors import ConfigError

TOY = """
name: toy_tune
trainable: trainables.toy:quadratic
backend: tune
metric: {name: loss, goal: minimize}
method: bayes
seed: 3
run_cap: 8
max_concurrent: 2
searcher: {init_points: 3}
early_terminate: {type: asha, max_t: 9, grace_period: 1, reduction_factor: 3}
parameters:
  lr: {distribution: log_uniform_values, min: 1e-4, max: 1e-1}
  layers: {distribution: int_uniform, min: 1, max: 6}
  act: {values: [relu, tanh]}
  steps: {value: 9}
"""


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("stall_timeout: 60", "stall_timeout: backend tune cannot stop a trial that stops reporting"),
        ("on_failure: {user_exception: fail}", "on_failure: backend tune retries every failure alike"),
        ("on_oom: halve_batch", "on_oom: backend tune retries every failure alike"),
        ("on_leak: stop", "on_leak: backend tune does not watch a trial's memory"),
        ("checkpoints: {keep_best: true}", "checkpoints.keep_best: backend tune keeps each trial's last"),
        (
            "metric: [{name: loss, goal: minimize}, {name: score, goal: maximize}]",
            "metric: backend tune optimises one metric",
        ),
    ],
)
def test_what_tune_cannot_do_is_refused_naming_the_key(extra: str, message: str) -> None:
    body = TOY if not extra.startswith("metric:") else TOY.replace("metric: {name: loss, goal: minimize}\n", "")
    with pytest.raises(ConfigError, match=message):
        study(body + extra + "\n")


def test_the_cli_refuses_it_with_exit_2_and_writes_nothing(in_tmp: Path) -> None:
    (in_tmp / "space.yaml").write_text(TOY + "stall_timeout: 60\n")
    done = cli_here("run", "space.yaml", "--no-dashboard", cwd=in_tmp)
    assert done.returncode == 2
    assert "stall_timeout: backend tune cannot stop a trial" in done.stderr
    assert not (in_tmp / "results").exists()


@pytest.mark.slow
def test_a_study_on_ray_tune_writes_what_the_engine_writes(ray_local: None, in_tmp: Path) -> None:
    (in_tmp / "space.yaml").write_text(TOY)
    done = cli_here("run", "space.yaml", "--no-dashboard", cwd=in_tmp)
    assert done.returncode == 0, done.stderr
    folder = in_tmp / "results" / "toy_tune"
    for name in ("study.yaml", "journal.jsonl", "trials.parquet", "history.parquet", "best.yaml", "summary.yaml"):
        assert (folder / name).exists(), name
    trials = tuner.load_results(folder).set_index("trial_id")
    assert list(trials.index.sort_values()) == [f"t{i:04d}" for i in range(1, 9)]
    assert set(trials["status"]) == {"finished", "pruned"}
    # Ray's ASHA on the trainable's own step: pruned at a rung (1, 3), finished at max_t
    assert set(trials.loc[trials["status"] == "pruned", "step"]) <= {1, 3}
    assert set(trials.loc[trials["status"] == "finished", "step"]) == {9}
    history = tuner.load_history(folder)
    for trial_id, rows in history.groupby("trial_id"):
        assert list(rows["step"]) == list(range(1, int(trials.loc[trial_id, "step"]) + 1))
    best = yaml.safe_load((folder / "best.yaml").read_text())
    finished = trials[trials["status"] == "finished"]
    assert best["trial_id"] == finished["value"].idxmin() and best["status"] == "finished"
    assert sorted(p.name for p in (folder / "tune").glob("t0*")) == sorted(trials.index)  # Tune's trials, our ids
    for verb in ("best", "results", "report"):
        assert cli_here(verb, str(folder), cwd=in_tmp).returncode == 0, verb
    assert tuner.load(folder).get_best_trial(scope="last").trial_id in set(trials.index)


@pytest.mark.slow
def test_workers_run_as_a_worker_group_inside_each_tune_trial(ray_local: None, in_tmp: Path) -> None:
    body = TOY.replace("run_cap: 8", "run_cap: 1").replace("max_concurrent: 2", "max_concurrent: 1")
    out = tuner.run(study(body + "resources: {workers: 2}\n"), quiet=True)
    # the ranks' mean reached Tune, step by step, to the end of the budget
    assert out.best is not None and out.best.status == "finished" and out.best.step == 9
    assert list(tuner.load_history(out.folder)["step"]) == list(range(1, 10))


@pytest.mark.slow
def test_killed_again_and_again_then_resumed_through_tuner_restore(
    ray_local: None, tmp_path: Path, ray_tmp: Path
) -> None:
    """As tests/test_resume.py's test for the engine: two SIGKILLs, each followed by ``resume``
    (``Tuner.restore``); nothing finished is lost, the ids run on, and the study ends as an
    uninterrupted one does."""
    text = SLOW.replace("name: slow", "name: slow\nbackend: tune").replace("run_cap: 16", "run_cap: 6")
    (tmp_path / "slow.yaml").write_text(textwrap.dedent(text))
    ref = cli_here("run", "slow.yaml", "--name", "ref", "--no-dashboard", "--num-cpus", "2", cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr
    reference = _table(tmp_path / "results" / "ref")

    folder = tmp_path / "results" / "slow"
    rng = random.Random(11)
    ended: dict[str, tuple[str, float]] = {}
    proc = _cli(["run", "slow.yaml"], tmp_path, ray_tmp)
    for _ in range(2):
        time.sleep(rng.uniform(6.0, 9.0))
        proc.kill()
        proc.wait()
        end_ray_processes(ray_tmp)
        if (folder / "trials.parquet").exists() and len(pd.read_parquet(folder / "trials.parquet")):
            now = _table(folder)
            for trial_id, row in now[now["status"] != "running"].iterrows():
                assert ended.setdefault(str(trial_id), (row["status"], row["value"])) == (row["status"], row["value"])
        started = (folder / "study.yaml").exists()
        proc = _cli(["resume", str(folder)] if started else ["run", "slow.yaml"], tmp_path, ray_tmp)
    code, log = _finish(proc)
    assert code == 0, log
    final = _table(folder)
    assert list(final.index) == [f"t{i:04d}" for i in range(1, 7)]
    for trial_id, (status, value) in ended.items():
        assert (final.loc[trial_id, "status"], final.loc[trial_id, "value"]) == (status, value)
    pd.testing.assert_frame_equal(final, reference)


@pytest.mark.slow
def test_hyperband_on_tune_stops_where_wandb_and_the_engine_would(ray_local: None, in_tmp: Path) -> None:
    from tests.engine.test_hyperband import journal_verdicts

    body = TOY.replace("steps: {value: 9}", "steps: {value: 12}").replace(
        "early_terminate: {type: asha, max_t: 9, grace_period: 1, reduction_factor: 3}",
        "early_terminate: {type: hyperband, max_iter: 9, s: 2, eta: 3}",
    )
    out = tuner.run(study(body), quiet=True)
    trials = tuner.load_results(out.folder).set_index("trial_id")
    # how many are pruned depends on the order two trials in parallel report in; every verdict is W&B's
    assert len(trials) == 8 and (trials["status"] == "pruned").sum() >= 1
    assert set(trials.loc[trials["status"] == "finished", "step"]) == {12}  # past max_iter: no cut there
    journal_verdicts(out.folder, trials, "loss", [1, 3], eta=3, strict=True, maximize=False)


@pytest.mark.slow
def test_a_stopper_on_tune_finishes_a_trial_and_its_stop_all_ends_the_study(ray_local: None, in_tmp: Path) -> None:
    # Ray Tune's RunConfig(stop=FiveReports()) beside tuner's own stopper: x=0.1 is done at its
    # first report (finished); after five reports stop_all is true: x=0.5 is stopped, x=0.9 never starts
    body = """
    name: stopper_tune
    trainable: trainables.toy:quadratic
    backend: tune
    metric: {name: loss, goal: minimize}
    method: grid
    max_concurrent: 1
    stopper: tests.engine.ray_stoppers:FiveReports
    parameters:
      x: {values: [0.1, 0.5, 0.9]}
      steps: {value: 40}
      sleep: {value: 0.05}
    """
    out = tuner.run(study(body, allow_modules=["tests"]), quiet=True)
    trials = tuner.load_results(out.folder).set_index("params_x").sort_index()
    assert trials.loc[0.1, "status"] == "finished" and trials.loc[0.1, "step"] == 1
    assert trials.loc[0.5, "status"] == "stopped" and 4 <= trials.loc[0.5, "step"] < 40
    assert 0.9 not in trials.index
    assert out.stop_reason == "stopper tests.engine.ray_stoppers:FiveReports: stop_all() returned true"
