"""Which trials may start: the study's cap, the searcher's end, a stop, and how many at once."""

from __future__ import annotations

from tuner.config import Study
from tuner.errors import UserError


def slots_for(study: Study, places: int) -> int:
    """How many trials run at once, given how many workers of the study's size the cluster can
    place: refused when not even one trial fits (before anything is written)."""
    res = study.spec.resources
    if places < res.workers:
        need = f"{res.cpu:g} CPU" + (f" and {res.gpu:g} GPU" if res.gpu else "")
        raise UserError(
            f"resources: a trial needs {res.workers} worker(s) of {need} each; "
            f"this Ray cluster can place at most {places}"
        )
    return study.concurrency(places)


class Admission:
    """Counts the trials started and says whether another may start.

    A new trial starts while fewer than ``run_cap`` have, the searcher has not run out, and no
    stop was called (a target reached, too many failures, the time limit, an ``on_failure: stop``).
    """

    def __init__(self, run_cap: int | None) -> None:
        self.run_cap = run_cap
        self.launched = 0
        self.exhausted = False  # the searcher has nothing more to propose
        self.stop_reason: str | None = None

    def can_launch(self) -> bool:
        return (
            not self.exhausted and self.stop_reason is None and (self.run_cap is None or self.launched < self.run_cap)
        )

    def next_id(self) -> str:
        """The id the next trial gets (``t0001``, ``t0002``, ...)."""
        return f"t{self.launched + 1:04d}"

    def halt(self, reason: str) -> None:
        """Stop starting trials; the first reason given is the one kept."""
        if self.stop_reason is None:
            self.stop_reason = reason
