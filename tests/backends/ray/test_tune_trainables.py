"""Trainables written for Ray Tune and Ray Train (copied from Ray's examples, in
``trainables/ray_tune_examples.py``) run unchanged: how the style is told, what a report
records, checkpoint directories kept and handed back on a retry, ASHA on
``training_iteration``, and ``TorchTrainer``'s context and helpers under ``workers: 2``."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
import torch

import tuner
from tests.backends.ray.test_object_store import s3  # noqa: F401 (a fixture)
from tests.conftest import cli_here, study
from tuner.config import import_trainable, reported_metrics, trainable_style
from tuner.diagnose import diagnose
from tuner.errors import ConfigError

EXAMPLES = "trainables.ray_tune_examples"
BACKENDS = ["ray", "tune"]  # the backends a Ray Tune-style trainable runs on


# -- telling the style, before anything runs --------------------------------------------------
@pytest.mark.parametrize(
    ("dotted", "api", "expected"),
    [
        (f"{EXAMPLES}:train_func", "auto", "tune"),  # one argument, its module uses ray.tune
        (f"{EXAMPLES}:train_loop_per_worker", "auto", "tune"),
        ("trainables.toy:quadratic", "auto", "tuner"),
        ("trainables.digits:mlp", "tune", "tune"),  # said in the YAML
        ("trainables.toy:quadratic", "tuner", "tuner"),
        ("trainables.digits:mlp", "auto", "must take (config, trial); it takes one argument"),  # no Ray in it
        (f"{EXAMPLES}:train_func", "tuner", "must take (config, trial)"),
        ("trainables.toy:quadratic", "tune", "must take (config) or nothing"),
    ],
)
def test_the_style_is_told_by_the_signature_or_the_yaml(dotted: str, api: str, expected: str) -> None:
    fn = import_trainable(dotted)
    if expected in ("tune", "tuner"):
        assert trainable_style(fn, api) == expected
    else:
        with pytest.raises(TypeError, match=expected.replace("(", r"\(").replace(")", r"\)")):
            trainable_style(fn, api)


def test_a_train_loop_without_config_is_ray_train_style() -> None:
    import ray.train

    namespace: dict[str, Any] = {"ray": ray}
    exec("def loop():\n    ray.train.report({'loss': 1.0})\n", namespace)
    assert trainable_style(namespace["loop"]) == "tune"


def _literal(config):  # type: ignore[no-untyped-def]
    from ray import tune

    tune.report({"loss": 1.0, "acc": 0.5})


def _named(config):  # type: ignore[no-untyped-def]
    from ray.train import report

    metrics = dict(loss=1.0)
    report(metrics=metrics)


def _mutated(config):  # type: ignore[no-untyped-def]
    from ray import tune

    metrics = {"loss": 1.0}
    metrics["acc"] = 0.5
    tune.report(metrics)


def test_the_metric_names_of_tune_reports_are_read_from_the_source() -> None:
    assert reported_metrics(import_trainable(f"{EXAMPLES}:train_func"), "tune") == {"iterations", "mean_loss"}
    assert reported_metrics(import_trainable(f"{EXAMPLES}:train_loop_per_worker"), "tune") == {"loss", "epoch"}
    assert reported_metrics(_literal, "tune") == {"loss", "acc"}
    assert reported_metrics(_named, "tune") == {"loss"}
    assert reported_metrics(_mutated, "tune") is None  # keys added elsewhere: not known


def test_a_metric_a_tune_trainable_never_reports_is_refused_with_what_it_reports() -> None:
    body = f"""
    trainable: {EXAMPLES}:train_func
    metric: {{name: accuracy, goal: maximize}}
    method: random
    run_cap: 2
    parameters:
      width: {{value: 10}}
    """
    with pytest.raises(ConfigError, match=r"its tune.report calls report: iterations, mean_loss, training_iteration"):
        study(body)
    study(body.replace("accuracy", "training_iteration"))  # Tune's own counter is a metric too


def test_trainable_api_is_checked() -> None:
    body = f"""
    trainable: {EXAMPLES}:train_func
    metric: {{name: mean_loss}}
    method: random
    run_cap: 2
    parameters:
      width: {{value: 10}}
    """
    with pytest.raises(ConfigError, match=r"trainable: .* must take \(config, trial\)"):
        study(body + "trainable_api: tuner\n")
    with pytest.raises(ConfigError, match=r"trainable_api: .*auto.*tuner.*tune"):
        study(body + "trainable_api: ray\n")
    with pytest.raises(ConfigError, match=r"trainable_api: tune: backend simulated calls f\(config, step\)"):
        study(body + "trainable_api: tune\n    early_terminate: {type: asha, max_t: 3}\n", backend="simulated")


# -- a rank's session, without Ray --------------------------------------------------------------
def test_only_numbers_are_recorded() -> None:
    from tuner.backends.ray._tune_api import numeric

    reported = {
        "loss": torch.tensor(0.5),
        "n": 3,
        "val": {"acc": 0.25, "name": "x"},
        "note": "text",
        "flag": True,
        "none": None,
        "many": torch.ones(3),
    }
    assert numeric(reported) == {"loss": 0.5, "n": 3.0, "val/acc": 0.25}


def _run_rank(
    trainable: str,
    tmp_path: Path,
    checkpoint: str | None = None,
    stop_after: int = 3,
    config: dict[str, Any] | None = None,
    max_steps: int | None = None,
) -> list[Any]:
    """One trial of ``trainable`` on this thread as a worker rank runs it (no Ray): its events."""
    from tuner.backends.ray._worker import TrialTask, _train
    from tuner.storage import CheckpointStore

    store = CheckpointStore(str(tmp_path / "ckpt"))
    config = {"width": 10, "height": 20} if config is None else config
    task = TrialTask("t1", trainable, config, 0, max_steps, 0.0, store=store, checkpoint=checkpoint, study="s")
    stop, events = threading.Event(), []

    def emit(record: dict[str, Any]) -> None:
        events.append(record)
        if sum("step" in e for e in events) >= stop_after:
            stop.set()

    _train(task, stop, emit, events.append)
    return events


def test_a_rank_reports_training_iterations_and_keeps_checkpoint_directories(tmp_path: Path) -> None:
    events = _run_rank(f"{EXAMPLES}:train_func", tmp_path)
    *reports, end = events
    assert end == {"kind": "pruned"}  # told to stop after its third report, it ends at the next, as under ASHA
    assert [r["step"] for r in reports] == [1, 2, 3, 4]
    assert [r["metrics"]["training_iteration"] for r in reports] == [1.0, 2.0, 3.0, 4.0]
    assert [r["metrics"]["iterations"] for r in reports] == [0.0, 1.0, 2.0, 3.0]
    assert "checkpoint_path" not in reports[-1]  # a report after the stop: nobody records its checkpoint
    last = Path(reports[-2]["checkpoint_path"])
    assert last.name == "checkpoint_000003"
    assert json.loads((last / "checkpoint.json").read_text()) == {"step": 2}
    assert sorted(p.name for p in last.parent.iterdir()) == [f"checkpoint_00000{i}" for i in (1, 2, 3)]  # none left
    # a retry from the checkpoint of iteration 1 goes on at 2; the first attempt's later ones are dropped
    again = _run_rank(f"{EXAMPLES}:train_func", tmp_path, checkpoint=reports[0]["checkpoint_path"], stop_after=1)
    assert [r["step"] for r in again[:-1]] == [2, 3]
    assert [r["metrics"]["iterations"] for r in again[:-1]] == [1.0, 2.0]
    assert sorted(p.name for p in last.parent.iterdir()) == [f"checkpoint_00000{i}" for i in (1, 2)]


@pytest.mark.parametrize(
    ("name", "scores"),
    [("objective", [("score", 3.0)]), ("objective_yields", [("score", v) for v in (3.0, 4.0, 5.0)]),
     ("objective_number", [("_metric", 3.0)])],
)  # fmt: skip
def test_returned_or_yielded_metrics_are_reports_as_in_ray_tune(tmp_path: Path, name: str, scores: list[Any]) -> None:
    *reports, end = _run_rank(f"{EXAMPLES}:{name}", tmp_path, config={"a": 1.0, "b": 2}, stop_after=99)
    assert end == {"kind": "done"}
    assert [r["step"] for r in reports] == list(range(1, len(scores) + 1))
    assert [(k, r["metrics"][k]) for r, (k, _) in zip(reports, scores, strict=True)] == scores


def test_what_a_tune_trainable_returns_must_be_metrics(tmp_path: Path) -> None:
    from tuner.backends.ray._tune_api import returned

    assert list(returned(None)) == [] and list(returned({})) == []
    with pytest.raises(ValueError, match="returned or yielded str: return or yield a dict of metrics"):
        list(returned("done"))


def test_a_tune_trainable_ends_at_max_t_as_tune_stops_it(tmp_path: Path) -> None:
    # it would run 100 iterations; ASHA's max_t (the trial's budget) ends it at 5, where Tune would,
    # with no report and no checkpoint past it (the engine's stop arrives a few iterations late)
    *reports, end = _run_rank(f"{EXAMPLES}:train_sparse_checkpoints", tmp_path, stop_after=99, max_steps=5)
    assert end == {"kind": "pruned"} and [r["step"] for r in reports] == [1, 2, 3, 4, 5]
    assert [Path(r["checkpoint_path"]).name for r in reports if "checkpoint_path" in r] == [
        "checkpoint_000001",
        "checkpoint_000004",
    ]
    assert sorted(p.name for p in (tmp_path / "ckpt" / "t1").iterdir()) == ["checkpoint_000001", "checkpoint_000004"]
    # a retry from iteration 4's checkpoint goes on at 5 (its timestep 4) and ends there
    again = _run_rank(
        f"{EXAMPLES}:train_sparse_checkpoints", tmp_path, reports[3]["checkpoint_path"], stop_after=99, max_steps=5
    )
    assert [r["step"] for r in again[:-1]] == [5] and again[-1] == {"kind": "pruned"}


MOCK = "ray.tune.utils.mock_trainable:MyTrainableClass"  # Ray's own class trainable (its tests' example)


def test_a_class_trainable_is_a_ray_tune_trainable_and_checked_as_one() -> None:
    from tuner.config._trainable import check_trainable

    assert check_trainable(MOCK, "episode_reward_mean", ["ray"]) == []
    assert trainable_style(import_trainable(MOCK)) == "tune"
    with pytest.raises(TypeError, match=r"is a ray.tune.Trainable class: it runs as a Ray Tune trainable"):
        trainable_style(import_trainable(MOCK), "tuner")


def test_a_class_trainable_steps_saves_each_step_and_goes_on_from_its_checkpoint(tmp_path: Path) -> None:
    *reports, end = _run_rank(MOCK, tmp_path, stop_after=2, config={"width": 2, "height": 3})
    assert end == {"kind": "pruned"} and [r["step"] for r in reports] == [1, 2, 3]
    assert [round(r["metrics"]["episode_reward_mean"], 6) for r in reports] == [
        round(3 * math.tanh(t / 2), 6) for t in (1, 2, 3)
    ]
    assert "pid" not in reports[0]["metrics"] and "time_total_s" in reports[0]["metrics"]  # Ray's times, no host
    saved = Path(reports[1]["checkpoint_path"])
    assert json.loads((saved / "checkpoint").read_text()) == {"timestep": 2}  # its own save_checkpoint
    # a retry from step 2: load_checkpoint gives timestep 2 back, and Ray's iteration count is 2
    config = {"width": 2, "height": 3, "mock_error": True}  # fails after a restore only when not restored
    *again, end = _run_rank(MOCK, tmp_path, str(saved), stop_after=2, config=config)
    assert [r["step"] for r in again] == [3, 4, 5] and end == {"kind": "pruned"}
    assert round(again[0]["metrics"]["episode_reward_mean"], 6) == round(3 * math.tanh(3 / 2), 6)
    *_, failed = _run_rank(MOCK, tmp_path, stop_after=5, config=config)  # not restored: fails at its 2nd step
    assert failed["kind"] == "error" and "Failing on purpose" in failed["error"]


def test_a_class_trainable_knows_its_trial_and_one_that_never_saves_runs_without_checkpoints(tmp_path: Path) -> None:
    *reports, end = _run_rank(f"{EXAMPLES}:Counter", tmp_path, stop_after=2, config={})
    assert end == {"kind": "pruned"} and [r["metrics"]["count"] for r in reports] == [1.0, 2.0, 3.0]
    assert not any("checkpoint_path" in r for r in reports)
    assert (tmp_path / "ckpt" / "t1" / "setup.txt").read_text() == "t1 t1"  # its logdir is the trial's folder


def test_a_class_trainable_saving_a_dict_goes_on_with_its_counts(tmp_path: Path) -> None:
    *reports, _ = _run_rank(f"{EXAMPLES}:SavingCounter", tmp_path, stop_after=2, config={})
    assert [r["metrics"]["timesteps_total"] for r in reports] == [10.0, 20.0, 30.0]
    *again, _ = _run_rank(f"{EXAMPLES}:SavingCounter", tmp_path, reports[1]["checkpoint_path"], 1, config={})
    assert [r["step"] for r in again] == [3, 4] and [r["metrics"]["count"] for r in again] == [3.0, 4.0]
    assert [r["metrics"]["timesteps_total"] for r in again] == [30.0, 40.0]  # Ray's totals go on too


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_class_trainable_runs_as_a_study_retried_from_its_checkpoint(
    ray_local: None, in_tmp: Path, backend: str
) -> None:
    body = f"""
    name: cls
    trainable: {MOCK}
    backend: {backend}
    metric: {{name: episode_reward_mean, goal: maximize}}
    method: grid
    max_failures: 1
    early_terminate: {{type: asha, max_t: 4, grace_period: 4}}
    parameters:
      width: {{value: 2}}
      height: {{values: [1, 3]}}
      mock_error: {{value: true}}
    """
    out = tuner.run(study(body, allow_modules=["ray.tune.utils"]), quiet=True)
    trials = tuner.load_results(out.folder).sort_values("trial_id")
    assert list(trials["status"]) == ["finished"] * 2 and list(trials["attempts"]) == [1, 1]  # failed once each
    history = tuner.load_history(out.folder)
    assert sorted(history["step"].unique()) == [1, 2, 3, 4]  # went on from step 1's checkpoint, to max_t
    best = tuner.load_best(out.folder)
    assert best["params"]["height"] == 3 and best["metric"]["value"] == pytest.approx(3 * math.tanh(4 / 2))


@pytest.mark.parametrize(
    ("trainable", "resources", "cpus", "said"),
    [
        ("objective_on_two_cpus", "", 2.0, "its tune.with_resources: 2 CPU, 0 GPU a trial (no resources block"),
        ("objective_on_two_cpus", "resources: {cpus: 1}", 1.0, "(2 CPU, 0 GPU) is not used: the study's resources"),
        ("objective_sized_by_config", "", 1.0, "is not used (its resources are a function of the config)"),
        ("objective", "", 1.0, None),
        ("class_on_two_cpus", "", 2.0, "its tune.with_resources: 2 CPU, 0 GPU a trial"),
        ("MyTrainableClass", "", 1.0, None),  # Ray's Trainable asks for nothing of its own
        ("class_sized_by_config", "", 1.0, "is not used (its default_resource_request depends on the config)"),
        ("objective_on_odd_gpus", "", 1.0, "is not used: more than one GPU per worker must be a whole number"),
        ("objective_on_two_cpus", "resources: {cpus: 2}", 2.0, None),  # the same: nothing to say (a resume)
    ],
)
def test_resources_asked_for_with_tune_with_resources_are_a_trials_unless_the_study_says(
    trainable: str, resources: str, cpus: float, said: str | None
) -> None:
    s = study(
        f"""
        name: res
        trainable: {EXAMPLES}:{trainable}
        metric: {{name: score, goal: minimize}}
        method: grid
        parameters:
          a: {{value: 1}}
          b: {{value: 2}}
        {resources}
        """
    )
    assert s.spec.resources.cpu == cpus
    taken = not resources and said is not None and said.startswith("its tune.with_resources:")
    saved = s.raw.get("resources")  # the study as saved: a resume runs with the same resources
    assert (saved == {"cpus": cpus, "gpus": 0.0}) if taken else (saved is not None) == bool(resources)
    notes = [n for n in s.notices if "tune.with_resources" in n]
    assert (notes == []) if said is None else (len(notes) == 1 and said in notes[0])


def test_a_tune_trainable_that_never_reports_is_told_so(tmp_path: Path) -> None:
    (end,) = _run_rank(f"{EXAMPLES}:never_reports", tmp_path)
    assert end["kind"] == "error" and "returned without reporting" in end["error"]
    found = diagnose("errored", end["error"], {}, end["traceback"])
    assert found is not None and found.cause == "not_reported" and "ray.tune.report" in found.hint
    # the engine's verdict on reports without the study's metric: said in Ray Tune's terms too
    missing = diagnose("errored", "metric 'acc' was not reported at step 1 (reported: loss, training_iteration)")
    assert missing is not None and missing.cause == "not_reported" and "ray.tune.report" in missing.hint


IMPORT_STYLES = """
import sys, threading
from tuner.backends.ray._worker import TrialTask, _train
if sys.argv[1] == "late":  # the module binds Ray's own functions before anything is installed
    import trainables.ray_tune_styles
