"""End-to-end studies on a private Ray: real workers, real trainables, real files."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

import tuner
from tests.conftest import study
from tuner import searchers
from tuner.searchers import Outcome
from tuner.searchers._random import RandomSearcher

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


class Recording(RandomSearcher):
    """Random search that keeps every outcome it is told."""

    told: ClassVar[list[tuple[str, Outcome]]] = []

    def tell(self, trial_id: str, config: dict[str, Any], outcome: Outcome) -> None:
        Recording.told.append((trial_id, outcome))
        super().tell(trial_id, config, outcome)


def test_the_searcher_is_told_each_trials_learning_curve_live_and_on_resume(
    ray_local: None, in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under ASHA an ended trial's outcome carries its reports, minimised (a maximised metric
    flipped), one per step; a resume replaying the journal tells the searcher the same."""
    monkeypatch.setitem(searchers.SEARCHERS, "recording", f"{__name__}:Recording")
    body = TOY.replace("method: random", "method: recording")
    body = body.replace("{name: loss, goal: minimize}", "{name: score, goal: maximize}")
    Path("toy.yaml").write_text(body)
    Recording.told.clear()
    out = tuner.run("toy.yaml", quiet=True)
    live = {t: o for t, o in Recording.told if o.state != "running"}
    history = tuner.load_history(out.folder)
    assert len(live) == 10 and {o.state for o in live.values()} == {"complete", "pruned"}
    for trial_id, o in live.items():
        rows = history[history["trial_id"] == trial_id]
        assert o.curve == tuple(zip(rows["step"], -rows["score"], strict=True))
        assert o.curve[-1] == (o.step, o.value)
    assert all(len(o.curve or ()) == 9 for o in live.values() if o.state == "complete")

    Recording.told.clear()
    Path("more.yaml").write_text(body.replace("run_cap: 10", "run_cap: 11"))
    tuner.resume(out.folder, space="more.yaml", quiet=True)
    assert {t: o for t, o in Recording.told if t in live and o.state != "running"} == live


def test_same_seed_same_study(ray_local: None, in_tmp: Path) -> None:
    """Optuna's TPE past its random start: 4 random trials, then 6 from the model."""
    body = TOY.replace("early_terminate", "#").replace("method: random", "method: optuna\nmax_concurrent: 1")
    body += "searcher: {n_startup_trials: 4}\n"
    a = tuner.load_results(tuner.run(study(body, name="a"), quiet=True).folder)
    b = tuner.load_results(tuner.run(study(body, name="b"), quiet=True).folder)
    cols = ["params_lr", "params_layers", "params_act"]
    assert set(map(tuple, a[cols].values)) == set(map(tuple, b[cols].values))


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


def test_all_trials_failing_stops_early_without_best(ray_local: None, in_tmp: Path) -> None:
    body = """
    name: doomed
    trainable: trainables.toy:faulty
    metric: {name: loss, goal: minimize}
    method: random
    run_cap: 20
    parameters:
      mode: {value: raise}
      x: {min: 0.0, max: 1.0}
    """
    out = tuner.run(study(body), quiet=True)
    assert out.best is None and not (out.folder / "best.yaml").exists()
    assert out.stop_reason and "all failed" in out.stop_reason
    assert sum(out.counts.values()) < 20


def test_time_limit_stops_running_trials(ray_local: None, in_tmp: Path) -> None:
    body = """
    name: timed
    trainable: trainables.toy:quadratic
    metric: {name: loss, goal: minimize}
    method: random
    time_limit: 8
    parameters:
      lr: {min: 0.001, max: 0.1}
      steps: {value: 1000}
      sleep: {value: 0.05}
    """
    out = tuner.run(study(body), quiet=True)
    trials = tuner.load_results(out.folder)
    assert out.stop_reason == "time_limit reached"
    assert set(trials["status"]) == {"stopped"}
    assert trials["step"].max() < 1000  # stopped at the limit, not trained to the end
    assert out.best is not None  # the furthest stopped trial still counts when none finished


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
