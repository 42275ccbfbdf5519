"""A study written event by event through tuner's own :class:`Recorder`, as a driver writes it:
the tests decide when each trial starts, reports and ends, so a "running" study is deterministic."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tuner.results import Recorder, TrialRecord, write_state
from tuner.space import nest

SPACE = {
    "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1},
    "layers": {"distribution": "int_uniform", "min": 1, "max": 4},
    "optimizer.name": {"values": ["adam", "sgd"]},
    "sizes": {"values": [[64, 64], [128]]},
    "dropout": {"distribution": "uniform", "min": 0.0, "max": 0.5},
    "epochs": {"value": 9},
}


class Written:
    """A results folder whose study runs as the test says."""

    def __init__(self, folder: Path, metric: Any = None, name: str = "live") -> None:
        metrics = metric if isinstance(metric, list) else [] if metric is None else [metric]
        self.objectives = [(m["name"], m.get("goal") == "maximize") for m in metrics]
        folder.mkdir(parents=True, exist_ok=True)
        first = self.objectives[0] if self.objectives else (None, False)
        self.recorder = Recorder(folder, first[0], first[1], every=0.0, objectives=self.objectives)
        study = {"name": name, "trainable": "trainables.toy:quadratic", "method": "random", "parameters": SPACE}
        self.recorder.save_study({**study, **({"metric": metric} if metric is not None else {})})
        write_state(folder, "running", 0.0)
        self.folder = folder
        self.count = 0
        self.clock = time.time() - 600.0  # each report takes 10 s on this clock: trials follow each other

    def start(self, **params: Any) -> str:
        self.count += 1
        trial_id = f"t{self.count:04d}"
        values = {"lr": 0.01, "layers": 2, "optimizer.name": "adam", "sizes": [64, 64], "dropout": 0.1, **params}
        self.recorder.start(TrialRecord(trial_id, values, nest(values), seed=self.count, started=self.clock))
        return trial_id

    def report(self, trial_id: str, step: float, **metrics: float) -> None:
        self.clock += 10.0
        self.recorder.report(trial_id, step, self.clock - self.recorder.trials[trial_id].started, metrics)

    def end(self, trial_id: str, status: str, error: str | None = None, cause: Any = None) -> None:
        self.recorder.end(trial_id, status, error, at=self.clock, cause=cause)  # type: ignore[arg-type]

    def trial(self, status: str, losses: list[float], **params: Any) -> str:
        """A whole trial: its reports of ``loss`` at steps 1, 2, ..., and its end."""
        trial_id = self.start(**params)
        for step, loss in enumerate(losses, 1):
            self.report(trial_id, step, loss=loss, accuracy=1 - loss)
        self.end(trial_id, status)
        return trial_id

    def done(self) -> None:
        self.recorder.flush(force=True)
        write_state(self.folder, "done", 1.0)
