"""The rule for the best trial."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from tuner.results import best_row


def frame(rows: list[tuple[str, str, float | None, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["trial_id", "status", "value", "step"])


def best_id(rows: list[tuple[str, str, float | None, int]], maximize: bool = False) -> str | None:
    row = best_row(frame(rows), maximize)
    return None if row is None else str(row["trial_id"])


def test_a_trial_pruned_early_never_beats_a_finished_one() -> None:
    assert best_id([("t1", "pruned", 0.01, 1), ("t2", "finished", 0.5, 9)]) == "t2"


def test_goal_direction() -> None:
    rows = [("t1", "finished", 0.2, 9), ("t2", "finished", 0.9, 9)]
    assert best_id(rows) == "t1"
    assert best_id(rows, maximize=True) == "t2"


def test_ties_go_to_the_earlier_trial() -> None:
    assert best_id([("t1", "finished", 0.5, 9), ("t2", "finished", 0.5, 9)]) == "t1"


@pytest.mark.parametrize("bad", [math.nan, math.inf, None])
def test_nan_and_errors_never_win(bad: float | None) -> None:
    rows = [("t1", "nan", bad, 3), ("t2", "errored", 0.0, 1), ("t3", "finished", 0.7, 9)]
    assert best_id(rows) == "t3"


def test_without_finished_trials_the_one_that_got_furthest_wins() -> None:
    rows = [("t1", "pruned", 0.1, 1), ("t2", "pruned", 0.4, 3), ("t3", "pruned", 0.3, 3)]
    assert best_id(rows) == "t3"


def test_no_value_no_best() -> None:
    assert best_id([("t1", "errored", None, 0)]) is None
    assert best_row(frame([]), False) is None
