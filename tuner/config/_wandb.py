"""Keys of W&B's sweep schema that have no field of their own here: each read with its meaning
here (``metrics``, ``method: custom`` with ``scheduler``), or dropped with a one-line notice.

The sweep ``name`` is W&B's display name; :func:`folder_name` derives the results folder from it.
"""

from __future__ import annotations

import re
from typing import Any

from tuner.errors import Problem

# Top-level keys that mean nothing to a study run here, and why (one line each).
DROPPED = {
    "apiVersion": "the file format's version",
    "kind": "the file format's kind",
    "controller": "tuner is the sweep's controller, on this machine or the Ray cluster",
    "job": "a W&B Launch job; tuner runs the trainable",
    "image_uri": "a W&B Launch image; tuner runs the trainable",
}
# metric keys with no meaning here, and why.
DROPPED_METRIC = {
    "impute": "bayes counts an infeasible trial as the worst value seen and a pruned one by its last report",
    "impute_while_running": "searchers learn from ended trials only",
}
# ``method: custom`` with ``scheduler.engine``: the method here that does what that engine does.
ENGINES = {"optuna": "optuna", "ax": "bayes", "wandb": "bayes"}

_FOLDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def wandb_keys(data: dict[str, Any], source: str) -> tuple[list[str], list[Problem]]:
    """Read (in place) the W&B keys of a study file that have no field here: ``(notices, problems)``."""
    dropped = [(k, why) for k, why in DROPPED.items() if data.pop(k, None) is not None]
    notices = [f"{source}: ignoring W&B key '{k}' ({why})" for k, why in dropped]
    problems: list[Problem] = []
    if "tune" in data:  # wandb 0.8's Ray Tune sweeps: a Tune search written out, not W&B's schema
        data.pop("tune")
        problems.append(
            Problem("tune", "W&B's old Ray Tune sweep block is not read: write method and parameters instead")
        )
    if "metrics" in data:
        metrics = data.pop("metrics")
        if "metric" in data:
            problems.append(Problem("metrics", "give metric or metrics, not both (metrics is a list of several)"))
        elif isinstance(metrics, list) and len(metrics) == 1:
            data["metric"] = metrics[0]
        else:
            data["metric"] = metrics  # several objectives: the schema checks the list
    metric = data.get("metric")
    for i, one in enumerate(metric if isinstance(metric, list) else [metric]):
        if isinstance(one, dict) and any(k in one for k in DROPPED_METRIC):
            where = f"metric[{i}]" if isinstance(metric, list) else "metric"
            one = dict(one)
            for key, why in DROPPED_METRIC.items():
                if one.pop(key, None) is not None:
                    notices.append(f"{source}: ignoring W&B key '{where}.{key}' ({why})")
            if isinstance(metric, list):
                metric[i] = one
            else:
                data["metric"] = one
    if isinstance(data.get("metric"), list):
        data["metric"] = list(data["metric"])
    scheduler = data.pop("scheduler", None)
    if scheduler is not None or data.get("method") == "custom":
        notices += _custom(data, scheduler, source, problems)
    return notices, problems


def _custom(data: dict[str, Any], scheduler: Any, source: str, problems: list[Problem]) -> list[str]:
    """W&B's ``scheduler: {engine, source, optimizer, search_space}``: with ``method: custom``, the
    engine's search; with engine ``wandb`` and ``method`` grid, random or bayes, that method."""
    method = data.get("method")
    engine = scheduler.get("engine") if isinstance(scheduler, dict) else None
    if scheduler is not None and not isinstance(scheduler, dict):
        engines = ", ".join(ENGINES)
        problems.append(Problem("scheduler", f"must be a mapping with engine (one of {engines}), got {scheduler!r}"))
        return []
    if scheduler is not None and data.get("early_terminate") is not None:
        problems.append(Problem("scheduler", "cannot be used together with early_terminate (W&B's rule)"))
    if isinstance(scheduler, dict) and scheduler.get("search_space") and data.get("parameters") is None:
        problems.append(
            Problem(
                "parameters",
                "is required: scheduler.search_space (a function in scheduler.source) is not read here; "
                "write the space as parameters",
            )
        )
    notices: list[str] = []
    if method != "custom":  # W&B's engine wandb runs grid, random and bayes; the other engines need custom
        if engine != "wandb":
            problems.append(
                Problem("scheduler", f"engine {engine!r} is for method: custom (W&B's rule), got method {method!r}")
            )
            return []
        notices.append(f"{source}: scheduler engine wandb is W&B's own search: method {method} runs here as written")
    elif engine not in ENGINES:
        problems.append(
            Problem("scheduler.engine", f"must be one of {', '.join(ENGINES)} for method: custom, got {engine!r}")
        )
        data["method"] = "bayes"  # the rest is checked as for any model-based method; the engine is the error
        return []
    else:
        data["method"] = ENGINES[engine]
        notices.append(f"{source}: method custom with engine {engine}: run as method {ENGINES[engine]}")
    assert isinstance(scheduler, dict)
    own = [k for k in ("source", "optimizer", "search_space") if k in scheduler]
    if own:
        notices.append(
            f"{source}: ignoring W&B key(s) {', '.join(f'scheduler.{k}' for k in own)} "
            "(the searcher is built from method, searcher and parameters)"
        )
    unknown = sorted(set(scheduler) - {"engine", "source", "optimizer", "search_space"})
    if unknown:
        problems.append(Problem(f"scheduler.{unknown[0]}", "unknown key"))
    return notices


def folder_name(name: str) -> str:
    """The results folder of a sweep ``name``: the name itself when it is a safe folder name, else
    a slug of it (``"Tune Optimizer & Schedule"`` -> ``tune-optimizer-schedule``); ``""`` when the
    name has no letter or digit."""
    if _FOLDER.match(name):
        return name
    return re.sub(r"[^a-z0-9_.]+", "-", name.lower()).strip("-._")
