"""MLflow: a parent run for the study, a child run per trial (MLflow's own nesting tag)."""

from __future__ import annotations

import time
from typing import Any

from tuner.config import MlflowOptions
from tuner.tracking._base import StudyInfo, Tracker, TrialInfo, finite, scalar_params, whole_step

# How a trial's status reads in MLflow's run status (its own words, in tags, stay exact).
RUN_STATUS = {
    "finished": "FINISHED",
    "pruned": "FINISHED",
    "stopped": "KILLED",
    "errored": "FAILED",
    "nan": "FAILED",
    "oom": "FAILED",
}
PARENT_TAG = "mlflow.parentRunId"  # what MLflow's UI nests child runs by
TEXT_LIMIT = 5000  # a tag's value is at most 8000 characters in MLflow's stores


class MlflowTracker(Tracker):
    """Writes through ``MlflowClient`` (no global active run: the study's thread owns its runs).

    Tags: ``tuner.status``, ``tuner.cause`` and ``tuner.error`` on each trial's run,
    ``tuner.best`` on the best trial's, ``tuner.best_trial`` on the study's."""

    def __init__(self, options: MlflowOptions, state: dict[str, Any]) -> None:
        super().__init__(options, state)
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=options.tracking_uri)
        self.experiment_id: str | None = state.get("experiment_id")
        self.parent: str | None = state.get("parent")
        self.runs: dict[str, str] = dict(state.get("trials") or {})
        self.best: str | None = state.get("best")
        self.study: StudyInfo | None = None

    def state(self) -> dict[str, Any]:
        runs = dict(self.runs)
        return {"experiment_id": self.experiment_id, "parent": self.parent, "trials": runs, "best": self.best}

    def study_started(self, study: StudyInfo) -> None:
        self.study = study
        if self.parent is not None:
            self.client.update_run(self.parent, status="RUNNING")  # resumed: the same run goes on
            return
        name = self.options.experiment or study.name
        found = self.client.get_experiment_by_name(name)
        self.experiment_id = found.experiment_id if found is not None else self.client.create_experiment(name)
        tags = {"tuner.study": study.name, "tuner.folder": str(study.folder)}
        if study.description:
            tags["mlflow.note.content"] = study.description
        run = self.client.create_run(self.experiment_id, run_name=study.name, tags=tags)
        self.parent = run.info.run_id
        params = {"method": study.method, "backend": study.backend, "seed": study.seed}
        if study.metric is not None:
            params |= {"metric": study.metric, "goal": study.goal}
        self._params(self.parent, params)

    def trial_started(self, trial: TrialInfo) -> None:
        run_id = self.runs.get(trial.trial_id)
        if run_id is not None:
            self.client.update_run(run_id, status="RUNNING")
            self.client.set_tag(run_id, "tuner.status", "running")
            return
        assert self.study is not None and self.experiment_id is not None and self.parent is not None
        tags = {PARENT_TAG: self.parent, "tuner.study": self.study.name, "tuner.trial": trial.trial_id}
        run = self.client.create_run(
            self.experiment_id, run_name=f"{self.study.name}-{trial.trial_id}", tags={**tags, "tuner.status": "running"}
        )
        self.runs[trial.trial_id] = run.info.run_id
        self._params(run.info.run_id, trial.params)

    def trial_reported(self, trial_id: str, step: float, metrics: dict[str, float], index: int) -> None:
        from mlflow.entities import Metric

        at, whole = int(time.time() * 1000), whole_step(step, index)
        values = finite(metrics) | ({} if float(step).is_integer() else {"step": float(step)})
        rows = [Metric(name, value, at, whole) for name, value in values.items()]
        if rows:
            self.client.log_batch(self.runs[trial_id], metrics=rows)

    def trial_ended(self, trial: TrialInfo) -> None:
        run_id = self.runs[trial.trial_id]
        tags = {"tuner.status": trial.status}
        if trial.cause:
            tags["tuner.cause"] = trial.cause
        if trial.error:
            tags["tuner.error"] = trial.error[:TEXT_LIMIT]
        self._tags(run_id, tags)
        self.client.set_terminated(run_id, status=RUN_STATUS.get(trial.status, "FINISHED"))

    def study_ended(self, best: TrialInfo | None, running: list[str]) -> None:
        assert self.parent is not None
        for trial_id in running:  # continued by resume: their runs go on then
            if trial_id in self.runs:
                self.client.set_terminated(self.runs[trial_id], status="KILLED")
        if best is not None and best.trial_id in self.runs:
            before = self.best
            if before is not None and before != best.trial_id and before in self.runs:  # a resumed study's
                self.client.delete_tag(self.runs[before], "tuner.best")
            self.best = best.trial_id
            self.client.set_tag(self.runs[best.trial_id], "tuner.best", "true")
            self.client.set_tag(self.parent, "tuner.best_trial", best.trial_id)
            self.client.set_tag(self.parent, "tuner.best_run_id", self.runs[best.trial_id])
            if best.value is not None and self.study is not None and self.study.metric is not None:
                finals = finite({f"best_{self.study.metric}": best.value})
                for name, value in finals.items():
                    self.client.log_metric(self.parent, name, value)
        self.client.set_terminated(self.parent, status="KILLED" if running else "FINISHED")

    def _params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        rows = [Param(str(k), str(v)) for k, v in scalar_params(params).items()]
        for i in range(0, len(rows), 100):  # MLflow takes at most 100 params a batch
            self.client.log_batch(run_id, params=rows[i : i + 100])

    def _tags(self, run_id: str, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
