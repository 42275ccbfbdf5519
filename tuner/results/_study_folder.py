"""A tuner results folder as :class:`TrialResult` records, whichever backend wrote it.

The trials and their order come from ``trials.parquet``; each trial's reports and checkpoints
from the journal, replayed as the run kept them (a retry forgets what came after the step it
resumed from), since it tells a metric reported as NaN from one not reported at all;
``history.parquet`` stands in for a folder without a journal. A trial's ``training_iteration``
is the number of its report (1, 2, ...), as Ray Tune counts results, and its ``time_total_s``
the seconds since it started (``time_s``) unless the trainable reported its own.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import yaml

from tuner.results._analysis import TrialError, TrialResult
from tuner.results._checkpoint import Checkpoint
from tuner.results._journal import read_journal
from tuner.results._scopes import metric_analysis
from tuner.results._store import STUDY, load_history, load_results, missing, objectives, row_params
from tuner.space import nest, parse_parameters

FIRST = ["trial_id", "training_iteration", "step", "time_s", "time_total_s"]


@dataclass
class _Run:
    params: dict[str, Any] | None = None
    reports: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[tuple[Any, str]] = field(default_factory=list)  # (step, path)

    def report(self, trial_id: str, step: Any, time_s: Any, metrics: dict[str, Any]) -> None:
        n = len(self.reports) + 1
        report = {"trial_id": trial_id, "training_iteration": n, "step": step, "time_s": time_s, "time_total_s": time_s}
        report |= metrics  # a Ray Tune trainable's own time_total_s wins
        if isinstance(report["training_iteration"], float) and report["training_iteration"].is_integer():
            report["training_iteration"] = int(report["training_iteration"])  # a count, as Ray gives it
        self.reports.append(report)

    def rewind(self, step: Any) -> None:
        self.reports = [r for r in self.reports if step is not None and r["step"] <= step]
        self.checkpoints = [c for c in self.checkpoints if step is not None and c[0] <= step]


def read_study_folder(folder: Path) -> tuple[list[TrialResult], str | None, str | None]:
    """``(trials, metric, mode)``: the study's (first) metric and ``min`` or ``max``."""
    trials = load_results(folder)
    study = yaml.safe_load((folder / STUDY).read_text(encoding="utf-8")) if (folder / STUDY).is_file() else None
    found = objectives(study) if study else []
    metric, maximize = found[0] if found else (None, False)
    paths = parse_parameters((study or {}).get("parameters") or {})[0].paths  # names written with dots
    runs = _replay(folder)
    policy = (study or {}).get("checkpoints") or {}
    location = policy.get("path") or str(folder / "checkpoints")
    records = []
    for _, row in trials.iterrows():
        trial_id = str(row["trial_id"])
        run = runs.get(trial_id, _Run())
        params = run.params if run.params is not None else row_params(row)
        history = pd.DataFrame(run.reports)
        if not history.empty:
            history = history[[*FIRST, *(c for c in history.columns if c not in FIRST)]]
        saved: list[tuple[str, dict[str, Any]]] = [
            (Checkpoint(_shown(location, path), location), _at(run.reports, step)) for step, path in run.checkpoints
        ]
        if _remote(location) or (study or {}).get("backend") == "simulated":  # not listed here: by the rule
            kept = _pruned(saved, policy, metric, maximize)
        else:  # on this disk, those still there
            kept = [(path, result) for path, result in saved if _remote(path) or Path(path).exists()]
        config = _nest(params, paths)
        records.append(
            TrialResult(
                trial_id=trial_id,
                config=config,
                metrics=dict(run.reports[-1]) | {"config": config} if run.reports else {},
                metric_history=history,
                checkpoint=kept[-1][0] if kept else None,  # the latest
                status=str(row["status"]),
                path=str(folder),
                metric_analysis=metric_analysis(run.reports),
                checkpoints=_in_rays_order(kept, metric if policy.get("keep_best", True) else None, maximize),
                error=None if missing(row.get("error")) else _error(folder, trial_id, row),
            )
        )
    return records, metric, None if metric is None else "max" if maximize else "min"


def _in_rays_order(
    kept: list[tuple[str, dict[str, Any]]], metric: str | None, maximize: bool
) -> list[tuple[str, dict[str, Any]]]:
    """The kept checkpoints as Ray's checkpoint manager lists them (``Result.best_checkpoints``):
    ranked by the metric the run kept its best by (as ``checkpoint_score_attribute``), worst
    first and best last, NaN below every number, equals in the order saved, one whose result
    lacks the metric placed where it was saved (and scored as Ray scores it: minus infinity
    times the order); without a metric (``keep_best: false``), in the order saved."""
    if metric is None:
        return list(kept)
    factor = 1.0 if maximize else -1.0

    def score(result: dict[str, Any]) -> tuple[bool, float]:  # Ray's _get_checkpoint_score
        value = result.get(metric, -math.inf)  # one without it: -inf, times the order
        if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
            return (False, -math.inf)
        return (True, factor * float(value))

    ranked: list[tuple[str, dict[str, Any]]] = []
    for path, result in kept:
        if metric not in result:  # Ray appends it
            ranked.append((path, result))
            continue
        mine, i = score(result), 0
        while i < len(ranked) and not score(ranked[i][1]) > mine:
            i += 1
        ranked.insert(i, (path, result))
    return ranked


