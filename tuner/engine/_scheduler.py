"""The scheduler interface: after each report, does the trial go on?"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar


class Scheduler(ABC):
    """Decides after each report whether a trial goes on: bookkeeping only, no clock, no I/O.

    Call order, per trial: ``add`` once when it starts; ``report`` for each result, in the order
    the trial produced them (other trials' calls interleave freely); then ``end`` once, with the
    trial's last ``(step, value)`` when it ended with a result (finished, pruned, stopped), or
    ``None`` when it is dropped without one (failed, never reported). Values are as the trainable
    reported them; the scheduler applies the study's direction.
    """

    prunes: ClassVar[bool] = True  # whether ``report`` may ever answer True

    @abstractmethod
    def add(self, trial_id: str) -> None:
        """A trial starts."""

    @abstractmethod
    def report(self, trial_id: str, step: float, value: float) -> bool:
        """Record a result of a trial; ``True``: stop the trial here."""

    @abstractmethod
    def end(self, trial_id: str, last: tuple[float, float] | None) -> None:
        """A trial ended, with its last ``(step, value)`` or without a result (``None``)."""


class NoScheduler(Scheduler):
    """Every trial runs to the end of its budget."""

    prunes = False

    def add(self, trial_id: str) -> None:
        pass

    def report(self, trial_id: str, step: float, value: float) -> bool:
        return False

    def end(self, trial_id: str, last: tuple[float, float] | None) -> None:
        pass
