"""The report's charts, drawn with matplotlib; colour-blind safe and readable at 200 trials.

Okabe-Ito for categories, viridis for a metric's scale; highlight by contrast (the best in
vermillion over grey and blue), never by more colours.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from tuner.config import minimised, sign
from tuner.report._data import StudyData
from tuner.space import Categorical
from tuner.status import FAILED, FINISHED, PRUNED, STOPPED

# Okabe-Ito
BLUE, ORANGE, VERMILLION, GREEN, SKY, PURPLE, GREY = (
    "#0072B2",
    "#E69F00",
    "#D55E00",
    "#009E73",
    "#56B4E9",
    "#CC79A7",
    "#999999",
)
STATUS_COLOURS = {FINISHED: BLUE, PRUNED: GREY, STOPPED: SKY}


def _alpha(n: int, base: float = 0.8, floor: float = 0.15) -> float:
    """Fainter lines and points as the count grows, so 200 trials stay readable."""
    return max(floor, min(base, base * 20 / max(n, 1)))


def _robust_range(values: np.ndarray, maximize: bool) -> tuple[float, float, bool]:
    """Limits that keep the good end in view: the worst 10% may fall outside. Also: whether any do."""
    lo, hi = float(np.min(values)), float(np.max(values))
    if len(values) < 10:
        return lo, hi, False
    if maximize:
        lo = float(np.quantile(values, 0.1))
    else:
        hi = float(np.quantile(values, 0.9))
    clipped = bool(np.any(values < lo) or np.any(values > hi))
    return lo, hi, clipped


def _fit_curves(ax: Any, metric: pd.Series, maximize: bool) -> None:
    """The y-limits of learning curves: their finite values' robust range, padded."""
    values = metric.to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    if len(values):
        lo, hi, _ = _robust_range(values, maximize)
        pad = (hi - lo) * 0.08 or 0.1
        ax.set_ylim(lo - pad, hi + pad)


def _metric_label(data: StudyData) -> str:
    arrow = "higher is better" if data.maximize else "lower is better"
    return f"{data.metric} ({arrow})"


def history_chart(data: StudyData) -> Figure | None:
    scored = data.scored
    if scored.empty:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    order = {t: i + 1 for i, t in enumerate(data.trials["trial_id"])}
    x = scored["trial_id"].map(order)
    for status, colour in STATUS_COLOURS.items():
        part = scored["status"] == status
        if part.any():
            ax.scatter(
                x[part],
                scored.loc[part, "value"],
                s=22,
                color=colour,
                alpha=_alpha(len(scored), 0.9, 0.45),
                label=f"{status} ({int(part.sum())})",
                edgecolors="none",
            )
    finished = scored[scored["status"] == FINISHED].sort_values("trial_id", key=lambda s: s.map(order))
    if not finished.empty:
        values = finished["value"].to_numpy()
        s = sign(data.maximize)
        best_so_far = s * np.minimum.accumulate(s * values)
        xs = finished["trial_id"].map(order).to_numpy()
        ax.step(
            np.append(xs, len(order)),
            np.append(best_so_far, best_so_far[-1]),
            where="post",
            color=VERMILLION,
            linewidth=1.8,
            zorder=1,
            label="best finished so far",
        )
    ax.set_xlabel("trial (in the order started)")
    ax.set_ylabel(f"last reported {_metric_label(data)}")
    lo, hi, clipped = _robust_range(scored["value"].to_numpy(dtype=float), data.maximize)
    pad = (hi - lo) * 0.08 or 0.1
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_title("Optimisation history" + (" (the worst 10% lie off the axis)" if clipped else ""))
    legend = ax.legend(frameon=False, fontsize=8)
    for handle in legend.legend_handles:
        if handle is not None:
            handle.set_alpha(1)
    ax.grid(alpha=0.3)
    return fig


