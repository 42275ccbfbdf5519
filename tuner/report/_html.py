"""``report.html``: one self-contained page (images embedded) plus the PNGs beside it."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
import yaml

from tuner.report._charts import CHARTS, ONLY_POPULATION, ONLY_SEVERAL
from tuner.report._data import StudyData, read
from tuner.report._population import is_population
from tuner.results import shown_metrics
from tuner.status import FAILED

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:0}.sub{color:#666;margin-top:.2em}img{max-width:100%;border:1px solid #eee}
table{border-collapse:collapse;font-size:.9em}td,th{padding:.25em .7em;border-bottom:1px solid #ddd;text-align:left}
pre{background:#f6f6f6;padding:.8em;overflow:auto;font-size:.85em}.note{color:#666;font-style:italic}
"""


def write_report(folder: str | Path, metric: str | None = None, mode: str | None = None) -> Path:
    """Draw every chart of the study in ``folder`` (or of a Ray Tune experiment: ``metric`` and
    ``mode`` where it recorded none); returns the path of ``report.html``."""
    data = read(folder, metric, mode)
    out = data.folder
    sections = []
    for key, (title, draw) in CHARTS.items():
        if key in ONLY_SEVERAL and len(data.objectives) < 2:
            continue  # a chart of several objectives, in a study of one
        if key in ONLY_POPULATION and not is_population(data):
            continue
        fig = draw(data)
        if fig is None:
            sections.append(f"<h2>{title}</h2><p class=note>Not enough data for this chart yet.</p>")
            continue
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110)
        plt.close(fig)
        png = buffer.getvalue()
        (out / f"{key}.png").write_bytes(png)
        encoded = base64.b64encode(png).decode("ascii")
        sections.append(f'<h2>{title}</h2><img alt="{title}" src="data:image/png;base64,{encoded}">')
    page = _page(data, "\n".join(sections))
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


USAGE_COLUMNS = {
    "peak_rss_mb": "peak RSS MB",
    "peak_gpu_mb": "GPU allocated MB",
    "peak_gpu_reserved_mb": "GPU reserved MB",
    "gpu_device_busy": "GPU busy % (device)",
    "gpu_util_own": "GPU own %",
    "cpu_s": "CPU s",
    "s_per_step": "s / step",
    "leak_mb_per_step": "leak MB / step",
}
TOP = 15


def _resources(data: StudyData) -> str:
    """The trials that used the most memory, with every figure measured."""
    e = html.escape
    cols = [c for c in USAGE_COLUMNS if c in data.trials and data.trials[c].notna().any()]
    if not cols:
        return "<p class=note>No resource figures were recorded.</p>"
    key = next(c for c in ("peak_gpu_reserved_mb", "peak_gpu_mb", "peak_rss_mb", cols[0]) if c in cols)
    top = data.trials.sort_values(key, ascending=False, na_position="last").head(TOP)
    head = "".join(f"<th>{e(USAGE_COLUMNS[c])}</th>" for c in cols)
    rows = "".join(
        f"<tr><td>{e(str(r['trial_id']))}</td><td>{e(str(r['status']))}</td>"
        + "".join(f"<td>{'' if pd.isna(r[c]) else f'{float(r[c]):.4g}'}</td>" for c in cols)
        + "</tr>"
        for _, r in top.iterrows()
    )
    table = f"<table><tr><th>trial</th><th>status</th>{head}</tr>{rows}</table>"
    return table + _gpu_note(data.trials)


def _gpu_note(trials: pd.DataFrame) -> str:
    """Why a GPU utilisation figure is missing, once, where the figures are."""
    if "gpu_util_note" not in trials:
        return ""
    notes = trials["gpu_util_note"].dropna()
    if notes.empty:
        return ""
    why = html.escape(str(notes.iloc[0]))
    return f"<p class=note>a GPU utilisation figure is missing for {len(notes)} trial(s): {why}</p>"


