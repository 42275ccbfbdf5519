"""A trial's end in the study's books: its record, the scheduler and the searcher told, the study's goals."""

from __future__ import annotations

from typing import Any

from tuner.config import Study
from tuner.engine import _goals as goals
from tuner.engine._admission import Admission
from tuner.engine._checkpoints import Checkpoints
from tuner.engine._judge import Judge
from tuner.engine._offload import SearcherThread
from tuner.engine._schedulers import Pruner
from tuner.engine._told import minimised_curve, outcome
from tuner.results import Recorder, TrialRecord
from tuner.status import FAILED, SCORED, Cause, Status


class Closing:
    """Ends and rewinds trials, live and in a replayed journal alike."""

    def __init__(
        self,
        study: Study,
        recorder: Recorder,
        pruner: Pruner,
        searcher: SearcherThread,
        checkpoints: Checkpoints,
        admission: Admission,
        judge: Judge,
    ) -> None:
        self.study, self.recorder, self.pruner, self.searcher = study, recorder, pruner, searcher
        self.checkpoints, self.admission, self.judge = checkpoints, admission, judge

    def rewind(self, trial_id: str, step: float | None, error: str | None, cause: Cause | None = None) -> None:
        """The trial goes on from its checkpoint at ``step``: reports and checkpoints after it are forgotten."""
        self.recorder.rewind(trial_id, step, error, cause=cause)
        self.checkpoints.rewind(trial_id, step)

    def finish(self, trial_id: str, status: Status, error: str | None, **details: Any) -> str | None:
        """Record the end of a trial and tell the scheduler and the searcher; returns what
        ``on_failure`` says for a failed one (``stop`` ends the study)."""
        self.recorder.end(trial_id, status, error, **details)
        rec = self.recorder.trials[trial_id]
        metric = self.study.metric
        last = {"step": rec.step, metric: rec.value} if status in SCORED and metric is not None else None
        self.pruner.remove(trial_id, last if rec.value is not None else None)
        action = rec.action = self.study.spec.failure_action(rec.cause) if status in FAILED else None
        if action == "stop" and not self.recorder.replaying:
            self.admission.halt(f"{trial_id} failed with {rec.cause} (on_failure: {{{rec.cause}: stop}})")
        curve = minimised_curve(self.study, self.recorder.curve(trial_id)) if self.pruner.prunes else None
        self.searcher.tell(trial_id, self._searched(rec), outcome(self.study, rec, action, curve))
        self._check_goals(rec)
        return action

    def _searched(self, rec: TrialRecord) -> dict[str, Any]:
        return {k: v for k, v in rec.params.items() if k in self.study.space.searchable}

    def _check_goals(self, rec: TrialRecord) -> None:
        reason = goals.reached(self.study, rec.trial_id, rec.status, rec.value)
        if reason is not None:
            self.admission.halt(reason)
        counts = self.recorder.counts()
        failed = sum(counts[s] for s in FAILED)
        any_value = self.judge.valued or (failed >= goals.FAIL_FAST and self.judge.any_value())
        reason = goals.too_many_failures(self.study, failed, any_value)
        if reason is not None:
            self.admission.halt(reason)
