"""A backend on a virtual clock: trials are ``f(config, step) -> metrics`` and take no real time.

Each step's metrics may carry ``seconds``, the simulated time that step took (1 s without it).
Pending events sit in one heap ordered by ``(time, seq)``; :meth:`SimulatedBackend.poll` jumps
the clock to the earliest and returns every event due then, so a study of hours runs in the
time its driver needs to decide. A trial's next step is computed only once its report has been
taken and the engine has not stopped it meanwhile, so a trial holds at most one pending event and
nothing of a trial is kept after its :class:`End`.

A checkpoint is saved at every step as ``sim://<trial>/<step>``; a launch given one continues
after that step. Nothing is written to disk.

A step may also carry ``gpu_mb``, the GPU memory the trial holds after it: given the GPUs it
simulates (``gpus``, each one's memory in MB), the backend places slots on them as Ray would
with ``resources: {gpus: auto}`` and ends a trial whose step takes its GPU past its memory as
out of memory, as CUDA would. Without ``gpus`` it simulates a machine without a GPU. On
simulated GPUs, a step longer than ``SETTLE_S`` that holds more than the trial has told so far
says so ``SETTLE_S`` into it (a :class:`~tuner.engine.Memory` event, as a GPU worker does when
its memory settles).

A trainable of three arguments, ``f(config, step, state)``, keeps what it learns in ``state`` (a
dict it changes in place); a copy is kept with each checkpoint, and a launch given a checkpoint
(a retry, a resumed trial, a population member taking on a donor's) starts from that copy.
"""

from __future__ import annotations

import copy
import heapq
import inspect
import itertools
import math
import numbers
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tuner.engine import SETTLE_S, Backend, End, Event, Gpu, Launch, Memory, Report, per_gpu_bound

if TYPE_CHECKING:
    from pathlib import Path

    from tuner.config import Study
    from tuner.storage import CheckpointStore

SCHEME = "sim://"
DEFAULT_SECONDS = 1.0  # a step's simulated time when the trainable does not say
UNBOUNDED = 10**6  # slots when neither max_concurrent nor run_cap bounds the study

Trainable = Callable[..., Any]  # f(config, step) or f(config, step, state)


def checkpoint_path(trial_id: str, step: int) -> str:
    return f"{SCHEME}{trial_id}/{step}"


def checkpoint_step(path: str) -> int:
    """The step a ``sim://<trial>/<step>`` checkpoint was saved at."""
    if not path.startswith(SCHEME):
        raise ValueError(f"not a simulated checkpoint: {path!r}")
    return int(float(path.rpartition("/")[2]))


@dataclass(slots=True)
class _Trial:
    launch: Launch
    slot: int
    step: int  # the last step computed
    started: float  # when this attempt began, on the virtual clock
    token: int = -1  # seq of its one pending event; -1: none pending (its report was taken)
    ending: bool = False  # its End is pending: a stop changes nothing
    state: dict[str, Any] | None = None  # a stateful trainable's state
    gpu_mb: float = 0.0  # GPU memory it holds now (simulated)
    peak_gpu_mb: float = 0.0
    told_mb: float = 0.0  # the most GPU memory its reports and Memory events have said
    memory_token: int = -1  # seq of its pending Memory event