for name in ("tune_names", "train_names"):
    events = []
    task = TrialTask("t1", "trainables.ray_tune_styles:" + name, {"x": 2}, 0, None, 0.0)
    _train(task, threading.Event(), events.append, events.append)
    print(name, events)
import trainables.ray_tune_styles as module
print(all(hasattr(getattr(module, n), "__tuner_method__") for n in ("report", "train_report", "get_context")))
"""


@pytest.mark.parametrize("when", ["first", "late"])
def test_names_bound_by_from_imports_answer_for_the_trial(when: str) -> None:
    from tests.conftest import ROOT, cli_env

    done = subprocess.run(
        [sys.executable, "-c", IMPORT_STYLES, when], cwd=ROOT, env=cli_env(None), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    tune, train, bound = done.stdout.splitlines()[-3:]
    assert "'metrics': {'loss': 2.0, 'training_iteration': 1.0}" in tune and "{'kind': 'done'}" in tune
    assert "'metrics': {'loss': 2.0, 'rank': 0.0, 'training_iteration': 1.0}" in train
    assert bound == "True"


def test_outside_a_trial_rays_functions_stay_rays() -> None:
    import ray.train
    import ray.tune

    from tuner.backends.ray import _tune_hook

    _tune_hook.install()
    assert hasattr(ray.tune.report, "__tuner_method__") and hasattr(ray.train.get_context, "__tuner_method__")
    with pytest.raises(RuntimeError, match="cannot be used outside of a Ray Train training function"):
        ray.train.get_context()  # Ray's own answer: no trial is bound to this thread


def test_plans_smoke_step_runs_a_tune_trainable_to_its_first_report(in_tmp: Path) -> None:
    from tuner.plan import smoke

    body = f"""
    trainable: {EXAMPLES}:train_func
    metric: {{name: mean_loss}}
    method: random
    run_cap: 2
    parameters:
      width: {{value: 10}}
      height: {{value: 20}}
    """
    assert smoke(study(body))["metrics"] == {"iterations": 0.0, "mean_loss": 12.0, "training_iteration": 1.0}


@pytest.mark.slow
def test_checkpoint_directories_in_an_object_store(tmp_path: Path, s3: str) -> None:  # noqa: F811
    from ray.tune import Checkpoint

    from tuner.storage import CheckpointStore

    store = CheckpointStore(f"s3://studies/ckpt?endpoint_override={s3}&scheme=http")
    source = tmp_path / "source"
    (source / "sub").mkdir(parents=True)
    (source / "state.json").write_text('{"step": 2}')
    (source / "sub" / "more.txt").write_text("x")
    paths = [store.save_directory("t1", step, str(source)) for step in (1, 2, 3)]
    assert paths[1] == "studies/ckpt/t1/checkpoint_000002" and store.step_of(paths[1]) == 2
    assert store.uri(paths[1]).startswith("s3://studies/ckpt/t1/checkpoint_000002")
    with Checkpoint(path=paths[1], filesystem=store.filesystem).as_directory() as folder:  # what get_checkpoint gives
        assert (Path(folder) / "state.json").read_text() == '{"step": 2}'
        assert (Path(folder) / "sub" / "more.txt").read_text() == "x"
    store.drop_after("t1", 2)
    assert [store.exists(p) for p in paths] == [True, True, False]
    store.delete(paths[0])
    assert not store.exists(paths[0])
    local = store.download(paths[1], str(tmp_path / "copy"))
    assert (Path(local) / "sub" / "more.txt").read_text() == "x"


# -- studies on Ray -----------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_rays_function_example_runs_under_asha_from_the_cli(ray_local: None, tmp_path: Path, backend: str) -> None:
    (tmp_path / "space.yaml").write_text(
        textwrap.dedent(
            f"""
            name: tune_example
            trainable: {EXAMPLES}:train_func
            backend: {backend}
            metric: {{name: mean_loss, goal: minimize}}
            method: random
            seed: 3
            run_cap: 6
            max_concurrent: 2
            early_terminate: {{type: asha, max_t: 8, grace_period: 2, reduction_factor: 2}}
            parameters:
              width: {{distribution: int_uniform, min: 10, max: 100}}
              height: {{distribution: uniform, min: 10, max: 100}}
            """
        )
    )
    done = cli_here("run", "space.yaml", "--no-dashboard", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "results" / "tune_example"
    trials = tuner.load_results(folder)
    assert len(trials) == 6 and set(trials["status"]) <= {"finished", "pruned"}
    history = tuner.load_history(folder)
    for trial_id, rows in history.groupby("trial_id"):
        status = trials.set_index("trial_id").loc[trial_id, "status"]
        steps = list(rows["step"])
        assert steps == list(range(1, len(steps) + 1))  # Tune's training_iteration is the step
        assert list(rows["training_iteration"]) == steps
        assert list(rows["iterations"]) == [s - 1 for s in steps]  # the example's own counter agrees
        assert steps[-1] == 8 if status == "finished" else steps[-1] in (2, 4)  # ASHA's rungs
    best = tuner.load_best(folder)
    checkpoint = Path(best["checkpoint"])  # the best trial's last checkpoint directory
    saved = json.loads((checkpoint / "checkpoint.json").read_text())
    assert saved == {"step": best["step"] - 1}
    if backend == "tune":  # Tune keeps them in each trial's folder, the last `keep` (1)
        assert checkpoint.parent == folder / "tune" / best["trial_id"]
        for trial_id in trials["trial_id"]:
            assert len(list((folder / "tune" / trial_id).glob("checkpoint_*"))) == 1
        return
    assert checkpoint.name == f"checkpoint_{best['step']:06d}"
    for trial_folder in (folder / "checkpoints").iterdir():
        assert len(list(trial_folder.iterdir())) <= 2  # the last and the best; older ones deleted


@pytest.mark.slow
def test_yielded_metrics_are_reported_on_tune(ray_local: None, in_tmp: Path) -> None:
    """On backend tune the trainable runs in Tune's own session: what it yields (or returns, the
    same path) is reported there; the engine's path is tested above without Ray."""
    body = f"""
    name: yields
    trainable: {EXAMPLES}:objective_yields
    backend: tune
    metric: {{name: score, goal: minimize}}
    method: grid
    parameters:
      a: {{value: 0.5}}
      b: {{value: 1}}
    """
    out = tuner.run(study(body), quiet=True)
    assert list(tuner.load_history(out.folder)["score"]) == [1.5, 2.0, 2.5]
    assert tuner.load(out.folder).get_best_result().metrics["score"] == 2.5


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_crashed_trial_resumes_from_its_checkpoint_iteration(ray_local: None, in_tmp: Path, backend: str) -> None:
    crashes = in_tmp / "crashes"
    crashes.mkdir()
    body = f"""
    name: crash_once
    trainable: {EXAMPLES}:train_func_crashing_once
    backend: {backend}
    metric: {{name: mean_loss, goal: minimize}}
    method: grid
    max_failures: 1
    early_terminate: {{type: asha, max_t: 6, grace_period: 6}}
    parameters:
      width: {{value: 20}}
      height: {{value: 30}}
      crash_at: {{value: 3}}
      crash_dir: {{value: {crashes}}}
    """
    out = tuner.run(study(body), quiet=True)
    trials = tuner.load_results(out.folder)
    assert list(trials["status"]) == ["finished"] and list(trials["attempts"]) == [1]  # one retry
    assert len(list(crashes.iterdir())) == 1  # it did crash once
    history = tuner.load_history(out.folder)
    # crashed at current_step 3 (iteration 4), after the checkpoint of iteration 3: the retry got
    # that checkpoint back and went on at iteration 4 with the example's step 3, not from 1 and 0
    assert list(history["step"]) == [1, 2, 3, 4, 5, 6]
    assert list(history["iterations"]) == [0, 1, 2, 3, 4, 5]
    log = out.folder / ("tune/t0001/error.txt" if backend == "tune" else "logs/t0001.log")  # where each keeps it
    assert "crashed once, mid-run, on purpose" in log.read_text()
    final = tuner.train(study(body), {"width": 20, "height": 30, "crash_at": -1, "crash_dir": str(crashes)},
                        out=in_tmp / "final", quiet=True)  # fmt: skip
    assert json.loads((Path(final["checkpoint"]) / "checkpoint.json").read_text()) == {"step": 5}


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_rays_torch_quickstart_runs_as_a_ddp_study(ray_local: None, in_tmp: Path, backend: str) -> None:
    body = f"""
    name: quickstart
    trainable: {EXAMPLES}:train_loop_per_worker
    backend: {backend}
    metric: {{name: loss, goal: minimize}}
    method: random
    seed: 0
    run_cap: 2
    resources: {{workers: 2}}
    early_terminate: {{type: asha, max_t: 4, grace_period: 2, reduction_factor: 2}}
    parameters:
      lr: {{distribution: log_uniform_values, min: 1e-4, max: 1e-2}}
    """
    out = tuner.run(study(body), quiet=True)
    trials = tuner.load_results(out.folder)
    assert len(trials) == 2 and set(trials["status"]) <= {"finished", "pruned"}
    history = tuner.load_history(out.folder)
    assert (history["epoch"] == history["step"] - 1).all()  # one report an epoch, epochs from 0
    checkpoint = Path(tuner.load_best(out.folder)["checkpoint"])
    state = torch.load(checkpoint / "model.pt", weights_only=True)  # both ranks wrote model.pt
    from trainables.ray_tune_examples import NeuralNetwork

    NeuralNetwork().load_state_dict(state)


