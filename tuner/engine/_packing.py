"""How many trials share a GPU with ``resources: {gpus: auto}``: decided from measured memory.

Pure decisions over plain numbers (no Ray, no torch). A backend places a study's slots on GPUs
(as many slots a GPU as the CPUs allow: :func:`per_gpu_bound`) and says which GPU each slot
uses; :class:`Packing` then says which of those slots may take a trial now:

- A trial alone on a GPU may always start (its own out-of-memory is its configuration's, and
  ``on_oom`` decides what follows).
- Next to running trials, a trial starts only when every one of them has a known appetite and
  the estimates of all of them fit in the GPU's memory less the headroom and less a CUDA
  context for each worker process on that GPU (every slot's worker keeps one, busy or idle: it
  readied CUDA when it started). Before anything is measured, the first trial on a GPU runs
  alone until it reports its memory (or ends), or until its memory has settled
  (:class:`~tuner.engine.Memory`: the most it reserved unchanged for ``SETTLE_S`` seconds of
  computing), whichever comes first.
- A configuration's estimate is the largest peak measured for trials with the same values of
  its memory-relevant parameters (:func:`memory_parameters`: sizes, counts and choices; not real
  numbers such as a learning rate), else the largest peak any trial has had. A
  configuration never seen is thus assumed to need as much as the hungriest one so far; it
  can only be underestimated when it is larger than everything measured, which the headroom
  and the back-off below absorb.
- An out-of-memory with neighbours on its GPU is not the configuration's fault: the trial goes
  on (from its last checkpoint) with fewer neighbours, and that GPU, and every GPU of the same
  memory (the same model: the same trials would fail there too), takes at most one trial fewer
  than failed, from then on (the limit never climbs back).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

HEADROOM = 0.15  # of each GPU's memory, left free: allocator fragmentation, a peak not yet seen
CONTEXT_MB = 512.0  # per worker process on a GPU: its CUDA context and libraries, outside torch's counters
MOST_PER_GPU = 16  # slots a GPU at most, however many CPUs there are
SETTLE_S = 2.0  # a trial's reserved GPU memory unchanged this long while its GPU computes: its appetite


def per_gpu_bound(cpus: float, gpus: int, cpus_per_trial: float) -> int:
    """The most trials the CPUs allow on each GPU (at least 1, at most ``MOST_PER_GPU``)."""
    if gpus <= 0:
        return 0
    return max(1, min(MOST_PER_GPU, math.floor(cpus / cpus_per_trial / gpus + 1e-9)))


def memory_parameters(space: Any) -> list[str]:
    """Of a :class:`tuner.space.Space`'s searched parameters, those that may change a trial's
    memory: integers (widths, depths, batch sizes), choices, and real ones on whole numbers."""
    from tuner.space import Float

    return [name for name, p in space.searchable.items() if not (isinstance(p, Float) and not p.integer)]


@dataclass(frozen=True)
class Gpu:
    """One GPU as the backend sees it: ``key`` is the same for every slot on it."""

    key: str
    total_mb: float


@dataclass
class _Trial:
    gpu: Gpu
    key: tuple[Any, ...]


class Packing:
    """Which slot may take a trial now, from the trials running on each GPU and what they used.

    Call order: :meth:`admits` to pick a slot, :meth:`started` when a trial starts on it,
    :meth:`measured` at each of its reports with a GPU memory figure, :meth:`settled` when its
    memory settles between reports, :meth:`ended` at its end.
    """

    def __init__(self, relevant: list[str], headroom: float = HEADROOM, context_mb: float = CONTEXT_MB) -> None:
        self.relevant = list(relevant)
        self.headroom, self.context_mb = headroom, context_mb
        self.peaks: dict[tuple[Any, ...], float] = {}  # memory key -> the largest peak measured (MB)
        self.largest: float | None = None  # the largest peak of any trial
        self.ceiling: dict[float, int] = {}  # GPUs of this memory -> the most trials each may run (after an OOM)
        self.running: dict[str, _Trial] = {}

    def key(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(repr(params.get(name)) for name in self.relevant)

    def estimate(self, params: Mapping[str, Any] | None) -> float | None:
        """MB a trial of ``params`` is expected to reserve at its peak; ``None``: nothing measured
        yet. ``params=None``: a configuration not yet known (the least any known one needs)."""
        if params is None:
            return min(self.peaks.values()) if self.peaks else None
        return self.peaks.get(self.key(params), self.largest)

    def on(self, gpu: str) -> list[str]:
        """The trials running on the GPU of key ``gpu``."""
        return [t for t, run in self.running.items() if run.gpu.key == gpu]

    def limit(self, gpu: Gpu) -> int | None:
        """The most trials ``gpu`` may run, after an out-of-memory on a GPU of its size; ``None``:
        memory alone decides."""
        return self.ceiling.get(gpu.total_mb)

    def admits(self, gpu: Gpu, params: Mapping[str, Any] | None, workers: int = 0) -> bool:
        """Whether a trial of ``params`` may start on ``gpu`` next to the trials running there
        (``params=None``: whether some known configuration could); ``workers``: the processes
        holding a CUDA context on ``gpu`` (its slots' workers; at least one a trial)."""
        here = self.on(gpu.key)
        if not here:
            return True
        limit = self.limit(gpu)
        if limit is not None and len(here) >= limit:
            return False
        needs = [self.peaks.get(self.running[t].key, self.largest) for t in here] + [self.estimate(params)]
        if any(n is None for n in needs):
            return False  # an appetite not measured yet: it runs alone until it is
        used = sum(n for n in needs if n is not None) + self.context_mb * max(workers, len(needs))
        return used <= gpu.total_mb * (1 - self.headroom)

    def started(self, trial_id: str, gpu: Gpu, params: Mapping[str, Any]) -> None:
        self.running[trial_id] = _Trial(gpu, self.key(params))

    def measured(self, trial_id: str, mb: float) -> None:
        """A running trial's GPU memory now: its configuration needs at least this much."""
        run = self.running.get(trial_id)
        if run is not None and mb > 0:
            self._peak(run.key, mb)

    def settled(self, trial_id: str, mb: float) -> None:
        """A running trial's memory settled at ``mb`` between its reports (:class:`~tuner.engine.Memory`).
        Taken as its configuration's appetite only where it tells something safe: the trial is
        alone on its GPU (settling is judged while the device computes, and next to others their
        kernels count too: a trial still loading its data could look settled), or it raises an
        appetite already measured."""
        run = self.running.get(trial_id)
        if run is not None and (len(self.on(run.gpu.key)) == 1 or run.key in self.peaks):
            self.measured(trial_id, mb)

    def ended(self, trial_id: str, peak_mb: float | None, oom: bool = False) -> int:
        """A trial ended with ``peak_mb`` reserved at its peak (when measured). Returns how many
        neighbours it had on its GPU when it ran out of memory (``oom``); with one or more, that
        GPU's limit (and that of every GPU of its size) backs off below the count that failed."""
        run = self.running.pop(trial_id, None)
        if run is None:
            return 0
        if peak_mb:
            self._peak(run.key, peak_mb)
        if not oom:
            return 0
        neighbours = len(self.on(run.gpu.key))
        if neighbours:
            failed, size = neighbours + 1, run.gpu.total_mb
            self.ceiling[size] = max(1, min(self.ceiling.get(size, failed), failed - 1))
        return neighbours

    def _peak(self, key: tuple[Any, ...], mb: float) -> None:
        self.peaks[key] = max(self.peaks.get(key, 0.0), mb)
        self.largest = max(self.largest or 0.0, mb)