class SimulatedBackend(Backend):
    """Runs ``study``'s trainable as ``f(config, step)`` on a virtual clock (see the module)."""

    realtime = False
    writes_checkpoints = False
    where = "the simulated backend"

    def __init__(
        self,
        study: Study,
        trainable: Trainable | None = None,
        *,
        gpus: Sequence[float] = (),
        cpus: float | None = None,
    ) -> None:
        if trainable is None:
            from tuner.config import import_trainable

            trainable = import_trainable(study.trainable)
        self._fn: Trainable = trainable
        self._stateful = _arity(trainable) >= 3
        self._states: dict[str, dict[str, Any]] = {}  # checkpoint path -> the state saved with it
        spec = study.spec
        self._limit = spec.max_concurrent or spec.run_cap or UNBOUNDED
        self._workers = spec.resources.workers  # capacity is counted in workers of the study's size
        self._gpus = [Gpu(f"gpu{i}", float(mb)) for i, mb in enumerate(gpus)]
        if spec.resources.auto_gpus and self._gpus:  # as many slots a GPU as the CPUs allow
            cpus = cpus if cpus is not None else len(gpus) * spec.resources.cpu * 10**6
            self._limit = min(self._limit, len(gpus) * per_gpu_bound(cpus, len(gpus), spec.resources.cpu))
        self._auto = spec.resources.auto_gpus and bool(self._gpus)
        self._clock = 0.0
        self._heap: list[tuple[float, int, Event]] = []
        self._seq = itertools.count()
        self._slots = 0
        self._idle: dict[int, None] = {}  # an ordered set: free() lists slots in the order they freed
        self._trials: dict[str, _Trial] = {}
        self._taken: list[str] = []  # trials whose report poll just returned: their next step is due
        self._epoch = time.time()
        self._real = time.perf_counter()
        self.events = 0  # events returned by poll
        self.steps = 0  # trainable calls that returned a step
        self.ended = 0

    # -- the Backend interface ------------------------------------------------------------
    def capacity(self) -> int:
        return self._limit * self._workers

    def open(self, slots: int, folder: Path | None = None, store: CheckpointStore | None = None) -> None:
        self._epoch, self._real = time.time(), time.perf_counter()
        self._grow(slots)

    def watch(self, wanted: int) -> int:
        self._grow(wanted)
        return self._slots

    def free(self, fits: Callable[[int], bool] | None = None) -> int | None:
        return next((slot for slot in self._idle if fits is None or fits(slot)), None)

    def gpus(self) -> dict[int, Gpu] | None:
        """Slot ``i`` on GPU ``i`` modulo their number, as Ray spreads placement groups."""
        if not self._auto:
            return None
        return {slot: self._gpus[slot % len(self._gpus)] for slot in range(self._slots)}

    def start(self, slot: int, launch: Launch) -> list[str]:
        if slot not in self._idle:
            raise ValueError(f"slot {slot} is not free")
        if launch.trial_id in self._trials:
            raise ValueError(f"trial {launch.trial_id} is already running")
        del self._idle[slot]
        step = 0 if launch.checkpoint is None else checkpoint_step(launch.checkpoint)
        trial = self._trials[launch.trial_id] = _Trial(launch, slot, step, self._clock)
        if self._stateful:
            saved = self._states.get(launch.checkpoint) if launch.checkpoint is not None else None
            trial.state = copy.deepcopy(saved) if saved is not None else {}
        self._advance(trial)
        return []

    def stop(self, trial_id: str) -> None:
        trial = self._trials.get(trial_id)
        if trial is not None and not trial.ending:
            self._end(trial, End(trial_id, usage=self._usage(trial)))

    def abort(self, trial_id: str) -> list[str]:
        trial = self._trials.pop(trial_id, None)
        if trial is not None:  # its pending event, if any, is dropped when its time comes
            self._idle[trial.slot] = None
        return []

    def poll(self, timeout: float) -> list[Event]:
        """Every event due at the next event's time (the clock jumps there); never waits."""
        taken, self._taken = self._taken, []
        for trial_id in taken:
            trial = self._trials.get(trial_id)
            if trial is not None and trial.token == -1:  # not stopped since its report was taken
                self._advance(trial)
        out: list[Event] = []
        while self._heap and not out:
            due = self._heap[0][0]
            while self._heap and self._heap[0][0] == due:
                _, seq, event = heapq.heappop(self._heap)
                trial = self._trials.get(event.trial_id)
                if isinstance(event, Memory):
                    if trial is not None and trial.memory_token == seq and not trial.ending:
                        out.append(event)
                    continue
                if trial is None or trial.token != seq:
                    continue  # superseded: the trial was stopped or aborted after this was scheduled
                if isinstance(event, End):
                    self.ended += 1
                    del self._trials[event.trial_id]
                    self._idle[trial.slot] = None
                else:
                    trial.token = -1
                    self._taken.append(event.trial_id)
                out.append(event)
            if out:
                self._clock = max(self._clock, due)
        self.events += len(out)
        return out

    def now(self) -> float:
        return self._clock

    def wall(self) -> float:
        return self._epoch + self._clock

    def summary(self) -> dict[str, Any]:
        return {
            "simulated_s": round(self._clock, 3),
            "real_s": round(time.perf_counter() - self._real, 3),
            "steps": self.steps,
        }

    def close(self) -> None:
        self._heap.clear()
        self._trials.clear()
        self._taken.clear()
        self._idle.clear()
        self._states.clear()

    # -- the trials -----------------------------------------------------------------------
    def _grow(self, slots: int) -> None:
        for slot in range(self._slots, slots):
            self._idle[slot] = None
        self._slots = max(self._slots, slots)

    def _push(self, at: float, trial: _Trial, event: Event) -> None:
        seq = next(self._seq)
        trial.token = seq
        heapq.heappush(self._heap, (at, seq, event))

    def _end(self, trial: _Trial, event: End) -> None:
        """``event`` now; whatever the trial had pending is superseded."""
        trial.ending = True
        self._push(self._clock, trial, event)

    def _advance(self, trial: _Trial) -> None:
        """Compute the trial's next step and schedule its report (or its end)."""
        launch = trial.launch
        if launch.max_steps is not None and trial.step >= launch.max_steps:
            self._end(trial, End(launch.trial_id, usage=self._usage(trial)))
            return
        step = trial.step + 1
        try:
            out = self._fn(launch.config, step, trial.state) if self._stateful else self._fn(launch.config, step)
            if out is None:  # the trainable's own end
                self._end(trial, End(launch.trial_id, usage=self._usage(trial)))
                return
            seconds, gpu_mb, metrics = _parse(out)
            if gpu_mb is not None:
                self._hold(trial, gpu_mb)
        except Exception as exc:
            text = traceback.format_exc()
            line = traceback.format_exception_only(type(exc), exc)[-1].strip()
            oom = isinstance(exc, MemoryError)
            self._end(trial, End(launch.trial_id, error=line, traceback=text, oom=oom, usage=self._usage(trial)))
            return
        self.steps += 1
        trial.step = step
        at = self._clock + seconds
        path = checkpoint_path(launch.trial_id, step)
        if self._stateful:
            self._states[path] = copy.deepcopy(trial.state)  # type: ignore[arg-type]
        held = trial.gpu_mb if gpu_mb is not None else None
        if held is not None and held > trial.told_mb:
            if seconds > SETTLE_S and self._auto:  # a long step: its memory settles before its report
                trial.memory_token = next(self._seq)
                heapq.heappush(self._heap, (self._clock + SETTLE_S, trial.memory_token, Memory(launch.trial_id, held)))
            trial.told_mb = held
        self._push(at, trial, Report(launch.trial_id, step, at - trial.started, metrics, checkpoint=path, gpu_mb=held))

    def _hold(self, trial: _Trial, mb: float) -> None:
        """``trial`` holds ``mb`` of its GPU now: ``MemoryError`` when its GPU has not that much free."""
        trial.gpu_mb, trial.peak_gpu_mb = mb, max(trial.peak_gpu_mb, mb)
        if not self._auto:
            return
        gpu = self._gpus[trial.slot % len(self._gpus)]
        here = [t for t in self._trials.values() if t.slot % len(self._gpus) == trial.slot % len(self._gpus)]
        used = sum(t.gpu_mb for t in here if not t.ending)
        if used > gpu.total_mb:
            raise MemoryError(
                f"CUDA out of memory (simulated): {used:.0f} MB of {gpu.total_mb:.0f} MB in use on {gpu.key} "
                f"by {len(here)} trial(s)"
            )

    @staticmethod
    def _usage(trial: _Trial) -> dict[str, float]:
        return {"peak_gpu_reserved_mb": trial.peak_gpu_mb} if trial.peak_gpu_mb else {}


def _arity(fn: Callable[..., Any]) -> int:
    """How many positional arguments ``fn`` takes (2 when its signature cannot be read)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 2
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in params if p.kind in kinds)


def _parse(out: Any) -> tuple[float, float | None, dict[str, float]]:
    """``(seconds, gpu_mb, metrics)`` of what a step returned; ``ValueError`` names what is wrong."""
    if not isinstance(out, dict):
        raise TypeError(f"a simulated trainable returns a dict of metrics, got {type(out).__name__}")
    metrics = dict(out)
    seconds = metrics.pop("seconds", DEFAULT_SECONDS)
    gpu_mb = metrics.pop("gpu_mb", None)
    for name, value in (("seconds", seconds), ("gpu_mb", gpu_mb)):
        if value is None and name == "gpu_mb":
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    for name, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"metric {name!r} must be a number, got {value!r}")
    return float(seconds), None if gpu_mb is None else float(gpu_mb), {k: float(v) for k, v in metrics.items()}
