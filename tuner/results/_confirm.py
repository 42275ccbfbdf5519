"""``confirm``: the top trials of a study trained again with fresh seeds, summarised.

Reads the confirmation run's trials (each configuration trained ``seeds`` times at the full
budget), groups them by configuration and gives each its mean and spread; the configuration
with the best mean wins. With several objectives the top trials are the Pareto-optimal ones,
each objective is averaged, and the winner is ``select``'s pick among the configurations whose
means are Pareto-optimal. Writes ``confirm.yaml`` into the study's folder and a ``confirmed``
block into its ``best.yaml``. Pure pandas, no Ray.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any, cast

import pandas as pd
import yaml

from tuner.config import minimised
from tuner.results._best import ranked
from tuner.results._pareto import pareto_mask, select
from tuner.results._store import BEST, write_yaml
from tuner.status import FINISHED

CONFIRM = "confirm.yaml"


def candidates(trials: pd.DataFrame, objectives: list[tuple[str, bool]], rule: Any | None = None) -> pd.DataFrame:
    """The search's trials in the order ``confirm`` takes them: by :func:`ranked` on the (first)
    metric; with several objectives the Pareto-optimal ones first, ``select``'s pick leading."""
    order = ranked(trials, objectives[0][1], everyone=True)
    if len(objectives) == 1 or order.empty:
        return order
    front = pareto_mask(order, objectives)
    picked, _ = select(order, objectives, rule)  # one of the front, or None when it is empty
    lead = [] if picked is None else [picked.name]
    return order.loc[lead + [i for i in order.index[front] if i not in lead] + list(order.index[~front])]


def summarise(
    study: Path,
    run: pd.DataFrame,
    top: list[dict[str, Any]],
    objectives: list[tuple[str, bool]],
    seeds: int,
    rule: Any | None = None,
) -> dict[str, Any]:
    """``top``: the original trials, best first (``trial_id``, ``params``, ``value``);
    ``objectives``: (name, maximised) pairs, the first the metric ``value`` holds."""
    metric, maximize = objectives[0]
    rows = []
    for original in top:
        mine = run[
            run.apply(lambda r, p=original["params"]: all(_same(r.get(f"params_{k}"), v) for k, v in p.items()), axis=1)
        ]
        done = mine[mine["status"] == FINISHED]
        values = [float(v) for v in done["value"] if v is not None and math.isfinite(float(v))]
        extra = {
            str(c).removeprefix("metric_"): round(float(done[c].mean()), 6)
            for c in done.columns
            if str(c).startswith("metric_") and str(c) != f"metric_{metric}" and done[c].notna().any()
        }
        rows.append(
            {
                "trial_id": original["trial_id"],
                "params": original["params"],
                "search_value": original["value"],
                "values": values,
                "mean": statistics.fmean(values) if values else None,
                "std": statistics.stdev(values) if len(values) > 1 else 0.0 if values else None,
                "runs": len(mine),
                "failed": int(len(mine) - len(done)),
                "metrics": extra,
            }
        )
    scored = [r for r in rows if r["mean"] is not None]
    if not scored:
        return {"metric": metric, "seeds": seeds, "configs": rows, "winner": None}
    if len(objectives) > 1:
        winner = _pareto_winner(scored, objectives, rule)
    else:
        winner = min(scored, key=lambda r: minimised(r["mean"], maximize))
    first = rows[0]
    out = {
        "metric": metric,
        "goal": "maximize" if maximize else "minimize",
        **({"objectives": [name for name, _ in objectives]} if len(objectives) > 1 else {}),
        "seeds": seeds,
        "configs": rows,
        "winner": winner["trial_id"],
        "search_best": first["trial_id"],
        "changed": winner["trial_id"] != first["trial_id"],
        "by": None if first["mean"] is None else abs(winner["mean"] - first["mean"]),
    }
    write_yaml(study / CONFIRM, out)
    best_path = study / BEST
    if best_path.exists():
        best = yaml.safe_load(best_path.read_text(encoding="utf-8"))
        best["confirmed"] = {
            "trial_id": winner["trial_id"],
            "params": winner["params"],
            "mean": winner["mean"],
            "std": winner["std"],
            "seeds": seeds,
            "changed": out["changed"],
            "by": out["by"],
        }
        if len(objectives) > 1:  # the front of the means, which `best` shows when no select picks one
            best["confirmed"]["front"] = [
                {
                    "trial_id": r["trial_id"],
                    **{name: _mean_of(r, name, metric) for name, _ in objectives},
                    "params": r["params"],
                }
                for r in scored
                if r.get("pareto")
            ]
        write_yaml(best_path, best)
    return out


def _pareto_winner(
    scored: list[dict[str, Any]], objectives: list[tuple[str, bool]], rule: Any | None
) -> dict[str, Any]:
    """Flags each configuration whose means are Pareto-optimal (``pareto``) and returns the one
    ``select`` picks among them (by default the best mean on the first objective)."""
    means = pd.DataFrame(
        [
            {"status": FINISHED, **{f"metric_{name}": _mean_of(r, name, objectives[0][0]) for name, _ in objectives}}
            for r in scored
        ]
    )
    front = pareto_mask(means, objectives)
    for r, on in zip(scored, front, strict=True):
        r["pareto"] = bool(on)
    picked, _ = select(means, objectives, rule)
    return scored[cast(int, picked.name)] if picked is not None else scored[0]


def _mean_of(row: dict[str, Any], name: str, primary: str) -> float:
    value = row["mean"] if name == primary else row["metrics"].get(name)
    return math.nan if value is None else float(value)


def _same(a: Any, b: Any) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None
    if hasattr(a, "item"):
        a = a.item()
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=0.0)
    return bool(a == b)


def shown_metrics(summary: dict[str, Any], row: dict[str, Any]) -> dict[str, float]:
    """The means shown beside a configuration's: its other objectives' and the held-out test's."""
    others = summary.get("objectives", [])[1:]
    return {k: v for k, v in row["metrics"].items() if k in others or k.startswith("test_")}


def confirm_table(summary: dict[str, Any]) -> list[str]:
    """The table ``confirm`` prints: each configuration's mean and spread, the winner marked
    (with several objectives, ``P`` marks the configurations whose means are Pareto-optimal)."""
    lines = [f"{'':3}{'trial':8}{'search':>12}{'mean':>12}{'std':>10}  runs  params"]
    for row in summary["configs"]:
        mark = ("*" if row["trial_id"] == summary.get("winner") else " ") + ("P " if row.get("pareto") else "  ")
        mean = "-" if row["mean"] is None else f"{row['mean']:.4g}"
        std = "-" if row["std"] is None else f"{row['std']:.2g}"
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row["params"].items())
        extra = "".join(f"  {k}={v:.4g}" for k, v in shown_metrics(summary, row).items())
        lines.append(
            f"{mark}{row['trial_id']:8}{row['search_value']:>12.4g}{mean:>12}{std:>10}  "
            f"{len(row['values'])}/{row['runs']}  {params}{extra}"
        )
    return lines