def curves_chart(data: StudyData) -> Figure | None:
    h = data.history
    if h.empty or data.metric not in h:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    status = data.trials.set_index("trial_id")["status"]
    best_id = data.best["trial_id"] if data.best else None
    n = h["trial_id"].nunique()
    for trial_id, rows in h.groupby("trial_id", sort=False):
        if trial_id == best_id:
            continue
        kind = status.get(trial_id, FINISHED)
        colour = BLUE if kind == FINISHED else GREY
        alpha = _alpha(n, 0.7 if kind == FINISHED else 0.35)
        ax.plot(rows["step"], rows[data.metric], color=colour, alpha=alpha, linewidth=0.9)
        if kind == PRUNED and len(rows):  # where the scheduler stopped it
            ax.plot(rows["step"].iloc[-1], rows[data.metric].iloc[-1], "x", color=GREY, alpha=alpha, markersize=4)
    _fit_curves(ax, h[data.metric], data.maximize)
    if best_id is not None and best_id in set(h["trial_id"]):
        rows = h[h["trial_id"] == best_id]
        ax.plot(rows["step"], rows[data.metric], color=VERMILLION, linewidth=2.5)
        ax.annotate(
            f"best: {best_id}",
            (rows["step"].iloc[-1], rows[data.metric].iloc[-1]),
            color=VERMILLION,
            xytext=(6, 0),
            textcoords="offset points",
            va="center",
            fontsize=9,
            fontweight="bold",
        )
    handles = [
        plt.Line2D([], [], color=BLUE, label="finished"),
        plt.Line2D([], [], color=GREY, label="pruned (x: where)"),
        plt.Line2D([], [], color=VERMILLION, linewidth=2.5, label="best"),
    ]
    ax.legend(handles=handles, frameon=False, fontsize=8)
    ax.set_xlabel("step (as reported, e.g. epoch)")
    ax.set_ylabel(_metric_label(data))
    ax.set_title("Learning curves")
    ax.grid(alpha=0.3)
    return fig


def params_chart(data: StudyData) -> Figure | None:
    scored = data.scored
    names = [n for n in data.searched if f"params_{n}" in scored]
    if scored.empty or not names:
        return None
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.2 * cols, 2.8 * rows), sharey=True, layout="constrained", squeeze=False
    )
    rng = np.random.default_rng(0)
    colours = scored["status"].map(lambda s: STATUS_COLOURS.get(s, GREY))
    alpha = _alpha(len(scored), 0.85, 0.45)
    for ax, name in zip(axes.flat, names, strict=False):
        active = scored[f"params_{name}"].notna().to_numpy()  # a conditional parameter: where it was active
        values, value, colour = scored[f"params_{name}"][active], scored["value"][active], colours[active]
        param = data.searched[name]
        if isinstance(param, Categorical):
            labels = list(dict.fromkeys(str(v) for v in param.values))  # repeats weight a draw
            pos = values.map(lambda v, labels=labels: labels.index(str(v)) if str(v) in labels else -1)
            ax.scatter(pos + rng.uniform(-0.2, 0.2, len(pos)), value, c=colour, s=14, alpha=alpha, edgecolors="none")
            ax.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 3 else 0, fontsize=8)
        else:
            ax.scatter(values.astype(float), value, c=colour, s=14, alpha=alpha, edgecolors="none")
            if data.is_log(name):
                ax.set_xscale("log")
        ax.set_xlabel(name + (" (log scale)" if data.is_log(name) else ""))
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel(data.metric)
    lo, hi, clipped = _robust_range(scored["value"].to_numpy(dtype=float), data.maximize)
    pad = (hi - lo) * 0.08 or 0.1
    axes[0, 0].set_ylim(lo - pad, hi + pad)
    note = "; the worst 10% lie off the axis" if clipped else ""
    fig.suptitle(f"{_metric_label(data)} against each parameter (blue: finished, grey: pruned{note})", fontsize=10)
    return fig


def parallel_chart(data: StudyData) -> Figure | None:
    scored = data.scored
    names = [n for n in data.searched if f"params_{n}" in scored]
    if len(scored) < 2 or not names:
        return None
    columns: list[np.ndarray] = []
    ticks: list[list[str]] = []
    for name in names:
        scaled: Any
        values = scored[f"params_{name}"]
        param = data.searched[name]
        if isinstance(param, Categorical):
            labels = list(dict.fromkeys(str(v) for v in param.values))
            idx = values.map(  # a gap in the line where the parameter was inactive
                lambda v, labels=labels: np.nan if pd.isna(v) else labels.index(str(v)) if str(v) in labels else 0
            )
            scaled = idx.to_numpy(dtype=float) / max(len(labels) - 1, 1)
            ticks.append(labels if len(labels) <= 6 else [labels[0], "...", labels[-1]])
        else:
            raw = values.astype(float).to_numpy()
            num = np.log10(raw) if data.is_log(name) else raw
            lo, hi = float(np.nanmin(num)), float(np.nanmax(num))
            scaled = (num - lo) / (hi - lo) if hi > lo else np.where(np.isnan(num), np.nan, 0.5)
            fmt = (lambda v: f"{10**v:.2g}") if data.is_log(name) else (lambda v: f"{v:.3g}")
            ticks.append([fmt(lo), fmt(hi)])
        columns.append(np.asarray(scaled, dtype=float))
    matrix = np.vstack(columns).T
    metric = scored["value"].to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(names) + 2), 4.5), layout="constrained")
    cmap = plt.get_cmap("viridis" if data.maximize else "viridis_r")  # bright = better either way
    lo, hi, clipped = _robust_range(metric, data.maximize)
    norm = matplotlib.colors.Normalize(lo, hi, clip=True)
    order = np.argsort(-minimised(metric, data.maximize))  # best drawn last, on top
    alpha = _alpha(len(scored), 0.8)
    for i in order:
        ax.plot(range(len(names)), matrix[i], color=cmap(norm(metric[i])), alpha=alpha, linewidth=1)
    for j, labels in enumerate(ticks):
        ax.axvline(j, color="black", linewidth=0.8)
        ax.text(j, -0.06, labels[0], ha="center", va="top", fontsize=8)
        ax.text(j, 1.04, labels[-1], ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(names)), names)
    ax.tick_params(axis="x", pad=18)
    ax.set_yticks([])
    ax.set_ylim(-0.12, 1.12)
    ax.set_title("Parallel coordinates (each axis from its lowest to highest value tried)", fontsize=10)
    extend = ("min" if data.maximize else "max") if clipped else "neither"
    bar = fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, extend=extend)
    bar.set_label(_metric_label(data))
    return fig