def _number(value: Any, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


def _confirm_row(summary: dict[str, Any], r: dict[str, Any]) -> str:
    e = html.escape
    winner = r["trial_id"] == summary.get("winner")
    tests = ", ".join(f"{k}={v:.4g}" for k, v in shown_metrics(summary, r).items())
    params = ", ".join(f"{k}={v}" for k, v in r["params"].items())
    figures = "".join(
        f"<td>{_number(v, f)}</td>" for v, f in ((r["search_value"], ".6g"), (r["mean"], ".6g"), (r["std"], ".3g"))
    )
    star = ("&#9733; " if winner else "") + ("(Pareto) " if r.get("pareto") else "")
    return (
        f"<tr><td>{star}{e(str(r['trial_id']))}</td>{figures}"
        f"<td>{len(r['values'])}/{r['runs']}</td><td>{e(tests)}</td><td>{e(params)}</td></tr>"
    )


def _confirmed(data: StudyData) -> str:
    """What ``confirm`` found: each top configuration's mean and spread over fresh seeds."""
    e = html.escape
    summary = data.confirm
    if not summary:
        return ""
    rows = "".join(_confirm_row(summary, r) for r in summary["configs"])
    if summary.get("winner") is None:
        verdict = "No configuration finished a confirmation run."
    elif summary.get("changed"):
        verdict = (
            f"Confirmation <b>changed the winner</b>: {e(summary['winner'])} has the best mean, better than the "
            f"search's best {e(summary['search_best'])} by {summary['by']:.4g}."
        )
    else:
        verdict = f"Confirmation kept the winner: {e(summary['winner'])} has the best mean."
    names = summary.get("objectives", [])
    other = "other objectives' means, held-out test" if names else "held-out test"
    if names:
        verdict += f" Means of {e(', '.join(names))}; the winner is the pick among the Pareto-optimal means."
    return (
        f"<h2>Confirmed over {summary['seeds']} seeds</h2><p>{verdict}</p><table><tr><th>trial</th>"
        f"<th>in the search</th><th>mean</th><th>spread (sd)</th><th>runs</th><th>{e(other)}</th>"
        f"<th>parameters</th></tr>{rows}</table>"
    )


def _page(data: StudyData, charts: str) -> str:
    e = html.escape
    counts = data.trials["status"].value_counts()
    count_rows = "".join(f"<tr><td>{e(str(k))}</td><td>{int(v)}</td></tr>" for k, v in counts.items())
    if data.best:
        best = data.best
        head = (
            f"<p><b>{e(best['trial_id'])}</b>: {e(data.metric)} = {best['metric']['value']:.6g} "
            f"({e(best['status'])}, step {best.get('step')})</p>"
        )
        best_html = head + f"<pre>{e(yaml.safe_dump(best['config'], sort_keys=False))}</pre>"
    else:
        best_html = "<p class=note>No best trial: no trial produced a value.</p>"
    failed = data.trials[data.trials["status"].isin(FAILED)]
    if failed.empty:
        errors = "<p class=note>No trial failed.</p>"
    else:
        failed = failed.assign(
            cause=failed.get("cause", pd.Series(None, index=failed.index)).fillna("user_exception"),
            hint=failed.get("hint", pd.Series(None, index=failed.index)).fillna(""),
        )
        order = failed["cause"].value_counts().index  # the most common cause first
        rows = "".join(
            f"<tr><td>{e(str(r.cause))}</td><td>{e(str(r.trial_id))}</td><td>{e(str(r.status))}</td>"
            f"<td>{e(str(r.error))}</td><td>{e(str(r.hint))}</td><td>logs/{e(str(r.trial_id))}.log</td></tr>"
            for cause in order
            for r in failed[failed["cause"] == cause].itertuples()
        )
        errors = (
            "<table><tr><th>cause</th><th>trial</th><th>status</th><th>error</th><th>what to change</th>"
            f"<th>log</th></tr>{rows}</table>"
        )
    name = e(data.study.name)
    resources = _resources(data)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tuner report: {name}</title><style>{STYLE}</style></head>
<body>
<h1>{name}</h1>
<p class=sub>{e(data.study.spec.method)} search, {len(data.trials)} trials,
{"maximize" if data.maximize else "minimize"} {e(data.metric)}</p>
<h2>Trials by status</h2><table>{count_rows}</table>
<h2>Best configuration</h2>{best_html}
{_confirmed(data)}
{charts}
<h2>Resources: the hungriest trials</h2>{resources}
<h2>Errors</h2>{errors}
<h2>Study</h2><pre>{e(yaml.safe_dump(data.study.raw, sort_keys=False))}</pre>
</body></html>
"""
