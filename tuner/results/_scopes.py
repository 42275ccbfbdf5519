"""Ray Tune's scopes of a trial's metric, and its choice of the best trial, computed as Ray does.

:func:`metric_analysis` repeats what Ray's ``Trial.update_last_result`` keeps for every numeric
metric of every result (``max``, ``min``, ``avg``, ``last``, ``last-5-avg``, ``last-10-avg``),
with Ray's arithmetic, so that NaN and infinite values propagate exactly as they do there;
:func:`best_of` is ``ExperimentAnalysis.get_best_trial``'s loop over those figures.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from numbers import Number
from typing import Any

SCOPES = ("all", "last", "avg", "last-5-avg", "last-10-avg")
MODES = ("min", "max")
N_STEPS = (5, 10)
# Keys of a Tune result that are not metrics (Ray's DEBUG_METRICS): left out of the analysis.
NOT_METRICS = ("trial_id", "experiment_id", "date", "timestamp", "pid", "hostname", "node_ip", "config")


def flat(result: Mapping[str, Any], delimiter: str = "/") -> dict[str, Any]:
    """A nested result as one level, keys joined by ``/`` (Ray's ``flatten_dict``)."""
    out: dict[str, Any] = {}
    for key, value in result.items():
        if isinstance(value, Mapping):
            for sub, v in flat(value, delimiter).items():
                out[f"{key}{delimiter}{sub}"] = v
        else:
            out[str(key)] = value
    return out


def flat_in_rays_order(result: Mapping[str, Any], delimiter: str = "/") -> dict[str, Any]:
    """:func:`flat`, its keys in the order Ray's ``flatten_dict`` leaves them (a table's columns):
    each pass moves the entries of nested mappings, one level down, after the plain ones."""
    out = dict(result)
    while any(isinstance(v, Mapping) for v in out.values()):
        nested = {k: v for k, v in out.items() if isinstance(v, Mapping)}
        out = {k: v for k, v in out.items() if k not in nested}
        out.update({f"{k}{delimiter}{sub}": v for k, value in nested.items() for sub, v in value.items()})
    return out


def lookup(metric: str, result: Mapping[str, Any]) -> Any:
    """``result[metric]``, or the nested entry ``a/b`` names (Ray's ``unflattened_lookup``);
    ``KeyError`` when there is none."""
    if metric in result:
        return result[metric]
    node: Any = result
    for part in metric.split("/"):
        if isinstance(node, Mapping):
            node = node[part]
        elif isinstance(node, Sequence) and not isinstance(node, str):
            node = node[int(part)]
        else:
            raise KeyError(metric)
    return node


def metric_analysis(results: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every numeric metric's running figures over ``results`` (in the order reported), each
    result's step being its ``training_iteration``."""
    analysis: dict[str, dict[str, Any]] = {}
    windows: dict[str, dict[int, deque[Any]]] = {}
    for result in results:
        kept = {k: v for k, v in result.items() if k not in NOT_METRICS}
        step = result.get("training_iteration")
        for metric, value in flat(kept).items():
            if isinstance(value, Number):
                _update(analysis, windows, metric, value, step)
    return analysis


def _update(
    analysis: dict[str, dict[str, Any]],
    windows: dict[str, dict[int, deque[Any]]],
    metric: str,
    value: Any,
    step: Any,
) -> None:
    # Ray's _TrainingRunMetadata.update_metric, operation for operation (NaN makes max and min
    # forget, avg stays NaN for good: kept as Ray has it).
    if metric not in analysis:
        analysis[metric] = {"max": value, "min": value, "avg": value, "last": value}
        windows[metric] = {}
        for n in N_STEPS:
            analysis[metric][f"last-{n}-avg"] = value
            windows[metric][n] = deque([value], maxlen=n)
        return
    figures = analysis[metric]
    step = step or 1
    figures["max"] = max(value, figures["max"])
    figures["min"] = min(value, figures["min"])
    figures["avg"] = 1 / step * (value + (step - 1) * figures["avg"])
    figures["last"] = value
    for n in N_STEPS:
        window = windows[metric][n]
        window.append(value)
        figures[f"last-{n}-avg"] = sum(window) / len(window)


def nan_or_inf(value: Any) -> bool:
    return math.isnan(value) or math.isinf(value)


def best_of(
    analyses: Sequence[Mapping[str, Mapping[str, Any]]], metric: str, mode: str, scope: str, filter_nan_and_inf: bool
) -> int | None:
    """The index of the best of the trials whose metric analyses are ``analyses`` (in trial
    order), as Ray picks it: the first one wins a tie, trials without the metric (and, with
    ``filter_nan_and_inf``, those whose score is NaN or infinite) never win; ``None`` when no
    trial qualifies. ``scope`` ``all`` compares each trial's ``mode`` (its min or its max)."""
    best: int | None = None
    best_score: Any = None
    for i, analysis in enumerate(analyses):
        if metric not in analysis:
            continue
        score = analysis[metric][mode if scope == "all" else scope]
        if filter_nan_and_inf and nan_or_inf(score):
            continue
        if best_score is None or (mode == "max" and best_score < score) or (mode == "min" and best_score > score):
            best_score, best = score, i
    return best
