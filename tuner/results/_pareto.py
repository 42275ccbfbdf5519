"""Several objectives: which trials are Pareto-optimal, and which one ``select:`` picks.

Only finished trials with a finite value for every objective compete (a pruned trial's values
are from before its end). A trial is Pareto-optimal when no other is at least as good on every
objective and better on one. Pure pandas, no Ray.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from tuner.config import minimised
from tuner.status import FINISHED


def pareto_mask(trials: pd.DataFrame, objectives: list[tuple[str, bool]]) -> pd.Series:
    """``True`` for the Pareto-optimal trials of ``trials`` (``metric_<name>`` columns)."""
    mask = pd.Series(False, index=trials.index)
    columns = [f"metric_{name}" for name, _ in objectives]
    if trials.empty or any(c not in trials for c in columns):
        return mask
    ok = trials["status"].eq(FINISHED)
    for c in columns:
        ok &= trials[c].map(lambda v: v is not None and isinstance(v, int | float) and math.isfinite(v))
    pool = trials[ok]
    if pool.empty:
        return mask
    x = np.column_stack(
        [minimised(pool[c].to_numpy(dtype=float), up) for c, (_, up) in zip(columns, objectives, strict=True)]
    )
    no_worse = (x[:, None, :] <= x[None, :, :]).all(axis=2)  # [j, i]: j at least as good as i everywhere
    better = (x[:, None, :] < x[None, :, :]).any(axis=2)
    dominated = np.asarray((no_worse & better).any(axis=0))  # [i]: some j beats i
    mask[pool.index[~dominated]] = True
    return mask


def select(
    trials: pd.DataFrame, objectives: list[tuple[str, bool]], rule: Any | None
) -> tuple[pd.Series | None, str | None]:
    """The trial ``select:`` picks among the Pareto-optimal ones (by default the best on the first
    objective), and a note when its limits left none (then the limits are dropped)."""
    front = trials[pareto_mask(trials, objectives)]
    if front.empty:
        return None, None
    goals = dict(objectives)
    metric = rule.metric if rule is not None else objectives[0][0]
    pool, note = front, None
    if rule is not None and rule.limits:
        within = pd.Series(True, index=front.index)
        for name, bound in rule.limits.items():
            column = front[f"metric_{name}"].astype(float)
            within &= minimised(column, goals[name]) <= minimised(bound, goals[name])
        if within.any():
            pool = front[within]
        else:
            note = f"no Pareto-optimal trial meets the limits {rule.limits}: chosen among all of them"
    values = pool[f"metric_{metric}"].astype(float)
    position = int(np.argmin(minimised(values.to_numpy(), goals[metric])))
    return pool.iloc[position], note
