"""What a report draws from: a results folder read once."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from tuner.config import Asha, Study, load_study
from tuner.errors import UserError
from tuner.results import CONFIRM, NO_METRIC, Tables, read_study, read_tables
from tuner.space import Float, Int, Parameter, flatten


@dataclass
class StudyData:
    folder: Path
    study: Study  # as it ran (its study.yaml)
    trials: pd.DataFrame
    history: pd.DataFrame
    best: dict[str, Any] | None
    confirm: dict[str, Any] | None = None  # confirm.yaml, once ``confirm`` ran

    @property
    def metric(self) -> str:
        assert self.study.metric is not None  # read() refuses a study with none
        return self.study.metric

    @property
    def maximize(self) -> bool:
        return self.study.maximize

    @property
    def objectives(self) -> list[tuple[str, bool]]:
        return self.study.objectives

    @property
    def searched(self) -> dict[str, Parameter]:
        return self.study.space.searchable

    @property
    def scored(self) -> pd.DataFrame:
        """Trials with a finite value, in start order."""
        ok = self.trials["value"].map(lambda v: v is not None and not pd.isna(v) and math.isfinite(v))
        return self.trials[ok]

    def is_log(self, name: str) -> bool:
        p = self.searched.get(name)
        return isinstance(p, Float | Int) and p.log

    def rung_steps(self) -> list[float]:
        """ASHA's milestones for this study, and its max_t last (empty without ASHA)."""
        from tuner.plan import rungs

        scheduler = self.study.spec.scheduler
        if not isinstance(scheduler, Asha) or scheduler.max_t is None:
            return []
        return [r.step for r in rungs(scheduler, len(self.trials))] + [float(scheduler.max_t)]


def read(folder: str | Path, metric: str | None = None, mode: str | None = None) -> StudyData:
    """A study's results folder, or a Ray Tune experiment's (``metric`` and ``mode`` where it
    recorded none), read as a study: see :func:`tune_study`."""
    tables = read_tables(folder, metric, mode)
    path = tables.folder
    if tables.tune:
        return StudyData(path, tune_study(tables), tables.trials, tables.history, tables.best())
    study = read_study(path, check_import=False)
    if study.metric is None:
        raise UserError(f"{folder}: the report charts the study's metric; {NO_METRIC}")
    confirm = path / CONFIRM
    confirmed = yaml.safe_load(confirm.read_text(encoding="utf-8")) if confirm.exists() else None
    return StudyData(path, study, tables.trials, tables.history, tables.best(), confirmed)


def tune_study(tables: Tables) -> Study:
    """A Ray Tune experiment as the study it amounts to: its metric and mode, and a parameter
    for each configuration value, inferred from the values the trials got (numbers as a range,
    log-scaled when positive over two decades or more; anything else as a list of values)."""
    flat = [flatten(c) for c in tables.configs.values()]
    names = list(dict.fromkeys(k for c in flat for k in c))
    inferred = {name: _parameter([c[name] for c in flat if c.get(name) is not None]) for name in names}
    raw = {
        "name": re.sub(r"[^A-Za-z0-9_.\-]", "_", tables.folder.name).lstrip("_.-") or "tune",
        "description": f"the Ray Tune experiment {tables.folder}, its parameters inferred from its trials",
        "trainable": "ray.tune:Tuner",
        "metric": {"name": tables.metric, "goal": "maximize" if tables.maximize else "minimize"},
        "method": "random",
        "run_cap": max(1, len(tables.trials)),
        "parameters": _nested(inferred) or {"config": {"value": "empty"}},
    }
    return load_study(text=yaml.safe_dump(raw, sort_keys=False), check_import=False)


def _parameter(values: list[Any]) -> dict[str, Any]:
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if numbers and len(numbers) == len(values) and len(set(numbers)) > 1:
        lo, hi = min(numbers), max(numbers)
        if all(isinstance(v, int) for v in numbers):
            return {"distribution": "int_uniform", "min": lo, "max": hi}
        log = lo > 0 and hi / lo >= 100
        return {"distribution": "log_uniform_values" if log else "uniform", "min": float(lo), "max": float(hi)}
    plain = [v if isinstance(v, int | float | str | bool) else repr(v) for v in values]
    distinct = list(dict.fromkeys(plain))
    return {"value": distinct[0] if distinct else None} if len(distinct) < 2 else {"values": distinct}


def _nested(flat: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Dotted names as nested ``parameters`` blocks (a parameter's own name has no dot)."""
    out: dict[str, Any] = {}
    for name, spec in flat.items():
        node = out
        *parents, leaf = name.split(".")
        for part in parents:
            node = node.setdefault(part, {"parameters": {}})["parameters"]
        node[leaf] = spec
    return out
