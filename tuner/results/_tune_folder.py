"""A Ray Tune experiment folder, read from its files without importing Ray.

``ray.tune.Tuner`` writes ``<storage>/<name>/``: ``experiment_state-<time>.json`` (each trial's
state: id, config, status, last result, the figures of every metric, checkpoints),
``tuner.pkl`` (the ``TuneConfig``: metric and mode) and a folder per trial with
``result.json`` (one result a line), ``progress.csv``, ``params.json`` and ``checkpoint_*/``.
The trials come back in the experiment state's order, which is the order Ray breaks ties in.
"""

from __future__ import annotations

import fnmatch
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

from tuner.errors import UserError
from tuner.results._analysis import TrialError, TrialResult
from tuner.results._pickle import Stub, attrs, read_pickle
from tuner.results._scopes import metric_analysis

STATE = "experiment_state-*.json"
TUNER_PKL = "tuner.pkl"
RESULT = "result.json"
FAILURE = re.compile(r"^Failure # \d+ \(occurred at [^)]*\)$", re.MULTILINE)  # error.txt's
PROGRESS = "progress.csv"


def is_tune_folder(path: str | os.PathLike[str]) -> bool:
    """A Ray Tune experiment folder (or its ``experiment_state-*.json``)."""
    p = Path(path)
    return (p.is_file() and fnmatch.fnmatch(p.name, STATE)) or (p.is_dir() and _state_file(p) is not None)


def _state_file(folder: Path) -> Path | None:
    names = fnmatch.filter(os.listdir(folder), STATE)
    return folder / max(names) if names else None  # the newest, as Ray takes it


def _decode(obj: dict[str, Any]) -> Any:
    """A value Ray's JSON encoder could not write as JSON comes as a pickle: read it as data."""
    if obj.get("_type") == "CLOUDPICKLE_FALLBACK" and isinstance(obj.get("value"), str):
        return read_pickle(bytes.fromhex(obj["value"]))
    return obj


def _plain(value: Any) -> Any:
    """``value`` with any :class:`Stub` in it written as its class name (a config must dump as YAML)."""
    if isinstance(value, Stub):
        return repr(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def read_tune_folder(path: str | os.PathLike[str]) -> tuple[Path, list[TrialResult], str | None, str | None]:
    """``(experiment folder, trials, metric, mode)``; metric and mode are the ``TuneConfig``'s,
    ``None`` where the experiment recorded none."""
    given = Path(path)
    state_path = given if given.is_file() else _state_file(given)
    if state_path is None:
        raise UserError(f"{path}: not a Ray Tune experiment folder (no {STATE})")
    folder = state_path.parent
    state = json.loads(state_path.read_text(encoding="utf-8"), object_hook=_decode)
    metric, mode = _tune_config(folder)
    trials = [
        _trial(folder, json.loads(t, object_hook=_decode), json.loads(m, object_hook=_decode))
        for t, m in state["trial_data"]
    ]
    return folder, trials, metric, mode


def _tune_config(folder: Path) -> tuple[str | None, str | None]:
    pkl = folder / TUNER_PKL
    if not pkl.is_file():
        return None, None
    state = read_pickle(pkl.read_bytes())
    config = attrs(state.get("_tune_config")) if isinstance(state, dict) else {}
    metric, mode = config.get("metric"), config.get("mode")
    return (metric if isinstance(metric, str) else None), (mode if isinstance(mode, str) else None)


def _trial(folder: Path, trial: dict[str, Any], meta: dict[str, Any]) -> TrialResult:
    trial_dir = folder / trial["relative_logdir"]
    history = trial_frame(trial_dir)
    analysis = meta.get("metric_analysis")
    if not isinstance(analysis, dict):  # not recorded: computed from the results as Ray would have
        analysis = metric_analysis(_results(trial_dir))
    checkpoints, latest = _checkpoints(trial_dir, meta.get("checkpoint_manager"))
    return TrialResult(
        trial_id=str(trial["trial_id"]),
        config=_plain(trial.get("config") or {}),
        metrics=dict(meta.get("last_result") or {}),
        metric_history=history,
        checkpoint=latest,
        status=str(trial.get("status")),
        path=str(trial_dir),
        metric_analysis=analysis,
        checkpoints=checkpoints,
        # a trial that failed and then finished on a retry keeps its error.txt; as Ray's Result, no error
        error=None if trial.get("status") == "TERMINATED" else _error(trial_dir, meta.get("error_filename")),
    )


def _results(trial_dir: Path) -> list[dict[str, Any]]:
    path = trial_dir / RESULT
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8").rstrip("\n")
    return [json.loads(line) for line in text.split("\n")] if text else []


def trial_frame(trial_dir: Path) -> pd.DataFrame:
    """A trial's results as Ray's ``ExperimentAnalysis.trial_dataframes`` has them: from
    ``result.json`` (nested keys joined by ``/``), else from ``progress.csv``."""
    if (trial_dir / RESULT).is_file():
        rows = _results(trial_dir)
        return pd.json_normalize(rows, sep="/") if rows else pd.DataFrame()
    if (trial_dir / PROGRESS).is_file():
        text = (trial_dir / PROGRESS).read_text(encoding="utf-8")
        return pd.read_csv(io.StringIO(text), dtype={"trial_id": str})
    return pd.DataFrame()


def _checkpoints(trial_dir: Path, manager: Any) -> tuple[list[tuple[str, dict[str, Any]]], str | None]:
    """The trial's checkpoints that Ray ranks, in its order, each with the result it was
    reported with, and its latest. Read from the recorded checkpoint manager (moved with the
    folder, as Ray does); without one, every ``checkpoint_*`` folder a result names."""
    if isinstance(manager, Stub):
        kept = [attrs(r) for r in attrs(manager).get("_checkpoint_results", [])]
        keep = attrs(attrs(manager).get("_checkpoint_config")).get("num_to_keep")
        if isinstance(keep, int) and keep > 0:  # the latest is kept beyond these, but not ranked
            kept = kept[-keep:]
        ranked = []
        for c in kept:
            path = _moved(trial_dir, c.get("checkpoint"))
            if path is not None:
                ranked.append((path, dict(c.get("metrics") or {})))
        latest = attrs(attrs(manager).get("_latest_checkpoint_result")).get("checkpoint")
        return ranked, _moved(trial_dir, latest)
    pairs = [
        (str(trial_dir / r["checkpoint_dir_name"]), r)
        for r in _results(trial_dir)
        if isinstance(r.get("checkpoint_dir_name"), str) and (trial_dir / r["checkpoint_dir_name"]).is_dir()
    ]
    return pairs, pairs[-1][0] if pairs else None


def _moved(trial_dir: Path, checkpoint: Any) -> str | None:
    """A recorded checkpoint's path inside the trial folder where it is now."""
    path = attrs(checkpoint).get("path")
    if not isinstance(path, str):
        return None
    _, inside, rest = path.partition(f"/{trial_dir.name}/")
    return str(trial_dir / (rest if inside else Path(path).name))


def _error(trial_dir: Path, name: Any) -> TrialError | None:
    """A failed trial's error from its ``error.txt``: the message of its last failure (Tune
    appends one block a failure, each under a ``Failure # N (occurred at ...)`` line), which is
    ``str()`` of the error Ray unpickles from ``error.pkl``; its last line is the exception's."""
    path = trial_dir / (name if isinstance(name, str) else "error.txt")
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8", errors="replace")
    blocks = FAILURE.split(text)
    message = blocks[-1].strip() if blocks else ""
    return TrialError(message) if message else None