@pytest.mark.slow
def test_each_rank_is_told_its_place_as_under_a_torch_trainer(ray_local: None, in_tmp: Path) -> None:
    body = f"""
    name: probe
    trainable: {EXAMPLES}:context_probe
    metric: {{name: loss, goal: minimize}}
    method: grid
    resources: {{workers: 2}}
    parameters:
      x: {{value: 1}}
    """
    out = tuner.run(study(body), quiet=True)
    assert list(tuner.load_results(out.folder)["status"]) == ["finished"]
    folder = out.folder / "checkpoints" / "t0001"  # the trial's folder: tune.get_context().get_trial_dir()
    seen = [json.loads((folder / f"rank{r}.json").read_text()) for r in (0, 1)]
    for rank, told in enumerate(seen):
        assert told == {
            "world_rank": rank,
            "world_size": 2,
            "local_rank": rank,
            "local_world_size": 2,
            "node_rank": 0,
            "experiment": "probe",
            "trial_id": "t0001",
            "trial_name": "t0001",
            "device": "cpu",
            "ddp": "DistributedDataParallel",  # prepare_model wrapped it in our process group
            "sampler": "DistributedSampler",  # prepare_data_loader sharded 8 samples over 2 ranks
            "batches": 2,
            "checkpoint": False,
        }
    history = tuner.load_history(out.folder)
    assert {"loss", "nested/value", "training_iteration"} <= set(history.columns)
    assert "note" not in history.columns  # not a number: not recorded