def _error(folder: Path, trial_id: str, row: pd.Series) -> TrialError:
    """A failed trial's error with its whole traceback (its last attempt's log), ending with the
    error line ``trials.parquet`` holds; the line alone where that attempt wrote no log (an error
    the engine decided: an earlier attempt's traceback is not this error's). The attempt is the
    row's ``attempts`` (the last attempt's number); without it, the latest log."""
    line, attempt, logs = str(row["error"]), row.get("attempts"), folder / "logs"
    if isinstance(attempt, numbers.Integral) or (isinstance(attempt, float) and attempt.is_integer()):
        log = logs / (f"{trial_id}.log" if int(attempt) == 0 else f"{trial_id}.attempt{int(attempt)}.log")
    else:
        attempts = sorted(logs.glob(f"{trial_id}.attempt*.log"), key=lambda p: _attempt(p.name))
        log = attempts[-1] if attempts else logs / f"{trial_id}.log"
    try:
        text = log.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    if not text:
        return TrialError(line, line)
    last = [s.strip() for s in text.splitlines() if s.strip()][-1]
    return TrialError(text if last == line.strip() else f"{text}\n{line}", line)


def _attempt(name: str) -> int:
    digits = name.rsplit(".attempt", 1)[-1].removesuffix(".log")
    return int(digits) if digits.isdigit() else 0


def _replay(folder: Path) -> dict[str, _Run]:
    runs: dict[str, _Run] = {}
    for ev in read_journal(folder):
        kind, trial_id = ev.get("e"), str(ev.get("trial", ""))
        run = runs.setdefault(trial_id, _Run())
        if kind == "start":
            run.params = dict(ev.get("params") or {})
        elif kind == "report":
            run.report(trial_id, ev.get("step"), ev.get("time"), dict(ev.get("metrics") or {}))
        elif kind == "ckpt" and ev.get("path"):
            run.checkpoints.append((ev.get("step"), str(ev["path"])))
        elif kind == "retry":
            run.rewind(ev.get("step"))
    if not any(run.reports for run in runs.values()):
        _from_history(folder, runs)
    return runs


def _from_history(folder: Path, runs: dict[str, _Run]) -> None:
    """Reports from ``history.parquet``: an empty cell there is taken as not reported."""
    for row in load_history(folder).to_dict("records"):
        trial_id = str(row.pop("trial_id"))
        metrics = {str(k): v for k, v in row.items() if k not in ("step", "time_s") and not missing(v)}
        runs.setdefault(trial_id, _Run()).report(trial_id, row.get("step"), row.get("time_s"), metrics)


def _at(reports: list[dict[str, Any]], step: Any) -> dict[str, Any]:
    """The report a checkpoint was saved with: the trial's last one at ``step``."""
    same = [r for r in reports if r["step"] == step]
    return dict(same[-1]) if same else {"step": step}


def _remote(location: str) -> bool:
    scheme = urlsplit(location).scheme
    return len(scheme) > 1 and scheme != "file"


def _shown(location: str, path: str) -> str:
    """A checkpoint's path as the user opens it: with its scheme, in an object store."""
    if _remote(location) and "://" not in path:
        return f"{urlsplit(location).scheme}://{path}"
    return path.removeprefix("file://")


def _pruned(
    saved: list[tuple[str, dict[str, Any]]], policy: dict[str, Any], metric: str | None, maximize: bool
) -> list[tuple[str, dict[str, Any]]]:
    """The checkpoints a run keeps of those it saved: the last ``keep`` and, with ``keep_best``,
    the first at the trial's best value of the metric (tuner.engine's rule)."""
    keep = {*range(max(0, len(saved) - int(policy.get("keep", 1))), len(saved))}
    values = [(i, r.get(metric or "")) for i, (_, r) in enumerate(saved)]
    finite = [(i, float(v)) for i, v in values if isinstance(v, int | float) and math.isfinite(v)]
    if policy.get("keep_best", True) and finite:
        keep.add(min(finite, key=lambda iv: -iv[1] if maximize else iv[1])[0])
    return [c for i, c in enumerate(saved) if i in keep]


def _nest(params: dict[str, Any], paths: Mapping[str, tuple[str, ...]]) -> dict[str, Any]:
    return nest({k: v for k, v in params.items() if not (isinstance(v, float) and math.isnan(v))}, paths)
