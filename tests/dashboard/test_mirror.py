"""The journal mirrored into an Optuna storage, as optuna-dashboard reads it: no browser, no Ray."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.study import StudyDirection
from optuna.trial import TrialState

import tuner
from tests.conftest import ROOT, study
from tests.dashboard.studies import Written
from tuner.cli import main
from tuner.dashboard import Mirror, distribution
from tuner.space import parse_parameters

LOSS = {"name": "loss", "goal": "minimize"}

SIMULATED = """
name: sim
trainable: trainables.simulated:curve
backend: simulated
metric: {name: loss, goal: minimize}
method: random
seed: 0
run_cap: 24
max_concurrent: 4
early_terminate: {type: asha, max_t: 9, grace_period: 1, reduction_factor: 3}
parameters:
  lr: {distribution: log_uniform_values, min: 1e-4, max: 1e-1}
  width: {distribution: q_uniform, min: 16, max: 512, q: 16}
  opt.name: {values: [adam, sgd]}
  sizes: {values: [[64, 64], [128]]}
  epochs: {value: 9}
"""


def trials(mirror: Mirror) -> dict[str, Any]:
    """The storage's trials by tuner's trial id."""
    return {t.user_attrs["trial_id"]: t for t in mirror.storage.get_all_trials(mirror.study_id)}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"min": 0.0, "max": 1.0}, FloatDistribution(0.0, 1.0)),
        ({"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1}, FloatDistribution(1e-4, 1e-1, log=True)),
        ({"distribution": "q_uniform", "min": 16, "max": 512, "q": 16}, FloatDistribution(16, 512)),
        ({"distribution": "int_uniform", "min": 1, "max": 6}, IntDistribution(1, 6)),
        ({"values": ["relu", "tanh"]}, CategoricalDistribution(["relu", "tanh"])),
        ({"values": [[64, 64], [128]]}, CategoricalDistribution(["[64, 64]", "[128]"])),
        ({"values": [1, None, True]}, CategoricalDistribution([1, None, True])),
    ],
)
def test_each_kind_of_parameter_has_the_distribution_a_chart_needs(spec: dict[str, Any], expected: Any) -> None:
    space, problems = parse_parameters({"p": spec})
    assert not problems
    assert distribution(space.params["p"]) == expected


def test_a_normal_parameter_spans_what_its_searchers_reach_and_a_constant_has_none() -> None:
    space, _ = parse_parameters(
        {"m": {"distribution": "normal", "mu": 0.9, "sigma": 0.02}, "c": {"value": 3}, "b": {"distribution": "beta"}}
    )
    normal = distribution(space.params["m"])
    assert normal.low < 0.9 - 4 * 0.02 and normal.high > 0.9 + 4 * 0.02 and not normal.log
    assert (distribution(space.params["b"]).low, distribution(space.params["b"]).high) == (0.0, 1.0)
    assert distribution(space.params["c"]) is None


def test_a_finished_simulated_study_is_mirrored_trial_for_trial(in_tmp: Path, no_ray: None) -> None:
    out = tuner.run(study(SIMULATED), quiet=True)
    table = pd.read_parquet(out.folder / "trials.parquet").set_index("trial_id")
    history = pd.read_parquet(out.folder / "history.parquet")
    mirror = Mirror(out.folder)
    assert mirror.sync() > 0 and mirror.sync() == 0  # nothing new the second time
    held = trials(mirror)
    assert list(held) == list(table.index)  # in start order
    assert [t.number for t in held.values()] == list(range(len(table)))
    assert set(table["status"]) == {"finished", "pruned"}
    frozen = mirror.storage.get_study_system_attrs(mirror.study_id)
    assert frozen["study:metric_names"] == ["loss"]
    assert mirror.storage.get_study_directions(mirror.study_id) == [StudyDirection.MINIMIZE]
    for trial_id, row in table.iterrows():
        t = held[trial_id]
        assert t.state == (TrialState.COMPLETE if row["status"] == "finished" else TrialState.PRUNED)
        assert t.value == pytest.approx(row["value"])  # a pruned trial's: its last, as Optuna records it
        curve = history[history["trial_id"] == trial_id]
        assert t.intermediate_values == pytest.approx(dict(zip(curve["step"].astype(int), curve["loss"], strict=True)))
        assert t.params["lr"] == pytest.approx(row["params_lr"]) and t.params["width"] == row["params_width"]
        assert t.params["opt.name"] == row["params_opt.name"]
        assert t.params["sizes"] == json.dumps(json.loads(row["params_sizes"]))
        assert "epochs" not in t.params  # a constant: nothing to chart
        assert t.user_attrs["status"] == row["status"] and t.user_attrs["step"] == row["step"]
        assert t.datetime_complete >= t.datetime_start
    assert isinstance(t.distributions["lr"], FloatDistribution) and t.distributions["lr"].log
    best = optuna.load_study(study_name=mirror.name, storage=mirror.storage).best_trial
    assert best.user_attrs["trial_id"] == tuner.load_best(out.folder)["trial_id"]  # the same winner
    assert mirror.state() == "done"


def test_a_running_study_is_followed_as_its_journal_grows(tmp_path: Path) -> None:
    study_ = Written(tmp_path / "live", LOSS)
    first = study_.trial("finished", [1.0, 0.5, 0.25], lr=0.001)
    second = study_.start(layers=3)
    study_.report(second, 1, loss=0.9, accuracy=0.1)
    mirror = Mirror(study_.folder)
    mirror.sync()
    held = trials(mirror)
    assert held[first].state == TrialState.COMPLETE and held[first].value == 0.25
    assert held[second].state == TrialState.RUNNING and held[second].intermediate_values == {1: 0.9}
    assert held[second].user_attrs["accuracy"] == pytest.approx(0.1)
    study_.report(second, 2, loss=0.7, accuracy=0.3)
    study_.end(second, "pruned")
    failed = study_.start()
    study_.report(failed, 1, loss=math.nan, accuracy=0.0)
    study_.end(failed, "nan", error="Traceback ...\nValueError: loss is nan", cause="nan")
    with (study_.folder / "journal.jsonl").open("a") as journal:  # a line still being written
        journal.write('{"e": "start", "trial": "t0004", "params": {"lr": 0.0')
    assert mirror.sync() == 5
    held = trials(mirror)
    assert held[second].state == TrialState.PRUNED and held[second].value == 0.7
    assert held[second].intermediate_values == {1: 0.9, 2: 0.7}
    assert held[failed].state == TrialState.FAIL and held[failed].values is None
    assert (held[failed].user_attrs["cause"], held[failed].user_attrs["error"]) == ("nan", "ValueError: loss is nan")
    assert held[failed].user_attrs["loss"] == "nan" and math.isnan(held[failed].intermediate_values[1])
    assert "t0004" not in held
    with (study_.folder / "journal.jsonl").open("a") as journal:
        journal.write('1, "layers": 1}, "seed": 4, "t": 1.0}\n')
    mirror.sync()
    assert trials(mirror)["t0004"].params == {"lr": 0.01, "layers": 1}


def test_a_retried_trial_continues_from_its_checkpoint_and_a_pbt_exploit_changes_its_values(tmp_path: Path) -> None:
    study_ = Written(tmp_path / "retry", LOSS)
    trial_id = study_.start(lr=0.01)
    for step in (1, 2, 3):
        study_.report(trial_id, step, loss=1.0 / step)
    study_.recorder.rewind(trial_id, 2, error="worker died")
    study_.recorder.exploit({"trial": trial_id, "donor": trial_id, "donor_step": 2, "new": {"lr": 0.02}})
    study_.report(trial_id, 3, loss=0.2)
    mirror = Mirror(study_.folder)
    mirror.sync()
    held = trials(mirror)[trial_id]
    assert held.intermediate_values == {1: 1.0, 2: 0.5, 3: 0.2}
    assert held.params["lr"] == 0.02 and held.user_attrs["attempts"] == 1
    study_.report(trial_id, 4, loss=0.1)
    study_.recorder.exploit({"trial": trial_id, "donor": trial_id, "donor_step": 4, "new": {"lr": 0.04}})
    study_.end(trial_id, "finished")
    mirror.sync()
    held = trials(mirror)[trial_id]
    assert held.params["lr"] == 0.04 and held.state == TrialState.COMPLETE and held.value == 0.1


def api(mirror: Mirror, path: str) -> Any:
    """GET ``path`` from optuna-dashboard's own app over the mirror's storage (no server)."""
    import optuna_dashboard

    app = optuna_dashboard.wsgi(mirror.storage)
    environ: dict[str, Any] = {"PATH_INFO": path}
    setup_testing_defaults(environ)
    status: list[str] = []
    body = b"".join(app(environ, lambda s, headers, *_: status.append(s)))
    assert status == ["200 OK"], body[:500]
    return json.loads(body)


def test_several_metrics_one_maximized_are_the_dashboards_objectives(tmp_path: Path) -> None:
    study_ = Written(tmp_path / "two", [LOSS, {"name": "accuracy", "goal": "maximize"}])
    done = study_.trial("finished", [0.5, 0.3])
    pruned = study_.trial("pruned", [0.9])
    mirror = Mirror(study_.folder)
    mirror.sync()
    held = trials(mirror)
    assert held[done].values == [0.3, pytest.approx(0.7)]
    assert held[pruned].state == TrialState.PRUNED and held[pruned].values is None
    assert held[done].intermediate_values == {1: 0.5, 2: 0.3}  # the first metric's
    detail = api(mirror, f"/api/studies/{mirror.study_id}")
    assert detail["directions"] == ["minimize", "maximize"] and detail["objective_names"] == ["loss", "accuracy"]
    assert [t["state"] for t in detail["trials"]] == ["Complete", "Pruned"]
    assert [t["trial_id"] for t in detail["best_trials"]] == [held[done]._trial_id]


def test_a_study_without_a_metric_shows_its_trials_and_their_metrics(tmp_path: Path) -> None:
    study_ = Written(tmp_path / "none")
    done = study_.trial("finished", [0.5, 0.3])
    broken = study_.start()
    study_.end(broken, "errored", error="RuntimeError: boom", cause="user_exception")
    mirror = Mirror(study_.folder)
    mirror.sync()
    held = trials(mirror)
    assert held[done].state == TrialState.COMPLETE and held[done].values is None
    assert held[done].intermediate_values == {} and held[done].user_attrs["loss"] == 0.3
    assert held[broken].state == TrialState.FAIL
    detail = api(mirror, f"/api/studies/{mirror.study_id}")
    assert [t["state"] for t in detail["trials"]] == ["Complete", "Fail"]
    names = {a["key"] for a in detail["trials"][0]["user_attrs"]}
    assert {"trial_id", "status", "loss", "accuracy"} <= names


def test_a_run_whose_driver_died_reads_as_interrupted(tmp_path: Path) -> None:
    study_ = Written(tmp_path / "s", LOSS)
    mirror = Mirror(study_.folder)
    assert mirror.state() == "running"  # this process wrote it
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=False
    )
    state = json.loads((study_.folder / "state.json").read_text())
    (study_.folder / "state.json").write_text(json.dumps({**state, "pid": int(gone.stdout)}))
    assert mirror.state() == "interrupted"


def test_a_folder_that_holds_no_study_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dashboard", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path}: not a tuner results folder (no study.yaml)"


def test_without_the_extra_the_command_names_it(tmp_path: Path) -> None:
    Written(tmp_path / "s", LOSS)
    hide = "import sys; sys.modules['optuna_dashboard'] = None; from tuner.cli import main; sys.exit(main())"
    done = subprocess.run(
        [sys.executable, "-c", hide, "dashboard", str(tmp_path / "s")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "error: optuna-dashboard is not installed: pip install 'tuner[dashboard]'"
