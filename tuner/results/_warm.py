"""``warm_start``: an older study's finished trials, as observations for a new study's searcher.

Parameters are matched by name; a trial whose values fall outside the new space, that lacks a
parameter the new space needs, or that has a parameter the new space no longer has is skipped,
with the reason. The value is the new study's metric as the old study recorded it (its last
report), so the old study may have optimised another metric as long as it reported this one.
Each observation carries the trial's learning curve of that metric (for a model of pruned trials).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tuner.results._store import HISTORY, TRIALS, missing, row_params
from tuner.space import Space
from tuner.status import SCORED, outcome_state

USED = SCORED  # a value the searcher can learn from
Curve = tuple[tuple[float, float], ...]


@dataclass
class WarmStart:
    source: str
    # (params, value, state, step, curve: ((step, value), ...) or None)
    observations: list[tuple[dict[str, Any], float, str, float | None, Curve | None]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one reason per skipped trial

    def line(self) -> str:
        text = f"warm start: {len(self.observations)} trial(s) from {self.source}"
        if self.skipped:
            text += f", {len(self.skipped)} skipped ({self.skipped[0]}" + (", ...)" if len(self.skipped) > 1 else ")")
        return text


def read_warm_start(folder: str | Path, space: Space, metric: str) -> WarmStart:
    """The observations an old study's results folder gives a search over ``space``; values as
    recorded (not yet signed for the goal); state ``complete`` or ``pruned`` with its step."""
    path = Path(folder)
    trials = pd.read_parquet(path / TRIALS)
    curves = _curves(path, metric)
    out = WarmStart(str(folder))
    column = f"metric_{metric}"
    searched = set(space.searchable)
    for _, row in trials.iterrows():
        if row["status"] not in USED:
            continue
        value = row.get(column)
        if value is None or pd.isna(value) or not math.isfinite(float(value)):
            out.skipped.append(f"{row['trial_id']}: no {metric}")
            continue
        params = row_params(row)
        gone = sorted(set(params) - set(space.params))
        if gone:
            out.skipped.append(f"{row['trial_id']}: {', '.join(gone)} no longer a parameter")
            continue
        params = {k: v for k, v in params.items() if k in searched}
        wrong = space.problems(params)
        needed = [
            k for k in space.active({**params, **{n: None for n in searched if n not in params}}) if k not in params
        ]
        if wrong:
            name, why = next(iter(wrong.items()))
            out.skipped.append(f"{row['trial_id']}: {name}={params.get(name)!r} {why}")
            continue
        if needed:
            out.skipped.append(f"{row['trial_id']}: no value for {', '.join(needed)}")
            continue
        state = outcome_state(row["status"], value=float(value))
        step = None if missing(row.get("step")) else float(row["step"])
        out.observations.append((params, float(value), state, step, curves.get(row["trial_id"])))
    return out


def _curves(path: Path, metric: str) -> dict[str, Curve]:
    """Each trial's reports of ``metric``, in step order (none when the history lacks it)."""
    if not (path / HISTORY).exists():
        return {}
    history = pd.read_parquet(path / HISTORY)
    if metric not in history.columns:
        return {}
    history = history.dropna(subset=[metric]).sort_values(["trial_id", "step"])
    return {
        str(trial): tuple((float(s), float(v)) for s, v in zip(rows["step"], rows[metric], strict=True))
        for trial, rows in history.groupby("trial_id")
    }
