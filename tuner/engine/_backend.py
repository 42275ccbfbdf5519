"""What the engine asks of a backend, and the events a backend gives back.

A backend runs trials on *slots* (a slot runs one trial at a time; on Ray it is a group of
long-lived worker processes). The engine decides everything else: which configuration runs
next, when a trial stops, whether a failure is retried, what is recorded.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.status import Cause

if TYPE_CHECKING:
    from tuner.engine._packing import Gpu
    from tuner.storage import CheckpointStore


@dataclass(frozen=True)
class Launch:
    """One trial (or one more attempt of it) for a slot to run."""

    trial_id: str
    config: dict[str, Any]
    seed: int
    max_steps: int | None  # the step at which the trial is finished (the scheduler's max_t); None: its own end
    checkpoint: str | None = None  # continue from this checkpoint (a retry, a resumed or requeued trial)
    accumulation: int = 1  # gradient accumulation steps; doubled by each out-of-memory retry
    final: bool = False  # a final run (train, confirm): the trainable may report on its test split


@dataclass(frozen=True)
class Report:
    """A trial reported its metrics at ``step``."""

    trial_id: str
    step: float
    time: float  # seconds into this attempt of the trial
    metrics: dict[str, float]
    checkpoint: str | None = None  # where the checkpoint saved with this report lies, in the study's store
    rss_mb: float | None = None  # rank 0's resident memory, for the leak rule
    gpu_mb: float | None = None  # and its GPU memory allocated, on CUDA
    gpu_reserved_mb: float | None = None  # the most torch has reserved on it so far (what packing needs)


@dataclass(frozen=True)
class End:
    """A trial's processes have all ended: it returned, stopped when asked, or failed."""

    trial_id: str
    error: str | None = None  # the failure in one line; None: it returned or stopped
    traceback: str | None = None  # the whole story, kept in the trial's log
    oom: bool = False  # out of memory (CUDA's error, or killed by the host's memory monitor)
    lost: bool = False  # its node left the cluster: not the trial's fault
    cause: Cause | None = None  # known where the failure was seen (``stalled``); else diagnosed by the engine
    hint: str | None = None
    usage: dict[str, float] = field(default_factory=dict)  # what its ranks used (peak_rss_mb, cpu_s, ...)


@dataclass(frozen=True)
class Memory:
    """A running trial's GPU memory has settled between its reports: the most it has reserved
    stayed the same for ``SETTLE_S`` seconds while its GPU computed (what ``gpus: auto`` needs to
    pack its neighbours before a first report that may be an epoch away)."""

    trial_id: str
    gpu_reserved_mb: float


Event = Report | End | Memory


class Backend(ABC):
    """Runs trials on slots for :class:`tuner.engine.Engine`.

    Call order: :meth:`check` and :meth:`capacity` before anything is written; :meth:`open`
    once; then, in the engine's loop, :meth:`watch`, :meth:`free`, :meth:`start`,
    :meth:`stop`, :meth:`abort` and :meth:`poll` in any order; :meth:`close` last (also after an
    interrupt or an error). Every started trial ends with exactly one :class:`End` from
    :meth:`poll`, except one ended by :meth:`abort`.
    """

    #: False: time is simulated (:meth:`now` jumps to the next event), so the engine asks the
    #: searcher on its own thread of control rather than on a background thread.
    realtime: bool = True
    #: False: the checkpoint paths in its reports name no files (the engine deletes none).
    writes_checkpoints: bool = True
    #: Where its trials run, as a notice names it.
    where: str = "this backend"

    def check(self, location: str) -> None:  # noqa: B027 - optional
        """Refuse (:class:`tuner.errors.UserError`) a checkpoint location this backend's nodes cannot share."""

    @abstractmethod
    def capacity(self) -> int:
        """How many workers of the study's size the cluster can place now."""

    @abstractmethod
    def open(self, slots: int, folder: Path, store: CheckpointStore) -> None:
        """Make ``slots`` slots (their processes may still be starting when it returns) for the
        study whose results go to ``folder`` and whose checkpoints go to ``store``."""

    def watch(self, wanted: int) -> int:
        """Grow to ``wanted`` slots if there is room; returns how many slots can run a trial now."""
        return wanted

    @abstractmethod
    def free(self, fits: Callable[[int], bool] | None = None) -> int | None:
        """An idle slot that can take a trial now (the one free longest) and for which ``fits``
        holds, or ``None``."""

    def gpus(self) -> dict[int, Gpu] | None:
        """With ``gpus: auto`` on GPUs: the GPU of each slot whose GPU is known (a slot not listed
        takes no trial yet); ``None``: trials are not packed by memory (explicit fractions, or no GPU)."""
        return None

    @abstractmethod
    def start(self, slot: int, launch: Launch) -> list[str]:
        """Start ``launch`` on ``slot``; returns the node of each of its ranks (may be empty)."""

    @abstractmethod
    def stop(self, trial_id: str) -> None:
        """Ask a running trial to stop; its :class:`End` follows (forced after a grace period)."""

    def abort(self, trial_id: str) -> list[str]:
        """End a trial now (a stalled one): each rank's stack as it was, then its processes are
        killed and its slot made ready again. No :class:`End` follows."""
        return []

    @abstractmethod
    def poll(self, timeout: float) -> list[Event]:
        """Every event that has arrived, waiting up to ``timeout`` seconds for the first."""

    @abstractmethod
    def now(self) -> float:
        """Monotonic seconds: the clock of limits and timers (simulated time on a simulated backend)."""

    def wall(self) -> float:
        """Seconds since the epoch, for the records (a simulated backend's are simulated too)."""
        import time

        return time.time()

    def observe(self, counts: dict[str, int], best: float | None) -> None:  # noqa: B027 - optional
        """The study's state, about once a second (the Ray backend exports it as metrics)."""

    def summary(self) -> dict[str, Any]:
        """What this backend adds to ``summary.yaml``."""
        return {}

    @abstractmethod
    def close(self) -> None:
        """Free every slot's processes."""
