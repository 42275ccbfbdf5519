"""``tracking: {mlflow: ...}``: a parent run per study, a child run per trial, read back from a
real SQLite store with MLflow's own client; a resumed study continues the same runs."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml

import tuner
from tests.conftest import study
from tests.tracking.readback import SIMULATED, metric_history, mlflow_runs, saved_curves

pytest.importorskip("mlflow")


def _mlflow(tmp_path: Path) -> tuple[str, str]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return uri, f"    mlflow: {{tracking_uri: '{uri}', experiment: tuned}}"


def _run(tmp_path: Path, fn: str, cap: int, tracking: str) -> tuner.engine.Outcomes:
    text = SIMULATED.format(fn=fn, cap=cap, tracking=tracking)
    return tuner.run(study(text, allow_modules=["tests"], storage=str(tmp_path / "results")), quiet=True)


def _check_runs(uri: str, folder: Path) -> None:
    """One child run per trial with its parameters, every step of every metric once, its
    status and cause; the best trial tagged; the parent run finished."""
    parent, children = mlflow_runs(uri, "tuned")
    trials = pd.read_parquet(folder / "trials.parquet").set_index("trial_id")
    assert sorted(children) == sorted(trials.index)
    curves = saved_curves(folder)
    for trial_id, run in children.items():
        row = trials.loc[trial_id]
        assert float(run.data.params["x"]) == row["params_x"]
        assert metric_history(uri, run.info.run_id, "loss") == curves[trial_id]
        assert run.data.tags["tuner.status"] == row["status"]
        assert run.data.tags.get("tuner.cause") == (row["cause"] if pd.notna(row["cause"]) else None)
        assert run.info.status == ("FAILED" if row["status"] == "errored" else "FINISHED")
    best = yaml.safe_load((folder / "best.yaml").read_text())["trial_id"]
    assert [t for t, r in children.items() if r.data.tags.get("tuner.best")] == [best]
    assert parent.data.tags["tuner.best_trial"] == best and parent.info.status == "FINISHED"
    assert parent.data.params["metric"] == "loss" and parent.info.run_name == "sim"


def test_a_study_leaves_a_parent_run_and_one_child_run_per_trial(tmp_path: Path) -> None:
    uri, tracking = _mlflow(tmp_path)
    out = _run(tmp_path, "breaks", 10, tracking)
    statuses = set(pd.read_parquet(out.folder / "trials.parquet")["status"])
    assert {"finished", "pruned", "errored"} <= statuses  # every kind of end is tagged
    _check_runs(uri, out.folder)
    _, children = mlflow_runs(uri, "tuned")
    errored = [r for r in children.values() if r.data.tags["tuner.status"] == "errored"]
    assert all(
        r.data.tags["tuner.cause"] == "user_exception" and "bad x" in r.data.tags["tuner.error"] for r in errored
    )


def test_a_resumed_study_continues_the_same_runs_and_writes_no_step_twice(tmp_path: Path) -> None:
    uri, tracking = _mlflow(tmp_path)
    out = _run(tmp_path, "interrupted", 12, tracking)
    assert out.interrupted
    before = json.loads((out.folder / "tracking.json").read_text())["mlflow"]
    parent, children = mlflow_runs(uri, "tuned")
    assert parent.info.status == "KILLED"
    running = {t for t, r in children.items() if r.data.tags["tuner.status"] == "running"}
    assert running and all(children[t].info.status == "KILLED" for t in running)
    study_file = out.folder / "study.yaml"  # the trainable now runs through, as a user's fix would
    study_file.write_text(study_file.read_text().replace("curves:interrupted", "curves:falling"))

    again = tuner.resume(out.folder, quiet=True, allow_modules=["tests"])
    assert not again.interrupted and again.counts["running"] == 0
    after = json.loads((out.folder / "tracking.json").read_text())["mlflow"]
    assert after["parent"] == before["parent"]
    assert {t: after["trials"][t] for t in before["trials"]} == before["trials"]  # the same runs go on
    _check_runs(uri, out.folder)


def test_a_trial_continued_from_an_earlier_step_writes_each_step_once(tmp_path: Path) -> None:
    """A journal whose unfinished trial reported past its last checkpoint: the resumed trial
    reports those steps again, and MLflow keeps the first of each."""
    uri, tracking = _mlflow(tmp_path)
    out = _run(tmp_path, "interrupted", 12, tracking)
    journal = out.folder / "journal.jsonl"
    events = [json.loads(line) for line in journal.read_text().splitlines()]
    running = {e["trial"] for e in events if e["e"] == "start"} - {e["trial"] for e in events if e["e"] == "end"}
    # forget the checkpoints of the unfinished trials: they start again from step 1
    kept = [e for e in events if not (e["e"] == "ckpt" and e["trial"] in running)]
    journal.write_text("".join(json.dumps(e) + "\n" for e in kept))
    study_file = out.folder / "study.yaml"
    study_file.write_text(study_file.read_text().replace("curves:interrupted", "curves:falling"))
    tuner.resume(out.folder, quiet=True, allow_modules=["tests"])
    _, children = mlflow_runs(uri, "tuned")
    for trial_id in running:
        steps = [s for s, _ in metric_history(uri, children[trial_id].info.run_id, "loss")]
        assert steps == sorted(set(steps)) and steps[0] == 1, (trial_id, steps)
    _check_runs(uri, out.folder)


SLOW = textwrap.dedent(
    """
    name: sim
    trainable: trainables.toy:quadratic
    metric: {{name: loss, goal: minimize}}
    method: random
    seed: 3
    run_cap: 3
    max_concurrent: 2
    backend: {backend}
    parameters:
      lr: {{distribution: log_uniform_values, min: 1e-4, max: 1e-1}}
      steps: {{value: 3}}
    tracking:
    {tracking}
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["ray", "tune"])
def test_a_study_on_ray_is_tracked_from_the_driver(ray_local: None, tmp_path: Path, backend: str) -> None:
    uri, tracking = _mlflow(tmp_path)
    text = SLOW.format(backend=backend, tracking="  " + tracking.strip())
    out = tuner.run(study(text, storage=str(tmp_path / "results")), quiet=True)
    assert out.counts["finished"] == 3
    parent, children = mlflow_runs(uri, "tuned")
    assert len(children) == 3 and parent.info.status == "FINISHED"
    curves = saved_curves(out.folder)
    for trial_id, run in children.items():
        assert metric_history(uri, run.info.run_id, "loss") == curves[trial_id]
        assert [s for s, _ in metric_history(uri, run.info.run_id, "score")] == [1, 2, 3]
        assert run.data.tags["tuner.status"] == "finished" and "lr" in run.data.params