def importance_values(data: StudyData) -> dict[str, float] | None:
    """fANOVA importances (optuna.importance) over the finished trials; ``None`` if too few."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    finished = data.scored[data.scored["status"] == FINISHED]
    names = [  # fANOVA wants every parameter in every trial: conditional ones are left out
        n
        for n in data.searched
        if f"params_{n}" in finished and finished[f"params_{n}"].nunique() > 1 and finished[f"params_{n}"].notna().all()
    ]
    if len(finished) < 3 or not names:
        return None
    dists: dict[str, Any] = {}
    for name in names:
        p = data.searched[name]
        if isinstance(p, Categorical):
            dists[name] = CategoricalDistribution(list(dict.fromkeys(str(v) for v in p.values)))
        else:
            col = finished[f"params_{name}"].astype(float)
            lo, hi = float(col.min()), float(col.max())
            if isinstance(p, Categorical) or not np.all(np.mod(col, 1) == 0) or data.is_log(name):
                dists[name] = FloatDistribution(lo, hi, log=data.is_log(name) and lo > 0)
            else:
                dists[name] = IntDistribution(int(lo), int(hi))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if data.maximize else "minimize")
    for _, row in finished.iterrows():
        params = {}
        for name, dist in dists.items():
            v = row[f"params_{name}"]
            params[name] = str(v) if isinstance(dist, CategoricalDistribution) else dist.to_internal_repr(v)
            if isinstance(dist, IntDistribution):
                params[name] = int(v)
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=float(row["value"])))
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))


def importance_chart(data: StudyData) -> Figure | None:
    values = importance_values(data)
    if not values:
        return None
    names = list(values)[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1.4), layout="constrained")
    ax.barh(names, [values[n] for n in names], color=BLUE)
    for i, n in enumerate(names):
        ax.text(values[n], i, f" {values[n]:.2f}", va="center", fontsize=8)
    ax.set_xlabel(f"share of the variance of {data.metric} explained (fANOVA, finished trials)")
    ax.set_title("Parameter importance")
    ax.set_xlim(0, max(values.values()) * 1.15 or 1)
    return fig


def survival_chart(data: StudyData) -> Figure | None:
    """How many trials reached each ASHA rung (and max_t)."""
    steps = data.rung_steps()
    if not steps or data.history.empty:
        return None
    reached = data.history.groupby("trial_id")["step"].max()
    counts = [int((reached >= s).sum()) for s in steps]
    fig, ax = plt.subplots(figsize=(6, 3.8), layout="constrained")
    labels = [f"{s:g}" for s in steps[:-1]] + [f"{steps[-1]:g}\n(max_t)"]
    bars = ax.bar(labels, counts, color=[BLUE] * (len(steps) - 1) + [VERMILLION])
    ax.bar_label(bars, fontsize=9)
    ax.set_xlabel("rung (step)")
    ax.set_ylabel("trials that reached it")
    ax.set_title(f"ASHA survival ({len(reached)} trials)")
    return fig


def pareto_chart(data: StudyData) -> Figure | None:
    """The first two objectives of a multi-objective study: every finished trial, the
    Pareto-optimal ones in vermillion joined by the front's steps, the dominated ones faded."""
    from tuner.results import pareto_mask

    objectives = data.objectives
    if len(objectives) < 2:
        return None
    (a, up_a), (b, up_b) = objectives[:2]
    trials = data.trials
    cols = [f"metric_{a}", f"metric_{b}"]
    if any(c not in trials for c in cols):
        return None
    done = trials[(trials["status"] == FINISHED) & trials[cols[0]].notna() & trials[cols[1]].notna()]
    if done.empty:
        return None
    front = pareto_mask(trials, objectives[:2]).reindex(done.index, fill_value=False)
    fig, ax = plt.subplots(figsize=(6.5, 4.5), layout="constrained")
    rest = done[~front]
    ax.scatter(rest[cols[0]], rest[cols[1]], c=GREY, s=18, alpha=0.35, edgecolors="none", label="dominated")
    best = done[front].sort_values(cols[0], ascending=not up_a)
    ax.step(best[cols[0]], best[cols[1]], where="post", color=VERMILLION, linewidth=1, alpha=0.8)
    ax.scatter(
        best[cols[0]], best[cols[1]], c=VERMILLION, s=32, edgecolors="black", linewidths=0.5, label="Pareto-optimal"
    )
    for _, row in best.iterrows():
        ax.annotate(
            str(row["trial_id"]), (row[cols[0]], row[cols[1]]), fontsize=7, xytext=(3, 3), textcoords="offset points"
        )
    ax.set_xlabel(f"{a} ({'maximize' if up_a else 'minimize'})")
    ax.set_ylabel(f"{b} ({'maximize' if up_b else 'minimize'})")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    more = f"; {len(objectives) - 2} more objective(s) not drawn" if len(objectives) > 2 else ""
    ax.set_title(f"Pareto front: {int(front.sum())} of {len(done)} finished trials{more}", fontsize=10)
    return fig


