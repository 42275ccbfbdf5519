"""What a report draws from: a results folder read once."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from tuner.results import load_history, load_results
from tuner.results._store import BEST, STUDY, objectives
from tuner.space import Float, Int, Parameter, Space, parse_parameters


@dataclass
class StudyData:
    folder: Path
    study: dict[str, Any]
    trials: pd.DataFrame
    history: pd.DataFrame
    best: dict[str, Any] | None
    space: Space
    confirm: dict[str, Any] | None = None  # confirm.yaml, once ``confirm`` ran

    @property
    def metric(self) -> str:
        return objectives(self.study)[0][0]

    @property
    def maximize(self) -> bool:
        return objectives(self.study)[0][1]

    @property
    def objectives(self) -> list[tuple[str, bool]]:
        return objectives(self.study)

    @property
    def searched(self) -> dict[str, Parameter]:
        return self.space.searchable

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
        from tuner.config import load_study
        from tuner.plan import rungs

        et = self.study.get("early_terminate") or {}
        if et.get("type") not in ("asha", "hyperband"):
            return []
        spec = load_study(text=yaml.safe_dump(self.study, sort_keys=False), check_import=False).spec.scheduler
        if spec is None or getattr(spec, "max_t", None) is None:
            return []
        max_t = float(getattr(spec, "max_t", 0))
        return [r.step for r in rungs(spec, len(self.trials))] + [max_t]


def read(folder: str | Path) -> StudyData:
    path = Path(folder)
    trials = load_results(path)
    study = yaml.safe_load((path / STUDY).read_text(encoding="utf-8"))
    best = yaml.safe_load((path / BEST).read_text(encoding="utf-8")) if (path / BEST).exists() else None
    space, _ = parse_parameters(study.get("parameters"))
    confirm = path / "confirm.yaml"
    confirmed = yaml.safe_load(confirm.read_text(encoding="utf-8")) if confirm.exists() else None
    return StudyData(path, study, trials, load_history(path), best, space, confirmed)
