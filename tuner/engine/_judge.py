"""Report by report: does a trial go on? Its metric reported and finite, its budget, stop and
stopper, the scheduler, its memory."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from tuner.config import Stopping, Study, tune_result
from tuner.diagnose import LEAK_HINT, leak_per_step
from tuner.engine._schedulers import Pruner
from tuner.results import Recorder, TrialRecord
from tuner.status import Status

Verdict = tuple[Status | None, str | None]  # (status the trial ends with, why); (None, None): it goes on


class Judge:
    """Records each report and says whether the trial ends there."""

    def __init__(
        self, study: Study, recorder: Recorder, pruner: Pruner, max_steps: int | None, say: Callable[[str], None]
    ) -> None:
        self.study, self.recorder, self.pruner, self.max_steps, self.say = study, recorder, pruner, max_steps, say
        self.metric = study.metric
        self.stop = study.spec.stop  # stop: criteria that finish a trial early (Ray Tune's stop=)
        self.unreported: set[str] = set()  # stop's metrics a report lacked: said once
        # stopper: a Ray Tune stopper, asked at each report as Tune asks it (imported here: a resume re-imports it)
        self.stopper = None if study.spec.stopper is None else Stopping(study.spec.stopper)
        self.valued = False  # whether any trial has reported a finite value (the fail-fast rule)

    def report(self, trial_id: str, step: float, elapsed: float, metrics: dict[str, float]) -> Verdict:
        """Record a report and decide whether the trial ends here (with no ``metric``: its budget only)."""
        if self.metric is None:
            self.recorder.report(trial_id, step, elapsed, metrics)
            self.valued = True
            return ("finished", None) if self._done(trial_id, step, elapsed, metrics) else (None, None)
        if self.metric not in metrics:
            reported = ", ".join(sorted(metrics)) or "nothing"
            return "errored", f"metric {self.metric!r} was not reported at step {step} (reported: {reported})"
        self.recorder.report(trial_id, step, elapsed, metrics)
        value = metrics[self.metric]
        if not math.isfinite(value):
            return "nan", f"{self.metric} is {value} at step {step}"
        self.valued = True
        if self._done(trial_id, step, elapsed, metrics):
            return "finished", None
        if self.pruner.should_stop(trial_id, step, value):
            return "pruned", None
        return None, None

    def _done(self, trial_id: str, step: float, elapsed: float, metrics: dict[str, float]) -> bool:
        """Whether the trial has done enough at this report: the study's ``stopper`` says so (asked
        first, as Tune asks its stopper first, with Ray Tune's result), its budget is spent, or the
        report meets a criterion of ``stop``."""
        if self.stopper is not None:
            rec = self.recorder.trials.get(trial_id)
            result = tune_result(trial_id, step, elapsed, metrics, rec.config if rec is not None else {})
            if self.stopper.asks(trial_id, result):
                return True
        if self.max_steps is not None and step >= self.max_steps:
            return True
        if self.stop is None:
            return False
        for line in self.stop.unreported(trial_id, step, metrics, self.unreported):
            self.say(line)
        return self.stop.reached(step, elapsed, metrics) is not None

    def halt(self) -> str | None:
        """Why the study's ``stopper`` ends it now (its ``stop_all()``, or an error it raised); ``None``: it goes on."""
        return None if self.stopper is None else self.stopper.halt()

    def memory(self, rec: TrialRecord, rss: list[float], gpu: list[float]) -> Verdict:
        """Rank 0's memory so far (resident, and GPU memory allocated on CUDA): a steady growth of
        either is flagged once; ``("errored", why)`` when ``on_leak: stop`` ends the trial for it."""
        if rss:
            rec.usage["peak_rss_mb"] = round(max(rss[-1], rec.usage.get("peak_rss_mb", 0.0)), 1)  # live, until its end
        if rec.leak_mb_per_step is not None:
            return None, None
        which, mb = "", leak_per_step(rss)
        if mb is None and gpu:
            which, mb = "GPU ", leak_per_step(gpu)
        if mb is None:
            return None, None
        self.recorder.leak(rec.trial_id, round(mb, 1))
        found = which + LEAK_HINT.format(mb=mb)
        if self.study.spec.on_leak == "stop":
            self.say(f"{rec.trial_id}: {found}; stopped (on_leak: stop)")
            return "errored", f"{which}memory grows by {mb:.1f} MB a step"
        self.say(f"{rec.trial_id}: {found} (on_leak: stop ends such trials)")
        return None, None

    def any_value(self) -> bool:
        """Whether any trial has a finite value (one reported before a resume counts too)."""
        if not self.valued:
            self.valued = any(self._finite(r) for r in self.recorder.trials.values())
        return self.valued

    @staticmethod
    def _finite(rec: TrialRecord) -> Any:
        return rec.value is not None and math.isfinite(rec.value)