def test_a_report_that_says_done_ends_the_trial_finished(tmp_path: Path) -> None:
    # Ray's pbt_function example loops `while True:` and ends when its report says done, as Tune
    # ends a trial whose result has done=True; even a trial told to stop at that report is finished
    until_done = f"{EXAMPLES}:train_until_done"
    *reports, end = _run_rank(until_done, tmp_path, config={"done_at": 4}, stop_after=99, max_steps=10)
    assert end == {"kind": "done"}
    assert [r["step"] for r in reports] == [1, 2, 3, 4]
    assert "done" not in reports[-1]["metrics"]  # a boolean, not a metric
    *reports, end = _run_rank(until_done, tmp_path, config={"done_at": 2}, stop_after=1)
    assert end == {"kind": "done"} and [r["step"] for r in reports] == [1, 2]


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_stop_finishes_a_tune_trainable_that_loops_forever(ray_local: None, in_tmp: Path, backend: str) -> None:
    # Ray Tune's RunConfig(stop={"training_iteration": 6, "mean_accuracy": 2.5}) as the study's stop:
    # accuracy grows by lr a step: lr 1 meets it at step 3, lr 0.5 at step 5, lr 0.1 runs to step 6
    body = f"""
    name: forever
    trainable: {EXAMPLES}:train_until_done
    backend: {backend}
    metric: {{name: mean_accuracy, goal: maximize}}
    method: grid
    stop: {{training_iteration: 6, mean_accuracy: 2.5}}
    parameters:
      lr: {{values: [1.0, 0.5, 0.1]}}
      done_at: {{value: 1000}}
    """
    out = tuner.run(study(body), quiet=True)
    trials = tuner.load_results(out.folder).set_index("params_lr").sort_index()
    assert list(trials["status"]) == ["finished"] * 3
    assert list(trials["step"]) == [6, 5, 3]


