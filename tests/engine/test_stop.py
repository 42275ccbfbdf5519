"""``stop:``: Ray Tune's ``RunConfig(stop={...})`` as a study key. Its parsing, and whole studies on
the simulated backend (no Ray): a trial ends ``finished`` at the first report meeting a criterion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import tuner
from tests.conftest import study
from tuner.config import Stop
from tuner.errors import ConfigError

BODY = """
name: enough
trainable: tests.engine.curves:falling
backend: simulated
metric: {{name: loss}}
method: grid
{extra}
parameters:
  x: {{values: [0.1, 0.3, 0.9]}}
"""


@pytest.fixture(autouse=True)
def _no_ray_started(no_ray: None, in_tmp: Path) -> None:
    """Every test here runs in a scratch folder and fails if anything starts Ray."""


def run(extra: str, said: list[str] | None = None) -> pd.DataFrame:
    s = study(BODY.format(extra=extra), allow_modules=["tests"])
    out = tuner.run(s, quiet=said is None, say=(said.append if said is not None else None))
    return tuner.load_results(out.folder).set_index("params_x").sort_index()


# -- what the block says ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("block", "steps", "seconds", "limits"),
    [
        ("{training_iteration: 15, mean_accuracy: 0.98}", 15, None, {"mean_accuracy": ("ge", 0.98)}),
        ("{step: 4.0}", 4, None, {}),
        ("{val_loss: {le: 0.05}, time_total_s: 10m}", None, 600.0, {"val_loss": ("le", 0.05)}),
        ("{reward: {ge: -1}, done: true}", None, None, {"reward": ("ge", -1.0)}),
    ],
)
def test_the_block_reads_as_ray_tunes_stop_dict(
    block: str, steps: int | None, seconds: float | None, limits: dict[str, Any]
) -> None:
    extra = f"stop: {block}\nearly_terminate: {{type: asha, max_t: 9}}"  # simulated trials' end
    stop = study(BODY.format(extra=extra), allow_modules=["tests"]).spec.stop
    assert isinstance(stop, Stop)
    assert (stop.steps, stop.time_total_s, stop.limits) == (steps, seconds, limits)


@pytest.mark.parametrize(
    ("block", "error"),
    [
        ("{training_iteration: 2.5}", "stop.training_iteration: Input should be a valid integer"),
        ("{training_iteration: 0}", "stop.training_iteration: Input should be greater than or equal to 1"),
        ("{step: 3, training_iteration: 3}", "stop: give training_iteration or step, not both"),
        ("{acc: true}", "stop.acc: must be a number (stop at or above it) or {le: x} / {ge: x}, got True"),
        ("{acc: {lt: 1}}", "stop.acc: must be a number (stop at or above it) or {le: x} / {ge: x}"),
        ("{acc: {le: .nan}}", "stop.acc: must be a finite number"),
        ("{time_total_s: -1}", "stop.time_total_s: must be a positive duration, got -1"),
        ("{done: false}", "stop.done: Input should be True"),
        ("{}", "stop: needs at least one criterion"),
        ("15", "stop: Input should be a valid dictionary"),
    ],
)
def test_a_broken_block_is_one_line_naming_the_key(block: str, error: str) -> None:
    with pytest.raises(ConfigError) as exc:
        study(BODY.format(extra=f"stop: {block}"), allow_modules=["tests"])
    assert error in str(exc.value) and len(str(exc.value).splitlines()) == 1


def test_the_step_budget_is_the_smaller_of_max_t_and_training_iteration() -> None:
    def budget(extra: str) -> int | None:
        return study(BODY.format(extra=extra), allow_modules=["tests"]).spec.step_budget

    asha = "early_terminate: {type: asha, max_t: 8}"
    assert budget(f"{asha}\nstop: {{training_iteration: 5}}") == 5
    assert budget(f"{asha}\nstop: {{training_iteration: 20}}") == 8
    assert budget("stop: {training_iteration: 5}") == 5  # a simulated study's end, without a scheduler
    assert budget(f"{asha}\nstop: {{loss: 1}}") == 8
    with pytest.raises(ConfigError, match=r"or stop\.training_iteration"):
        study(BODY.format(extra="stop: {loss: 1}"), allow_modules=["tests"])  # simulated trials need an end


def test_reached_says_which_criterion() -> None:
    stop = Stop.model_validate({"training_iteration": 9, "time_total_s": 30, "loss": {"le": 0.5}, "acc": 0.9})
    assert stop.reached(2, 1.0, {"loss": 0.7, "acc": 0.5}) is None
    assert stop.reached(2, 1.0, {"loss": 0.5}) == "loss <= 0.5"
    assert stop.reached(2, 1.0, {"acc": 0.95, "loss": float("nan")}) == "acc >= 0.9"
    assert stop.reached(9, 1.0, {}) == "step 9"
    assert stop.reached(2, 31.0, {}) == "time_total_s 30"
    assert stop.reached(2, 1.0, {"time_total_s": 40.0}) == "time_total_s 30"  # a Tune trainable's own count
    assert stop.reached(2, 1.0, {"acc": True}) is None  # a boolean is no metric


# -- whole studies ----------------------------------------------------------------------------
def test_a_trial_is_finished_at_the_first_report_meeting_a_criterion() -> None:
    # loss = x + 1/step: x=0.1 reaches 0.6 at step 2, x=0.3 at step 4, x=0.9 never (its budget: 6)
    trials = run("stop: {training_iteration: 6, loss: {le: 0.6}}")
    assert list(trials["status"]) == ["finished"] * 3
    assert list(trials["step"]) == [2, 4, 6]
    assert trials.loc[0.1, "value"] == pytest.approx(0.6)


def test_time_total_s_finishes_a_trial_after_that_long() -> None:
    trials = run("stop: {training_iteration: 10, time_total_s: 3}\nsearcher: {}")  # 1 s a step
    assert list(trials["step"]) == [3, 3, 3] and set(trials["status"]) == {"finished"}


def test_stop_and_asha_together_the_first_to_decide_wins() -> None:
    extra = "stop: {loss: {le: 0.6}}\nearly_terminate: {type: asha, max_t: 6, grace_period: 1, reduction_factor: 3}"
    trials = run(extra)
    assert trials.loc[0.1, "status"] == "finished" and trials.loc[0.1, "step"] == 2
    assert (trials["status"] == "pruned").any()  # ASHA still prunes the rest


def test_a_criterion_never_reported_is_said_once() -> None:
    said: list[str] = []
    trials = run("stop: {training_iteration: 3, accuracy: 0.9}", said)
    lines = [line for line in said if line.startswith("stop.accuracy:")]
    assert len(lines) == 1 and "reported no accuracy at step 1 (reported: loss)" in lines[0]
    assert list(trials["step"]) == [3, 3, 3]


def test_plan_says_what_stop_finishes_a_trial_at() -> None:
    from tuner.plan import describe, make_plan

    s = study(
        BODY.format(extra="stop: {training_iteration: 5, loss: {le: 0.5}, time_total_s: 10m}"),
        allow_modules=["tests"],
    )
    text = describe(s, make_plan(s, 4, "here"))
    assert "stop: a trial is finished at step 5, after 600 s of training or when loss <= 0.5" in text
    assert "compute: at most 15 trial-steps" in text
