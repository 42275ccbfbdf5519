"""Trials whose configuration changes while they train: a population's exploits, a schedule's steps.

A change is carried out through the checkpoint storage, never the driver's memory: the trial is
stopped, the checkpoint it is to go on from becomes its own (a donor's is copied into the
member's folder of the store first), its configuration is changed, and it is resumed from that
checkpoint like any interrupted trial. Every change is journaled, in one event with the copy's
path, before the trial is stopped, so a driver killed at any moment resumes the member either as
it was or from the copied checkpoint with its new values.

:class:`Population` also shares the slots: with more members than slots, a member that reaches a
boundary while others wait gives its slot up (it is resumed later from its checkpoint there), so
members advance side by side and each has peers to be compared with.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tuner.config import Pb2, Pbt, Study
from tuner.engine._checkpoints import Checkpoints
from tuner.engine._pb2 import PopulationBasedBandits
from tuner.engine._pbt import Exploit, PopulationBasedTraining
from tuner.results import Recorder, TrialRecord

Say = Callable[[str], None]


class Changes:
    """Decides, at a report, whether the trial is stopped to go on with other values (or later)."""

    def decide(self, record: TrialRecord, step: float, waiting: bool) -> bool:
        """``True``: stop the trial now; it is resumed from its own last checkpoint."""
        return False

    def replay(self, event: dict[str, Any]) -> None:
        """A journaled change, read back on resume."""

    @property
    def new_first(self) -> bool:
        """Whether members not started yet go before those waiting to be resumed."""
        return False


class Population(Changes):
    """Population-based training's exploits, carried out on the study's trials."""

    def __init__(
        self, study: Study, scheduler: PopulationBasedTraining, recorder: Recorder, checkpoints: Checkpoints, say: Say
    ) -> None:
        self.study, self.scheduler, self.recorder, self.checkpoints, self.say = (
            study,
            scheduler,
            recorder,
            checkpoints,
            say,
        )
        self.recorder.mutable = list(scheduler.mutations)
        if isinstance(scheduler, PopulationBasedBandits):  # its GP's data: each interval's values
            scheduler.values_of = lambda trial_id: self.recorder.trials[trial_id].params
        spec = study.spec.early_terminate
        self.max_t: int | None = spec.max_t if isinstance(spec, Pbt | Pb2) else None

    @property
    def new_first(self) -> bool:
        return True

    def decide(self, record: TrialRecord, step: float, waiting: bool) -> bool:
        trial_id = record.trial_id
        if not self.scheduler.due(trial_id):
            return False
        configs = {t: r.params for t, r in self.recorder.trials.items()}
        exploit = self.scheduler.exploit(trial_id, configs, self.checkpoints.at)
        if exploit is not None:
            return self._carry_out(exploit)
        own, _ = self.checkpoints.last(trial_id)
        return waiting and own == step  # its slot to a member that waits; nothing is lost

    def _carry_out(self, exploit: Exploit) -> bool:
        """The donor's checkpoint copied to the member's, its values changed, all journaled; a
        checkpoint that cannot be copied leaves the member as it was."""
        trial_id = exploit.trial_id
        try:
            path = self.checkpoints.copy(exploit.path, trial_id, exploit.donor_step)
        except Exception as exc:  # the donor's checkpoint is gone or unreadable: no exploit
            self.say(f"{trial_id}: cannot copy {exploit.donor}'s checkpoint ({exc}); it goes on as it was")
            return False
        self.recorder.exploit({**exploit.event(), "copy": path})  # one line: the change and where it goes on from
        self.checkpoints.replace(trial_id, exploit.donor_step, path, journal=False)
        shown = ", ".join(f"{k} {exploit.old.get(k)!r} -> {v!r}" for k, v in exploit.new.items())
        self.say(f"{trial_id}: exploits {exploit.donor} at step {exploit.donor_step:g} ({shown})")
        return True

    def replay(self, event: dict[str, Any]) -> None:
        self.recorder.exploit(event)
        if event.get("copy"):
            self.checkpoints.replace(event["trial"], event["donor_step"], event["copy"], journal=False)
        self.scheduler.applied(event["trial"], event["donor_step"], event.get("donor"))


class Schedule(Changes):
    """A schedule replayed (``train`` of a population's winner): at each step it names, the trial
    goes on from its own checkpoint there with the values the schedule gives from that step."""

    def __init__(self, schedule: dict[str, list[list[Any]]], recorder: Recorder, checkpoints: Checkpoints) -> None:
        self.recorder, self.checkpoints = recorder, checkpoints
        self.changes: dict[float, dict[str, Any]] = {}
        for name, points in schedule.items():
            for at, value in points:
                if at > 0:
                    self.changes.setdefault(float(at), {})[name] = value
        self.recorder.mutable = list(schedule)

    def decide(self, record: TrialRecord, step: float, waiting: bool) -> bool:
        change = self.changes.get(float(step))
        own, _ = self.checkpoints.last(record.trial_id)
        if change is None or own != step:
            return False
        old = {k: record.params.get(k) for k in change}
        event = {"trial": record.trial_id, "donor": record.trial_id, "step": step, "donor_step": step}
        self.recorder.exploit({**event, "path": None, "old": old, "new": dict(change)})
        return True

    def replay(self, event: dict[str, Any]) -> None:
        self.recorder.exploit(event)


def changes_for(study: Study, seed: int, recorder: Recorder, checkpoints: Checkpoints, say: Say) -> Changes:
    """The study's :class:`Population` when its ``early_terminate`` is one, else no changes."""
    spec = study.spec.early_terminate
    if not isinstance(spec, Pbt | Pb2):
        return Changes()
    return Population(study, population_scheduler(spec, study, seed), recorder, checkpoints, say)


def population_scheduler(spec: Pbt | Pb2, study: Study, seed: int) -> PopulationBasedTraining:
    """The decisions ``spec`` asks for, over the study's mutable parameters."""
    options: dict[str, Any] = {
        "mutations": spec.mutable(study.space),
        "perturbation_interval": spec.perturbation_interval,
        "quantile_fraction": spec.quantile_fraction,
        "maximize": study.maximize,
        "seed": seed,
    }
    if isinstance(spec, Pb2):
        return PopulationBasedBandits(**options)
    return PopulationBasedTraining(
        **options, resample_probability=spec.resample_probability, perturbation_factors=spec.perturbation_factors
    )
