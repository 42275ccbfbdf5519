"""Which trial is best: the rule ``get_best_trial`` should follow."""

from __future__ import annotations

import math

import pandas as pd


def best_row(trials: pd.DataFrame, maximize: bool) -> pd.Series | None:
    """The best trial among those that reached the full budget.

    A trial's value is its last reported metric. Only ``finished`` trials compete; if none
    finished, pruned (and stopped) trials compete, those that got further first, so a trial
    pruned at the first rung never beats one trained longer. NaN never wins; ties go to the
    earlier trial. ``None`` when no trial has a finite value.
    """
    if trials.empty:
        return None
    ok = trials[trials["value"].map(lambda v: v is not None and math.isfinite(v))]
    pool = ok[ok["status"] == "finished"]
    if pool.empty:
        pool = ok[ok["status"].isin(["pruned", "stopped"])]
    if pool.empty:
        return None
    score = -pool["value"] if maximize else pool["value"]
    order = pd.DataFrame({"step": -pool["step"].astype(float), "score": score, "pos": range(len(pool))})
    if (pool["status"] == "finished").all():
        order = order.drop(columns="step")
    best = order.sort_values(list(order.columns), kind="stable").index[0]
    return pool.loc[best]
