"""Which trial is best: the rule ``get_best_trial`` should follow."""

from __future__ import annotations

import math

import pandas as pd

from tuner.config import minimised
from tuner.status import FINISHED, PRUNED, STOPPED


def best_row(trials: pd.DataFrame, maximize: bool) -> pd.Series | None:
    """The first of :func:`ranked`: ``None`` when no trial has a finite value."""
    order = ranked(trials, maximize)
    return None if order.empty else order.iloc[0]


def ranked(trials: pd.DataFrame, maximize: bool, everyone: bool = False) -> pd.DataFrame:
    """The trials that compete for best, best first: those that reached the full budget.

    A trial's value is its last reported metric. Only ``finished`` trials compete; if none
    finished, pruned (and stopped) trials compete, those that got further first, so a trial
    pruned at the first rung never beats one trained longer. NaN never wins; ties go to the
    earlier trial. Returned best first (empty when no trial has a finite value). ``everyone``:
    the pruned and stopped trials follow the finished ones, in the same order (``confirm``'s
    top K when fewer than K finished).
    """
    if trials.empty:
        return trials
    ok = trials[trials["value"].map(lambda v: v is not None and math.isfinite(v))]
    pool = ok[ok["status"] == FINISHED]
    if pool.empty or everyone:
        pool = pd.concat([pool, ok[ok["status"].isin([PRUNED, STOPPED])]])
    if pool.empty:
        return pool
    score = minimised(pool["value"], maximize)
    order = pd.DataFrame(
        {
            "unfinished": pool["status"] != FINISHED,
            "step": -pool["step"].astype(float),
            "score": score,
            "pos": range(len(pool)),
        }
    )
    if (pool["status"] == FINISHED).all():
        order = order.drop(columns=["unfinished", "step"])
    return pool.loc[order.sort_values(list(order.columns), kind="stable").index]
