"""A study's results folder: trials and history as parquet, the best as YAML, written atomically."""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

TRIALS = "trials.parquet"
HISTORY = "history.parquet"
BEST = "best.yaml"
STUDY = "study.yaml"
HANDED = "handed.pkl"  # objects a Python script handed over (the trainable, a stopper), for Tuner.restore
SUMMARY = "summary.yaml"
# Columns that studies recorded under an earlier name: read under today's.
OLD_NAMES = {"gpu_util": "gpu_device_busy"}  # it was always the whole device's busy fraction


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Write through a temporary file in the same folder, then rename over ``path``. The file gets
    the permissions of any other file the user creates (0666 less the umask), not mkstemp's 0600:
    a results folder on a shared disk stays readable as its logs and checkpoints are."""
    tmp = str(path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_yaml(path: Path, data: Any) -> None:
    text = yaml.safe_dump(data, sort_keys=False)
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_frame(path: Path, frame: pd.DataFrame) -> None:
    atomic_write(path, lambda p: frame.to_parquet(p, index=False))


def new_study_dir(storage: Path, name: str) -> Path:
    """``storage/name``, or ``name-2``, ``name-3``... so that no earlier run is overwritten."""
    storage.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        candidate = storage / (name if n == 1 else f"{name}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            if not any(candidate.iterdir()):  # left empty by a run killed as it began
                return candidate
    raise RuntimeError(f"too many runs named {name!r} in {storage}")


def _study_dir(path: str | os.PathLike[str]) -> Path:
    from tuner.errors import UserError

    folder = Path(path)
    if not (folder / TRIALS).exists():
        raise UserError(f"{folder}: not a tuner results folder (no {TRIALS})")
    return folder


def load_results(path: str | os.PathLike[str]) -> pd.DataFrame:
    """One row per trial: id, status, ``value`` (last metric), ``best_value``, ``params_*``..."""
    frame = pd.read_parquet(_study_dir(path) / TRIALS)
    old = {k: v for k, v in OLD_NAMES.items() if k in frame and v not in frame}
    return frame.rename(columns=old) if old else frame


def load_history(path: str | os.PathLike[str]) -> pd.DataFrame:
    """One row per report: trial id, step, seconds since the trial started, each metric."""
    return pd.read_parquet(_study_dir(path) / HISTORY)


NO_METRIC = "the study has no metric, so no trial is ranked and there is no best"


def load_best(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The contents of ``best.yaml``: trial id, metric, params and the full config."""
    from tuner.errors import UserError

    best = _study_dir(path) / BEST
    study = _study_dir(path) / STUDY
    if not best.exists() and study.is_file() and not objectives(yaml.safe_load(study.read_text(encoding="utf-8"))):
        raise UserError(
            f"{path}: {NO_METRIC} (its trials and every metric they reported: python -m tuner results {path})"
        )
    if not best.exists():
        raise UserError(f"{path}: no best trial (every trial failed, or the study has not finished one)")
    data: dict[str, Any] = yaml.safe_load(best.read_text(encoding="utf-8"))
    return data


def objectives(study: dict[str, Any]) -> list[tuple[str, bool]]:
    """``(name, maximize)`` of each metric of a stored ``study.yaml`` (one, or several; none
    for a study with no metric)."""
    metric = study.get("metric")
    metrics = metric if isinstance(metric, list) else [] if metric is None else [metric]
    return [(str(m["name"]), m.get("goal", "minimize") == "maximize") for m in metrics]


def missing(value: Any) -> bool:
    """An empty cell of a results table: ``None`` or NaN (a conditional parameter left out)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def row_params(row: Any) -> dict[str, Any]:
    """A ``trials.parquet`` row's parameters as Python values (``np.int64(3)`` -> ``3``), the
    empty cells left out."""
    return {
        str(k).removeprefix("params_"): v.item() if hasattr(v, "item") else v
        for k, v in row.items()
        if str(k).startswith("params_") and not missing(v)
    }
