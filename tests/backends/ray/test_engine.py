"""End-to-end studies on a private Ray: real workers, real trainables, real files.

The engine's decisions (pruning, seeds, limits, failures, the median rule, what the searcher is
told) are tested on the simulated backend in tests/engine; these check them on real processes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

import tuner
from tests.conftest import ROOT, study
from tuner.backends.ray._group import allocator_env
from tuner.backends.ray._worker import TrialTask, TrialWorker
from tuner.trial import Trial

pytestmark = pytest.mark.slow


TOY = """
name: toy
trainable: trainables.toy:quadratic
metric: {name: loss, goal: minimize}
method: random
seed: 5
run_cap: 10
parameters:
  lr: {distribution: log_uniform_values, min: 1e-4, max: 1e-1}
  layers: {distribution: int_uniform, min: 1, max: 6}
  act: {values: [relu, tanh]}
  steps: {value: 9}
early_terminate: {type: asha, max_t: 9, grace_period: 1, reduction_factor: 3}
"""


def test_toy_study_prunes_records_and_picks_a_finished_best(ray_local: None, in_tmp: Path) -> None:
    out = tuner.run(study(TOY), quiet=True)
    assert out.folder == in_tmp / "results" / "toy"
    trials = tuner.load_results(out.folder)
    history = tuner.load_history(out.folder)
    best = tuner.load_best(out.folder)
    assert len(trials) == 10 and set(trials["status"]) <= {"finished", "pruned"}
    assert (trials["status"] == "pruned").sum() >= 3
    assert (trials.loc[trials["status"] == "finished", "step"] == 9).all()
    assert {"params_lr", "params_layers", "params_act", "params_steps", "value", "best_value"} <= set(trials)
    assert len(history) == trials["iterations"].sum()
    finished = trials[trials["status"] == "finished"]
    assert best["trial_id"] == finished.sort_values("value").iloc[0]["trial_id"]
    assert best["config"]["steps"] == 9 and best["metric"]["name"] == "loss"
    # A second run with the same name writes beside the first, never over it.
    again = tuner.run(study(TOY), quiet=True)
    assert again.folder == in_tmp / "results" / "toy-2"
    assert tuner.load_best(out.folder) == best


def test_nan_errors_and_missing_metric_are_marked_and_never_best(ray_local: None, in_tmp: Path) -> None:
    body = """
    name: faults
    trainable: trainables.toy:faulty
    metric: {name: loss, goal: minimize}
    method: grid
    parameters:
      mode: {values: [ok, nan, raise, no_metric]}  # ok first: three failures in a row stop a study
      x: {value: 5.0}
    """
    out = tuner.run(study(body), quiet=True)
    trials = tuner.load_results(out.folder).set_index("params_mode")
    assert trials.loc["nan", "status"] == "nan"
    assert trials.loc["raise", "status"] == "errored"
    assert "boom" in trials.loc["raise", "error"]
    assert trials.loc["no_metric", "status"] == "errored"
    assert "metric 'loss' was not reported" in trials.loc["no_metric", "error"]
    assert trials.loc["ok", "status"] == "finished"
    assert tuner.load_best(out.folder)["params"]["mode"] == "ok"
    log = out.folder / "logs" / f"{trials.loc['raise', 'trial_id']}.log"
    assert "RuntimeError: boom" in log.read_text()


def test_digits_mlp_learns(ray_local: None, in_tmp: Path) -> None:
    body = """
    name: digits
    trainable: trainables.digits:train_mlp
    metric: {name: val_accuracy, goal: maximize}
    method: bayes
    seed: 0
    run_cap: 4
    searcher: {init_points: 2}
    parameters:
      lr: {distribution: log_uniform_values, min: 1e-3, max: 1e-2}
      hidden: {values: [64, 128]}
      epochs: {value: 8}
    """
    out = tuner.run(study(body), quiet=True)
    assert out.best is not None and out.best.value is not None and out.best.value > 0.9
    history = tuner.load_history(out.folder)
    assert {"train_loss", "val_loss", "val_accuracy"} <= set(history)
    summary = yaml.safe_load((out.folder / "summary.yaml").read_text())
    assert summary["workers_ready"]["import_s_max"] > 0  # each worker imported torch before its first trial


def allocator_setting(config: dict[str, Any], trial: Trial) -> None:
    trial.report(1, loss=1.0, expandable=float(os.environ.get("PYTORCH_CUDA_ALLOC_CONF") == "expandable_segments:True"))


def test_a_gpu_workers_allocator_setting_reaches_its_process(ray_local: None) -> None:
    import ray

    settings = allocator_env(0.5, {}, {})  # what a GPU group's ranks are given (run here on a CPU)
    actor = ray.remote(TrialWorker).options(num_cpus=0).remote([str(ROOT)], ("trainables.toy:faulty", 0.0), settings)
    try:
        task = TrialTask("t1", f"{__name__}:allocator_setting", {}, seed=0, max_steps=None, gpus=0)
        events = [ray.get(ref) for ref in actor.run.options(num_returns="streaming").remote(task)]
    finally:
        ray.kill(actor)
    assert events[0]["metrics"]["expandable"] == 1.0 and events[-1]["kind"] == "done"


def test_median_stopping_rule_prunes(ray_local: None, in_tmp: Path) -> None:
    body = """
    name: median
    trainable: trainables.toy:quadratic
    metric: {name: loss, goal: minimize}
    method: grid
    max_concurrent: 1
    early_terminate: {type: median, grace_period: 2, min_samples_required: 2}
    parameters:
      lr: {values: [0.01, 0.012, 0.0001, 0.1]}
      steps: {value: 6}
    """
    out = tuner.run(study(body), quiet=True)
    trials = tuner.load_results(out.folder).set_index("params_lr")
    assert list(trials.loc[[0.01, 0.012], "status"]) == ["finished", "finished"]
    assert trials.loc[0.0001, "status"] == "pruned" and trials.loc[0.0001, "step"] == 2


def test_hyperband_stops_trials_at_wandbs_bands_and_not_at_max_iter(ray_local: None, in_tmp: Path) -> None:
    from tests.engine.test_hyperband import journal_verdicts

    body = TOY.replace("steps: {value: 9}", "steps: {value: 12}").replace(
        "early_terminate: {type: asha, max_t: 9, grace_period: 1, reduction_factor: 3}",
        "early_terminate: {type: hyperband, max_iter: 9, s: 2, eta: 3}",
    )
    out = tuner.run(study(body), quiet=True)
    trials = tuner.load_results(out.folder).set_index("trial_id")
    assert len(trials) == 10 and (trials["status"] == "pruned").sum() >= 3
    assert set(trials.loc[trials["status"] == "finished", "step"]) == {12}  # past max_iter: no cut there
    journal_verdicts(out.folder, trials, "loss", [1, 3], eta=3, strict=True, maximize=False)


def test_gpus_auto_on_a_cluster_without_a_gpu_says_so_and_runs_on_cpu(ray_local: None, in_tmp: Path) -> None:
    body = """
    name: auto
    trainable: trainables.toy:quadratic
    metric: {name: loss}
    method: grid
    resources: {gpus: auto}
    parameters:
      layers: {values: [1, 2]}
      steps: {value: 2}
    """
    said: list[str] = []
    out = tuner.run(study(body), say=said.append)
    assert "resources.gpus: auto found no GPU on this Ray cluster; trials run on CPU, 2 at a time" in said
    assert out.counts["finished"] == 2
