"""What a report draws from: a results folder read once."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from tuner.config import Asha, Study
from tuner.results import BEST, CONFIRM, load_history, load_results, read_study
from tuner.space import Float, Int, Parameter


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


def read(folder: str | Path) -> StudyData:
    path = Path(folder)
    trials = load_results(path)
    study = read_study(path, check_import=False)
    best = yaml.safe_load((path / BEST).read_text(encoding="utf-8")) if (path / BEST).exists() else None
    confirm = path / CONFIRM
    confirmed = yaml.safe_load(confirm.read_text(encoding="utf-8")) if confirm.exists() else None
    return StudyData(path, study, trials, load_history(path), best, confirmed)