RESOURCES = (
    ("peak_rss_mb", "peak resident memory (MB)"),
    ("peak_gpu_mb", "peak GPU memory allocated (MB)"),
    ("peak_gpu_reserved_mb", "peak GPU memory reserved (MB)"),
    ("gpu_device_busy", "GPU busy, whole device (%)"),
    ("gpu_util_own", "GPU, the trial's own share (%)"),
    ("s_per_step", "seconds per step"),
    ("cpu_s", "CPU seconds"),
)


def resources_chart(data: StudyData) -> Figure | None:
    """What each trial used, one panel per figure measured, trials in start order; the best trial
    in vermillion, failed ones in orange, a suspected leak outlined."""
    trials = data.trials
    shown = [(c, label) for c, label in RESOURCES if c in trials and trials[c].notna().any()]
    if not shown or len(trials) == 0:
        return None
    best = (data.best or {}).get("trial_id")
    colours = [
        VERMILLION if t == best else ORANGE if s in FAILED else STATUS_COLOURS.get(s, BLUE)
        for t, s in zip(trials["trial_id"], trials["status"], strict=True)
    ]
    leaks = trials["leak_suspected"].fillna(False).astype(bool) if "leak_suspected" in trials else None
    x = np.arange(len(trials))
    fig, axes = plt.subplots(len(shown), 1, figsize=(8, 1.9 * len(shown) + 0.6), sharex=True, layout="constrained")
    for ax, (column, label) in zip(np.atleast_1d(axes), shown, strict=True):
        values = trials[column].astype(float).fillna(0.0).to_numpy()
        edges = ["black" if leaks is not None and leaks.iloc[i] else "none" for i in range(len(trials))]
        ax.bar(x, values, color=colours, edgecolor=edges, linewidth=1.2)
        ax.set_ylabel(label, fontsize=8)
        ax.tick_params(labelsize=8)
    last = np.atleast_1d(axes)[-1]
    if len(trials) <= 40:
        last.set_xticks(x, list(trials["trial_id"]), rotation=90, fontsize=7)
    last.set_xlabel("trial (vermillion: best, orange: failed, outlined: memory grows steadily)")
    fig.suptitle("Resources by trial (memory: the largest rank; CPU: all ranks)", fontsize=10)
    return fig


def population_chart(data: StudyData) -> Figure | None:
    """Population-based training's members, exploits and winning schedule (:mod:`._population`)."""
    from tuner.report._population import population_chart as draw

    return draw(data)


ONLY_SEVERAL = ("pareto",)  # drawn only for a study of several metrics
ONLY_POPULATION = ("population",)  # drawn only for population-based training
CHARTS: dict[str, tuple[str, Callable[[StudyData], Figure | None]]] = {
    "history": ("Optimisation history", history_chart),
    "curves": ("Learning curves", curves_chart),
    "params": ("Metric against each parameter", params_chart),
    "parallel": ("Parallel coordinates", parallel_chart),
    "importance": ("Parameter importance", importance_chart),
    "asha": ("ASHA survival", survival_chart),
    "pareto": ("Pareto front", pareto_chart),
    "population": ("Population-based training", population_chart),
    "resources": ("Resources by trial", resources_chart),
}
