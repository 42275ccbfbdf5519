"""The vocabulary of statuses, causes and actions, and what a searcher is told of a trial's end."""

from __future__ import annotations

from typing import Any, get_args

import pytest

from tuner import status
from tuner.status import FAILED, OUTCOME_STATES, SCORED, STATUSES, outcome_state


@pytest.mark.parametrize(
    ("args", "state"),
    [
        (("running",), "running"),
        (("finished", None, 0.5), "complete"),
        (("pruned", None, 0.5), "pruned"),  # its value at the step the scheduler stopped it
        (("stopped", None, 0.5), "pruned"),  # stopped by the study: as far as it got
        (("stopped", None, None), "failed"),  # stopped before its first value
        (("errored", "retry"), "failed"),
        (("errored", "fail"), "failed"),
        (("nan", "fail"), "failed"),
        (("oom", "infeasible"), "infeasible"),  # the searcher is told to avoid it
        (("oom", "halve_batch"), "infeasible"),  # halving the batch did not help
        (("errored", "infeasible"), "infeasible"),  # on_failure: {dtype_mismatch: infeasible}
    ],
)
def test_a_trials_end_maps_to_one_searcher_state(args: tuple[Any, ...], state: str) -> None:
    assert outcome_state(*args) == state


def test_every_status_maps_to_a_searcher_state() -> None:
    for s in STATUSES:
        assert outcome_state(s, None, 1.0) in OUTCOME_STATES
    assert set(FAILED) | set(SCORED) | {"running"} == set(STATUSES) and not set(FAILED) & set(SCORED)


def test_the_searchers_states_are_these() -> None:
    from tuner.searchers._base import State

    assert get_args(State) == OUTCOME_STATES


def test_each_constant_is_a_word_of_its_vocabulary() -> None:
    constants = {v for k, v in vars(status).items() if k.isupper() and isinstance(v, str)}
    assert constants == set(STATUSES)
    assert set(status.DETERMINISTIC) <= set(status.CAUSES) and set(status.POLICY_CAUSES) <= set(status.CAUSES)
    assert {status.default_action(c) for c in status.CAUSES} <= set(status.ACTIONS)
    assert status.default_action("oom", "halve_batch") == "halve_batch"
