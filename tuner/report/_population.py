"""The report's panel of a population-based study: each member's metric over its steps, with each
exploit drawn as a jump from the donor's point to the member's continuation, and the winner's
schedule of each mutated parameter."""

from __future__ import annotations

import itertools
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from tuner.config import Pb2, Pbt
from tuner.report._charts import BLUE, GREY, VERMILLION, _alpha, _fit_curves, _metric_label
from tuner.report._data import StudyData
from tuner.results import read_journal


def is_population(data: StudyData) -> bool:
    """Whether the study trained a population (``early_terminate`` pbt or pb2)."""
    return isinstance(data.study.spec.scheduler, Pbt | Pb2)


def exploits(data: StudyData) -> list[dict[str, Any]]:
    """The study's exploits, as its journal recorded them."""
    return [e for e in read_journal(data.folder) if e.get("e") == "exploit" and e.get("donor") != e.get("trial")]


def population_chart(data: StudyData) -> Figure | None:
    h = data.history
    if not is_population(data) or h.empty or data.metric not in h:
        return None
    schedule: dict[str, list[list[Any]]] = (data.best or {}).get("schedule") or {}
    fig, axes = plt.subplots(
        1 + len(schedule),
        1,
        figsize=(8, 4.2 + 1.5 * len(schedule)),
        sharex=True,
        layout="constrained",
        squeeze=False,
        gridspec_kw={"height_ratios": [3] + [1] * len(schedule)},
    )
    ax = axes[0, 0]
    made = exploits(data)
    best = (data.best or {}).get("trial_id")
    n = h["trial_id"].nunique()
    for trial_id, rows in h.groupby("trial_id", sort=False):
        rows = rows.sort_values("step", kind="stable")
        colour, width = (VERMILLION, 2.2) if trial_id == best else (BLUE, 1.0)
        alpha = 1.0 if trial_id == best else _alpha(n, 0.75, 0.3)
        cuts = sorted({float(e["donor_step"]) for e in made if e["trial"] == trial_id})
        edges = [-float("inf"), *cuts, float("inf")]
        for lo, hi in itertools.pairwise(edges):  # the line breaks where the member took on another's state
            part = rows[(rows["step"] > lo) & (rows["step"] <= hi)]
            ax.plot(part["step"], part[data.metric], color=colour, alpha=alpha, linewidth=width)
    jumps = 0
    for e in made:
        start = _value_at(h, e["donor"], float(e["donor_step"]), data.metric)
        after = h[(h["trial_id"] == e["trial"]) & (h["step"] > float(e["donor_step"]))].sort_values("step")
        if start is None or after.empty:
            continue  # a point since rewritten (the donor or the member went on from elsewhere)
        end = (float(after["step"].iloc[0]), float(after[data.metric].iloc[0]))
        ax.plot([float(e["donor_step"]), end[0]], [start, end[1]], ":", color=GREY, linewidth=1.0)
        ax.plot(float(e["donor_step"]), start, "o", color=GREY, markersize=3)
        jumps += 1
    _fit_curves(ax, h[data.metric], data.maximize)
    ax.set_ylabel(_metric_label(data))
    ax.set_title(
        f"Members over their steps ({jumps} exploit(s) dotted, from the donor's point; vermillion: {best or 'none'})",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    last = float(h["step"].max())
    for row, (name, points) in enumerate(schedule.items(), start=1):
        sub = axes[row, 0]
        xs = [float(at) for at, _ in points] + [last]
        ys = [value for _, value in points]
        sub.step(xs, [*ys, ys[-1]], where="post", color=VERMILLION, linewidth=1.8)
        numbers = [float(v) for v in ys if isinstance(v, int | float) and v > 0]
        if data.is_log(name) and len(numbers) == len(ys) and max(numbers) >= 10 * min(numbers):
            sub.set_yscale("log")
        sub.set_ylabel(name, fontsize=8)
        sub.tick_params(labelsize=8)
        sub.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("step" + ("; below: the winner's schedule of each mutated parameter" if schedule else ""))
    return fig


def _value_at(history: pd.DataFrame, trial_id: str, step: float, metric: str) -> float | None:
    rows = history[(history["trial_id"] == trial_id) & (history["step"] == step)]
    if rows.empty or pd.isna(rows[metric].iloc[-1]):
        return None
    return float(rows[metric].iloc[-1])
