"""How a run ends, as the command line says it: the counts, why trials stopped starting, the
searcher's and the resources' figures, failures grouped by cause, and the best trial; the exit code."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.errors import StudyFailed, UserError

if TYPE_CHECKING:
    from tuner.engine import Outcomes

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def summarize(out: Outcomes, metric: str | None = None, searched: list[str] | None = None) -> int:
    """The end of a run as the user sees it; the exit code. Without ``metric`` and ``searched``
    (a resumed run), they are read from ``best.yaml``."""
    folder = shown(out.folder)
    stored = _stored_best(out.folder) if out.best is not None else {}  # read once, for all below
    from tuner.results import NO_METRIC

    metric = metric or stored.get("metric", {}).get("name", "the metric")
    searched = searched if searched is not None else list(stored.get("params", {}))
    counts = ", ".join(f"{n} {k}" for k, n in out.counts.items() if n)
    print(f"trials: {counts}", file=sys.stderr)
    if out.stop_reason:
        print(f"stopped starting trials: {out.stop_reason}", file=sys.stderr)
    searcher = out.summary.get("searcher") or {}
    if searcher.get("suggestions"):
        print(
            f"searcher: {searcher['suggest_s_median']:.3g} s a suggestion (median), "
            f"{100 * searcher['wait_fraction']:.1f}% of slot time spent waiting for one",
            file=sys.stderr,
        )
    if out.summary.get("simulated_s") is not None:
        print(
            f"time: {out.summary['simulated_s']:.6g} s simulated in {out.summary['real_s']:.3g} s real "
            f"({out.summary.get('steps', 0)} steps)",
            file=sys.stderr,
        )
    used = out.summary.get("resources") or {}
    if used.get("peak_rss_mb"):
        text = f"resources: {used['peak_rss_mb']:.0f} MB peak resident memory ({used['peak_rss_trial']})"
        if used.get("peak_gpu_reserved_mb"):
            text += f", {used['peak_gpu_reserved_mb']:.0f} MB peak GPU memory ({used['peak_gpu_trial']})"
        if used.get("s_per_step_median") is not None:
            text += f", {used['s_per_step_median']:.3g} s a step (median)"
        print(f"{text}, {used['cpu_s']:g} CPU-s in all", file=sys.stderr)
    _failures_by_cause(out, folder)
    if out.interrupted:
        if out.best is not None:
            _best_line(out.best, metric, searched, " (so far)")
        ended = sum(n for k, n in out.counts.items() if k != "running")
        print(
            f"interrupted: {ended} ended trial(s) kept in {folder}; continue with: python -m tuner resume {folder}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    if out.best is None and out.summary.get("best") == NO_METRIC:
        print(f"{NO_METRIC}; every metric the trials reported is in {folder}/trials.parquet and history.parquet")
        print(f"results: {folder}   (python -m tuner results {folder})")
        return EXIT_OK
    if out.best is None:
        raise StudyFailed(
            f"no trial produced a value for {metric}; nothing written to best.yaml (logs in {folder}/logs)"
        )
    _best_line(out.best, metric, searched)
    if stored.get("pareto") is not None:
        print(f"Pareto-optimal: {len(stored['pareto'])} trial(s), best chosen by {stored['chosen_by']}")
    print(f"results: {folder}   (python -m tuner best {folder})")
    return EXIT_OK


def _best_line(best: Any, metric: str, searched: list[str], note: str = "") -> None:
    shown = "  ".join(f"{k}={v}" for k, v in best.params.items() if k in searched)
    print(f"best {best.trial_id}{note}: {metric}={best.value:.6g}  {shown}")


def _stored_best(folder: Path) -> dict[str, Any]:
    from tuner.results import load_best

    try:
        return load_best(folder)
    except UserError:
        return {}


def _failures_by_cause(out: Outcomes, folder: str, each: int = 3) -> None:
    """Failed trials grouped by cause, most common first: the cause, how many, the hint, and the
    first few trials with their error and log."""
    groups: dict[str, list[Any]] = {}
    for rec in out.failures:
        groups.setdefault(rec.cause or "user_exception", []).append(rec)
    for cause, recs in sorted(groups.items(), key=lambda item: -len(item[1])):
        print(f"  {cause} ({len(recs)} trial{'s' if len(recs) > 1 else ''}): {recs[0].hint or ''}", file=sys.stderr)
        for rec in recs[:each]:
            log = out.folder / "logs" / f"{rec.trial_id}.log"
            where = f"  (log: {shown(log)})" if log.exists() else ""
            print(f"    {rec.trial_id} {rec.status}: {rec.error}{where}", file=sys.stderr)
        if len(recs) > each:
            print(f"    ... and {len(recs) - each} more (see {folder}/trials.parquet)", file=sys.stderr)


def shown(path: Path) -> str:
    """A path relative to the working folder when it lies inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except (ValueError, OSError):  # outside it, or the folder is gone (a Ray job's, at its end)
        return str(path)
