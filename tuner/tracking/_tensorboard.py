"""TensorBoard: a run per trial, its learning curves, and its parameters and final metrics in the
HParams view (written with tensorboardX)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tuner.config import TensorboardOptions
from tuner.tracking._base import StudyInfo, Tracker, TrialInfo, finite, whole_step


def _scalar(value: Any) -> bool:
    return isinstance(value, int | float | bool | str) and not (isinstance(value, float) and math.isnan(value))


class TensorboardTracker(Tracker):
    """``<dir>/<trial_id>/`` for each trial; a resumed trial's run gets a second event file
    in the same folder, which TensorBoard reads as one run."""

    def __init__(self, options: TensorboardOptions, state: dict[str, Any]) -> None:
        super().__init__(options, state)
        self.folder = Path(options.dir)
        self.writers: dict[str, Any] = {}

    def study_started(self, study: StudyInfo) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)

    def trial_started(self, trial: TrialInfo) -> None:
        from tensorboardX import SummaryWriter

        self.writers[trial.trial_id] = SummaryWriter(logdir=str(self.folder / trial.trial_id))

    def trial_reported(self, trial_id: str, step: float, metrics: dict[str, float], index: int) -> None:
        writer = self.writers[trial_id]
        for name, value in finite(metrics).items():
            writer.add_scalar(name, value, whole_step(step, index))

    def trial_ended(self, trial: TrialInfo) -> None:
        from tensorboardX.summary import hparams

        writer = self.writers.pop(trial.trial_id)
        params = {k: (v.item() if hasattr(v, "item") else v) for k, v in trial.params.items()}
        params = {k: v for k, v in params.items() if _scalar(v)}
        params["status"] = trial.status
        finals = {f"hparam/{k}": v for k, v in finite(trial.metrics).items()}
        for summary in hparams(params, finals):
            writer.file_writer.add_summary(summary)
        for name, value in finals.items():
            writer.add_scalar(name, value)
        writer.close()

    def study_ended(self, best: TrialInfo | None, running: list[str]) -> None:
        for writer in self.writers.values():  # interrupted: their runs go on after resume
            writer.close()
        self.writers.clear()
