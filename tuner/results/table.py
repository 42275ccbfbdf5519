"""The trials table of ``python -m tuner results``: sorted, trimmed, printed with rich."""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

from tuner.errors import UserError
from tuner.results._tables import read_tables
from tuner.status import FAILED, FINISHED, PRUNED, STOPPED

FIRST = ["trial_id", "status", "pruned_at", "value", "best_value", "iterations", "wall_s"]


def trials_table(
    folder: str | os.PathLike[str],
    sort: str | None = None,
    top: int | None = None,
    metric: str | None = None,
    mode: str | None = None,
) -> pd.DataFrame:
    """One row per trial, best first by default. ``sort`` names a column, a parameter or a metric;
    add ``:desc`` or ``:asc`` to choose the order (the study's metric sorts best first). A Ray Tune
    experiment's trials are read as :func:`read_tables` converts them (``metric`` and ``mode``
    where it recorded none)."""
    tables = read_tables(folder, metric, mode)
    metric, maximize = tables.metric, tables.maximize
    table = tables.trials.copy()
    table.insert(2, "pruned_at", table["step"].where(table["status"] == PRUNED))
    params = [str(c) for c in table if str(c).startswith("params_") and table[c].astype(str).nunique() > 1]
    metrics = [str(c) for c in table if str(c).startswith("metric_") and c != f"metric_{metric}"]
    first = [c for c in FIRST if c in table and (metric is not None or c not in ("value", "best_value"))]
    table = table[first + params + metrics + (["error"] if "error" in table else [])]
    if metric is not None:
        table = table.rename(columns={"value": metric, "best_value": f"best_{metric}"})
    table = table.rename(columns={c: str(c).removeprefix("params_") for c in params})
    table = table.rename(columns={c: str(c).removeprefix("metric_") for c in metrics})
    key, _, order = (sort or metric or "trial_id").partition(":")  # no metric: in start order
    if key not in table:
        raise UserError(f"--sort: no column {key!r}; one of {', '.join(map(str, table.columns))}")
    if order not in ("", "asc", "desc"):
        raise UserError(f"--sort: order must be asc or desc, got {order!r}")
    descending = order == "desc" or (order == "" and key in (metric, f"best_{metric}") and maximize)
    table = table.sort_values(key, ascending=not descending, na_position="last", kind="stable")
    return table.head(top) if top else table


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render(table: pd.DataFrame) -> None:
    from rich.console import Console
    from rich.table import Table

    out = Table(show_lines=False, header_style="bold")
    columns = [c for c in table.columns if c != "error"]
    for col in columns:
        out.add_column(str(col), justify="right" if pd.api.types.is_numeric_dtype(table[col]) else "left")
    styles: dict[str, str] = {FINISHED: "", PRUNED: "dim", STOPPED: "dim", **dict.fromkeys(FAILED, "red")}
    for _, row in table.iterrows():
        out.add_row(*(_cell(row[c]) for c in columns), style=styles.get(str(row["status"]), ""))
    console = Console()
    if not console.is_terminal:  # piped: no terminal to fit, keep every column whole
        console = Console(width=400)
    console.print(out)
