"""Weights & Biases: a run per trial, grouped by the study, and one for the study's outcome."""

from __future__ import annotations

import secrets
import string
from typing import Any

from tuner.config import WandbOptions
from tuner.tracking._base import StudyInfo, Tracker, TrialInfo, finite, scalar_params, whole_step

FAILED = ("errored", "nan", "oom")


class WandbTracker(Tracker):
    """Each trial's run (``job_type: trial``, named by the trial) has its parameters as config,
    its metrics at their steps and ``status``, ``cause`` and ``error`` in its summary; the
    study's run (``job_type: study``) sums up the best trial. Runs are held open side by side
    (``reinit="create_new"``) by the driver; workers never talk to W&B."""

    def __init__(self, options: WandbOptions, state: dict[str, Any]) -> None:
        super().__init__(options, state)
        import wandb

        self.wandb = wandb
        self.ids: dict[str, str] = dict(state.get("trials") or {})  # trial -> W&B run id
        self.study_id: str | None = state.get("study")
        self.live: dict[str, Any] = {}  # trial -> its open run
        self.study: StudyInfo | None = None

    def state(self) -> dict[str, Any]:
        return {"study": self.study_id, "trials": dict(self.ids)}

    def study_started(self, study: StudyInfo) -> None:
        self.study = study

    def _init(self, name: str, key: str | None, job_type: str, config: dict[str, Any]) -> Any:
        assert self.study is not None
        opts = self.options
        return self.wandb.init(
            project=opts.project,
            entity=opts.entity,
            group=self.study.name,
            job_type=job_type,
            name=name,
            id=key or _run_id(),
            resume="allow" if key is not None else None,
            config=config,
            tags=list(opts.tags) or None,
            mode=opts.mode,
            dir=str(opts.dir or self.study.folder),
            reinit="create_new",
            settings=self.wandb.Settings(
                silent=True, console="off", x_disable_stats=True, save_code=False, x_save_requirements=False
            ),
        )

    def trial_started(self, trial: TrialInfo) -> None:
        run = self._init(trial.trial_id, self.ids.get(trial.trial_id), "trial", scalar_params(trial.params))
        self.ids[trial.trial_id] = run.id
        self.live[trial.trial_id] = run
        run.summary["status"] = "running"

    def trial_reported(self, trial_id: str, step: float, metrics: dict[str, float], index: int) -> None:
        values = finite(metrics) | ({} if float(step).is_integer() else {"step": float(step)})
        self.live[trial_id].log(values, step=whole_step(step, index))

    def trial_ended(self, trial: TrialInfo) -> None:
        run = self.live.pop(trial.trial_id)
        ended = {"status": trial.status, "cause": trial.cause, "error": trial.error}
        run.summary.update({k: v for k, v in ended.items() if v is not None})
        run.finish(exit_code=1 if trial.status in FAILED else 0)

    def study_ended(self, best: TrialInfo | None, running: list[str]) -> None:
        for trial_id in running:
            run = self.live.pop(trial_id, None)
            if run is not None:  # continued by resume, under the same run id
                run.summary["status"] = "interrupted"
                run.finish(exit_code=1)
        assert self.study is not None
        run = self._init(self.study.name, self.study_id, "study", {"method": self.study.method})
        self.study_id = run.id
        run.summary.update({"status": "interrupted" if running else "done", "trials": len(self.ids)})
        if best is not None:
            run.summary.update({"best_trial": best.trial_id, "best_value": best.value, "best_params": best.params})
        run.finish()


def _run_id() -> str:
    """A new W&B run id (eight lowercase letters and digits, as W&B makes them)."""
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
