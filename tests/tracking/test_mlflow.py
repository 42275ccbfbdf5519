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


@pytest.mark.parametrize("uri", ["/tmp/mlruns", "./mlruns", "file:///tmp/mlruns", "mlruns"])
def test_a_file_store_mlflow_refuses_is_refused_when_the_study_is_read(
    uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow 3 refuses its file store (the path Ray's MLflowLoggerCallback example passes): said
    when the file is read, naming the key, not by a tracker that stops at the first write."""
    from tuner.errors import ConfigError

    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    text = SIMULATED.format(fn="falling", cap=1, tracking=f"  mlflow: {{tracking_uri: '{uri}'}}")
    with pytest.raises(ConfigError, match=r"tracking\.mlflow\.tracking_uri: .* MLFLOW_ALLOW_FILE_STORE=true"):
        study(text, allow_modules=["tests"], storage=str(tmp_path))
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    assert study(text, allow_modules=["tests"], storage=str(tmp_path)).spec.tracking.mlflow.tracking_uri == uri
    text = SIMULATED.format(fn="falling", cap=1, tracking="  mlflow: {tracking_uri: 'sqlite:///m.db'}")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")
    assert study(text, allow_modules=["tests"], storage=str(tmp_path)).spec.tracking.mlflow is not None


def test_the_results_of_a_file_store_study_are_read_without_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A study run with ``MLFLOW_ALLOW_FILE_STORE=true`` and a file-store ``tracking_uri``: its
    results folder is read (``tuner report``, which reads its study without importing anything)
    in a shell without that variable; only running it again needs the variable."""
    from tuner.errors import ConfigError
    from tuner.report._data import read

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    out = _run(tmp_path, "falling", 2, f"    mlflow: {{tracking_uri: '{uri}', experiment: tuned}}")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")
    data = read(out.folder)
    assert data.study.spec.tracking.mlflow is not None and data.study.spec.tracking.mlflow.tracking_uri == uri
    with pytest.raises(ConfigError, match="MLFLOW_ALLOW_FILE_STORE=true"):
        tuner.resume(out.folder, quiet=True)


@pytest.mark.parametrize("failed", [False, True])
def test_the_runs_a_trial_left_open_are_ended(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failed: bool) -> None:
    """``mlflow.log_metric`` in a trainable opens a run on the trial's thread that MLflow ends only
    at exit: the worker ends it (and a nested one) when the trial ends, FAILED if it raised."""
    import threading

    import mlflow
    from mlflow import MlflowClient

    from tuner.backends.ray._user_runs import end_user_runs

    uri = (tmp_path / "mlruns").as_uri()  # the file store: no database to make (seconds)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    ids: list[str] = []

    def trial() -> None:
        mlflow.log_metric("loss", 0.5, step=1)  # opens a run, as in a user's trainable
        ids.append(mlflow.active_run().info.run_id)
        ids.append(mlflow.start_run(nested=True).info.run_id)
        end_user_runs(failed)
        ids.append("none" if mlflow.active_run() is None else "open")

    thread = threading.Thread(target=trial)
    thread.start()
    thread.join()
    assert ids[2] == "none"
    client = MlflowClient(tracking_uri=uri)
    for run_id in ids[:2]:
        run = client.get_run(run_id)
        assert run.info.status == ("FAILED" if failed else "FINISHED") and run.info.end_time is not None
    assert client.get_metric_history(ids[0], "loss")[0].value == 0.5


@pytest.mark.slow
def test_a_trainable_that_calls_setup_mlflow_runs_unchanged(ray_local: None, tmp_path: Path) -> None:
    """Ray's ``setup_mlflow`` and ``mlflow.log_metrics`` inside a Ray Tune trainable, on tuner's
    engine: one run per trial with the config as parameters and every step logged, ended
    FINISHED, or FAILED for the trial that raised; the second trial, in the process the first
    ran in, gets a run of its own."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("mixin_example")
    text = f"""
    name: mixin
    trainable: tests.tracking.mlflow_trainables:setup_mlflow_style
    metric: {{name: mean_loss, goal: minimize}}
    method: grid
    max_concurrent: 1
    max_failed_trials: 5
    parameters:
      width: {{value: 50}}
      height: {{values: [10, 90]}}
      experiment_name: {{value: mixin_example}}
      tracking_uri: {{value: '{uri}'}}
    """
    out = tuner.run(study(text, allow_modules=["tests"], storage=str(tmp_path / "results")), quiet=True)
    trials = pd.read_parquet(out.folder / "trials.parquet").set_index("params_height")
    assert list(trials.loc[[10, 90], "status"]) == ["finished", "errored"]
    runs = {int(r.data.params["height"]): r for r in client.search_runs([experiment])}
    assert sorted(runs) == [10, 90] and runs[10].data.params["width"] == "50"
    for height, status, steps in [(10, "FINISHED", [0, 1, 2]), (90, "FAILED", [0, 1])]:
        assert runs[height].info.status == status and runs[height].info.end_time is not None
        assert [m.step for m in client.get_metric_history(runs[height].info.run_id, "mean_loss")] == steps
