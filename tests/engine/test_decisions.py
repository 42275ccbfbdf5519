"""The engine's small decisions, each on plain data: who may start, what a failure leads to, when to stop."""

from __future__ import annotations

import pytest

from tests.conftest import study
from tuner.engine import Admission, slots_for
from tuner.engine import _goals as goals
from tuner.engine import _retries as retries
from tuner.engine._stacks import innermost
from tuner.engine._timers import Timers
from tuner.errors import UserError

BASE = """
name: s
trainable: trainables.toy:quadratic
metric: {name: loss, goal: GOAL, target: TARGET}
method: random
run_cap: 10
max_failed_trials: 2
resources: {workers: 2, cpus_per_worker: 1}
parameters:
  x: {min: 0.0, max: 1.0}
"""


def make(goal: str = "minimize", target: float = 0.5) -> object:
    return study(BASE.replace("GOAL", goal).replace("TARGET", str(target)))


def test_admission_stops_at_the_cap_the_searchers_end_or_a_halt_keeping_the_first_reason() -> None:
    a = Admission(run_cap=2)
    assert a.can_launch() and a.next_id() == "t0001"
    a.launched = 2
    assert not a.can_launch()
    b = Admission(run_cap=None)
    b.exhausted = True
    assert not b.can_launch()
    c = Admission(run_cap=None)
    c.halt("first")
    c.halt("second")
    assert not c.can_launch() and c.stop_reason == "first"


@pytest.mark.parametrize(("places", "slots"), [(2, 1), (5, 2), (100, 10)])
def test_slots_are_whole_trials_the_cluster_holds_capped_by_run_cap(places: int, slots: int) -> None:
    assert slots_for(make(), places) == slots  # type: ignore[arg-type]


def test_a_cluster_too_small_for_one_trial_is_refused_naming_resources() -> None:
    with pytest.raises(UserError, match="resources: a trial needs 2 worker"):
        slots_for(make(), 1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "action", "failures", "accumulation", "expected"),
    [
        ("errored", "retry", 0, 1, retries.Retry(1, counted=True)),
        ("errored", "retry", 2, 1, None),  # max_failures (2) spent
        ("errored", "fail", 0, 1, None),
        ("errored", "infeasible", 0, 1, None),
        ("oom", "halve_batch", 5, 4, retries.Retry(8, counted=False)),  # not charged to max_failures
        ("oom", "halve_batch", 0, 16, None),  # halved MAX_HALVINGS times already
        ("nan", "retry", 0, 1, None),  # only errors and out-of-memory are retried
        ("finished", "retry", 0, 1, None),
    ],
)
def test_what_a_failed_attempt_leads_to(
    status: str, action: str, failures: int, accumulation: int, expected: retries.Retry | None
) -> None:
    assert retries.retry(status, action, failures, 2, accumulation) == expected


@pytest.mark.parametrize(
    ("lost", "decided", "infra", "expected"),
    [
        (True, False, 0, True),
        (True, False, retries.INFRA_RETRIES, False),
        (True, True, 0, False),
        (False, False, 0, False),
    ],
)
def test_a_lost_node_requeues_the_trial_a_bounded_number_of_times(
    lost: bool, decided: bool, infra: int, expected: bool
) -> None:
    assert retries.requeue(lost, decided, infra) is expected


@pytest.mark.parametrize(
    ("goal", "status", "value", "stops"),
    [
        ("minimize", "finished", 0.4, True),
        ("minimize", "finished", 0.6, False),
        ("minimize", "pruned", 0.1, False),  # a pruned trial never reaches the target
        ("maximize", "finished", 0.6, True),
        ("maximize", "finished", 0.4, False),
    ],
)
def test_the_target_stops_the_study_in_the_goals_direction(goal: str, status: str, value: float, stops: bool) -> None:
    reason = goals.reached(make(goal), "t0003", status, value)  # type: ignore[arg-type]
    assert (reason is not None) is stops
    if stops:
        assert reason == "loss reached its target 0.5 in t0003"


@pytest.mark.parametrize(
    ("failed", "any_value", "reason"),
    [
        (2, False, None),
        (2, True, None),
        (3, True, "3 trials failed, more than max_failed_trials (2)"),
    ],
)
def test_too_many_failures_stop_the_study(failed: int, any_value: bool, reason: str | None) -> None:
    assert goals.too_many_failures(make(), failed, any_value) == reason  # type: ignore[arg-type]


@pytest.mark.parametrize(("failed", "any_value", "stops"), [(2, False, False), (3, False, True), (30, True, False)])
def test_a_study_whose_first_trials_all_fail_stops_early(failed: int, any_value: bool, stops: bool) -> None:
    s = study(BASE.replace("GOAL", "minimize").replace("TARGET", "0.5").replace("max_failed_trials: 2\n", ""))
    reason = goals.too_many_failures(s, failed, any_value)
    assert reason == (f"the first {failed} trials all failed" if stops else None)


def test_timers_fire_once_per_period_on_the_clock_they_are_given() -> None:
    clock = [0.0]
    timers = Timers(lambda: clock[0])
    assert timers.due("a", 2.0) and not timers.due("a", 2.0)
    assert not timers.due("b", 2.0, first=False)
    clock[0] = 2.5
    assert timers.due("a", 2.0) and timers.due("b", 2.0)


def test_a_stalled_ranks_place_is_its_innermost_frame() -> None:
    stack = 'File "/a/b/train.py", line 10, in main\n  x()\nFile "/a/b/toy.py", line 52, in faulty\n  wait()'
    assert innermost(stack) == "toy.py:52 in faulty"
    assert innermost("") == "an unknown place"