def test_on_tune_a_stop_criterion_the_results_lack_is_said_once(tmp_path: Path) -> None:
    """Backend tune's stopper judges ``stop:`` as the engine does, and says so, once, when a
    criterion's metric is not in the results (a misspelt name would never stop anything)."""
    from tuner.backends.ray.tune._callback import LIVE, Judge, TuneStudy
    from tuner.results import Recorder

    body = f"""
    name: misspelt
    trainable: {EXAMPLES}:train_until_done
    backend: tune
    metric: {{name: mean_accuracy, goal: maximize}}
    method: grid
    stop: {{training_iteration: 6, mean_acuracy: 2.5}}
    parameters:
      lr: {{values: [1.0]}}
    """
    s = study(body)
    said: list[str] = []
    key = str(tmp_path)
    LIVE[key] = TuneStudy(s, Recorder(tmp_path, s.metric, s.maximize), time_attr="training_iteration", say=said.append)
    try:
        judge = Judge(key)
        assert not judge("x", {"training_iteration": 1, "mean_accuracy": 3.0, "time_total_s": 0.1})
        assert not judge("x", {"training_iteration": 2, "mean_accuracy": 3.0, "time_total_s": 0.2})
        assert judge("x", {"training_iteration": 6, "mean_accuracy": 3.0, "time_total_s": 0.3})
    finally:
        LIVE.pop(key)
    lines = [line for line in said if line.startswith("stop.mean_acuracy:")]
    assert len(lines) == 1 and "reported no mean_acuracy" in lines[0], said
