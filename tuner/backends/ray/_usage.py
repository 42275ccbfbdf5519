"""What one rank of a trial used: memory, CPU and GPU, measured while it runs.

A :class:`Usage` is started with the trial and read at its end. A daemon thread samples the
process's resident memory (and, where a GPU is in use, its utilisation through NVML) every
``EVERY_S`` seconds; CPU seconds are the process's (all its threads: torch's intra-op pool
included, DataLoader worker processes not); GPU memory is torch's own peak counters, which
:func:`reset_memory` starts again before each trial. No Ray, and nothing here may raise into the
trial: a figure that cannot be read is left out, and a GPU figure left out says why
(``gpu_util_note``).

GPU utilisation comes in two figures: ``gpu_device_busy``, the share of time the whole device
ran a kernel (every process on it: packed neighbours included), and ``gpu_util_own``, this
process's own share of the SMs where NVML gives per-process utilisation. A trial shorter than
one sampling period is sampled once at its end.

For ``gpus: auto``, rank 0 also says when the trial's GPU memory has settled (:class:`Settled`):
the most it reserved unchanged for ``SETTLE_S`` seconds while the device computed. Packing
needs a trial's appetite, and a trial may report only once an epoch.

:func:`combine` turns the ranks' figures into the trial's: the largest rank for memory, the
sum for CPU seconds, the mean for GPU utilisation.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from tuner.engine import SETTLE_S

EVERY_S = 0.25
MEAN = ("gpu_device_busy", "gpu_util_own")  # averaged over ranks
NOTE = "gpu_util_note"  # why a GPU utilisation figure is missing
FIGURES = ("peak_rss_mb", "cpu_s", "peak_gpu_mb", "peak_gpu_reserved_mb", *MEAN)
FIELDS = (*FIGURES, NOTE)


def rss_mb() -> float | None:
    """This process's resident memory now (Linux), ``None`` elsewhere."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def cuda() -> Any:
    """``torch.cuda`` when this process has used CUDA, else ``None`` (never initialises it)."""
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
            return torch.cuda
    except Exception:
        return None
    return None


def reset_memory(torch: Any, collect: bool = True) -> dict[str, float]:
    """Free what earlier trials left in this process and start torch's memory counters again.

    Collects garbage (a model kept alive by a reference cycle), then, where this process has
    used CUDA, waits for its kernels, returns the cached blocks to the device and resets the
    peak counters, so that every memory figure after it is the next trial's own and a packed
    neighbour can use what the last trial no longer holds. Never initialises CUDA. Returns what
    it did: ``collected`` objects, and on CUDA ``reserved_mb`` left (memory still referenced).
    ``collect=False`` skips the collection (a full one costs 0.1-0.2 s with torch loaded), for a
    caller that has just collected.
    """
    done: dict[str, float] = {"collected": float(gc.collect()) if collect else 0.0}
    gpu = torch.cuda
    if gpu.is_available() and gpu.is_initialized():
        gpu.synchronize()
        gpu.empty_cache()
        gpu.reset_peak_memory_stats()
        done["reserved_mb"] = round(gpu.memory_reserved() / 2**20, 1)
    return done


class GpuUtil:
    """NVML's utilisation of one device (torch's index ``device``) over one trial: the device's
    busy fraction at each :meth:`sample`, and this process's share of the SMs in each of NVML's
    per-process sampling periods since ``since`` (the trial's start, epoch seconds; a period NVML
    lists without this process counts as 0). :meth:`figures` samples once more when nothing was
    sampled (a short trial), and names the reason for a figure it cannot give."""

    def __init__(self, device: int, since: float | None = None) -> None:
        self.device = device
        self._nvml: Any = None
        self._busy: list[float] = []
        self._own: list[float | None] = []  # per NVML period: this process's SM share, None: not listed
        self._seen_us = int((time.time() if since is None else since) * 1e6)  # later per-process samples: the trial's
        self._note: str | None = None  # why the device's figure cannot be read
        self._own_note: str | None = None  # why this process's share cannot be read

    def sample(self) -> float | None:
        """The device's busy percentage now (``None``: NVML cannot say)."""
        if self._note is not None:
            return None
        try:
            if self._nvml is None:
                import pynvml

                pynvml.nvmlInit()
                self._nvml = (pynvml, pynvml.nvmlDeviceGetHandleByIndex(_physical_index(self.device)))
            nvml, handle = self._nvml
            busy = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        except Exception as exc:  # optional: without NVML there is no utilisation figure
            self._note = _one_line(f"NVML gives no utilisation here ({type(exc).__name__}: {exc})")
            return None
        self._busy.append(busy)
        self._own_share()
        return busy

    def _own_share(self) -> None:
        if self._own_note is not None or self._nvml is None:
            return
        nvml, handle = self._nvml
        try:
            samples = nvml.nvmlDeviceGetProcessUtilization(handle, self._seen_us)
        except Exception as exc:
            if getattr(exc, "value", None) == getattr(nvml, "NVML_ERROR_NOT_FOUND", object()):
                return  # no new period yet
            self._own_note = _one_line(f"NVML gives no per-process utilisation here ({type(exc).__name__}: {exc})")
            return
        if not samples:
            return
        self._seen_us = max(self._seen_us, *(int(s.timeStamp) for s in samples))
        mine = [float(s.smUtil) for s in samples if int(s.pid) == os.getpid()]
        self._own.append(max(mine) if mine else None)

    def figures(self) -> dict[str, Any]:
        if not self._busy:
            self.sample()  # a trial shorter than one sampling period
        elif not self._own:
            self._own_share()
        out: dict[str, Any] = {}
        if self._busy:
            out["gpu_device_busy"] = round(sum(self._busy) / len(self._busy), 1)
        if any(v is not None for v in self._own):
            out["gpu_util_own"] = round(sum(v or 0.0 for v in self._own) / len(self._own), 1)
        note = self._note or self._own_note
        if note is None and "gpu_util_own" not in out:
            note = (
                "NVML's per-process samples never named this process (in a container: the host's process ids)"
                if self._own
                else "NVML took no per-process sample during the trial"
            )
        if note is not None:
            out[NOTE] = note
        return out


class Settled:
    """Whether a trial's GPU memory has settled, from samples of the most it has reserved and of
    the device's busy percentage: a level is settled once it has stayed the same for ``settle_s``
    seconds in which the device computed in at least half the samples (memory that waits for data
    loading or a compilation is not yet what training takes). Each level is told once, and only
    one above the last told (a report's figure counts as told)."""

    def __init__(self, settle_s: float = SETTLE_S) -> None:
        self.settle_s = settle_s
        self.told = 0.0
        self._level: float | None = None
        self._since = 0.0
        self._samples = self._busy = 0

    def sample(self, now: float, reserved_mb: float | None, busy: float | None) -> float | None:
        """A sample at ``now`` (seconds); returns the settled level to tell, else ``None``."""
        if not reserved_mb or reserved_mb <= self.told:
            self._level = None
            return None
        if reserved_mb != self._level:
            self._level, self._since, self._samples, self._busy = reserved_mb, now, 0, 0
        self._samples += 1
        self._busy += bool(busy)
        if now - self._since < self.settle_s or 2 * self._busy < self._samples:
            return None
        self.told, self._level = max(self.told, reserved_mb), None  # a report may have told more meanwhile
        return reserved_mb


class Usage:
    """One rank's use of the machine over one trial; ``stop()`` returns the figures. With
    ``settled``, it is called with the trial's GPU memory each time that settles at a new level."""

    def __init__(
        self, every: float = EVERY_S, settled: Callable[[float], None] | None = None, settle_s: float = SETTLE_S
    ) -> None:
        self.every = every
        self._settled = settled
        self.settling = Settled(settle_s)
        self._cpu0 = time.process_time()
        self._began = time.time()
        self._peak_rss = rss_mb() or 0.0
        self._gpu: GpuUtil | None = None  # from the first sample with CUDA in use
        self._done = threading.Event()
        if (gpu := cuda()) is not None:
            with contextlib.suppress(Exception):
                gpu.reset_peak_memory_stats()
        self._thread = threading.Thread(target=self._sample, daemon=True, name="tuner-usage")
        self._thread.start()

    def sample(self) -> float | None:
        """Resident memory now (also taken at each report, so a short trial has its samples)."""
        now = rss_mb()
        if now is not None and now > self._peak_rss:
            self._peak_rss = now
        return now

    def gpu_mb(self) -> float | None:
        """Memory torch has allocated on this rank's GPU now (the leak check's second series);
        ``None`` without CUDA in use."""
        try:
            gpu = cuda()
            return None if gpu is None else round(gpu.memory_allocated() / 2**20, 1)
        except Exception:
            return None

    def gpu_reserved_mb(self) -> float | None:
        """The most memory torch has reserved on this rank's GPU since the trial began (its cache
        included: what a neighbour cannot use); ``None`` without CUDA in use."""
        most = _most_reserved_mb()
        if most is not None:  # a report tells it: no need to tell it again
            self.settling.told = max(self.settling.told, most)
        return most

    def _utilisation(self) -> GpuUtil | None:
        if self._gpu is None and (gpu := cuda()) is not None:
            self._gpu = GpuUtil(gpu.current_device(), since=self._began)
        return self._gpu

    def _sample(self) -> None:
        while not self._done.wait(self.every):
            self.sample()
            with contextlib.suppress(Exception):
                if (util := self._utilisation()) is not None:
                    busy = util.sample()
                    if self._settled is not None:
                        self._settle(busy)

    def _settle(self, busy: float | None) -> None:
        level = self.settling.sample(time.monotonic(), _most_reserved_mb(), busy)
        if level is not None and self._settled is not None:
            self._settled(level)

    def stop(self) -> dict[str, Any]:
        self._done.set()
        self.sample()
        out: dict[str, Any] = {"cpu_s": round(time.process_time() - self._cpu0, 3)}
        if self._peak_rss:
            out["peak_rss_mb"] = round(self._peak_rss, 1)
        try:
            if (gpu := cuda()) is not None:
                out["peak_gpu_mb"] = round(gpu.max_memory_allocated() / 2**20, 1)
                out["peak_gpu_reserved_mb"] = round(gpu.max_memory_reserved() / 2**20, 1)
                self._thread.join(timeout=1.0)  # its last sample first
                if (util := self._utilisation()) is not None:
                    out.update(util.figures())
        except Exception:  # a broken CUDA context must not hide the trial's end
            pass
        return out


def _most_reserved_mb() -> float | None:
    """The most memory torch has reserved on this process's GPU since its counters were reset;
    ``None`` without CUDA in use."""
    try:
        gpu = cuda()
        return None if gpu is None else round(gpu.max_memory_reserved() / 2**20, 1)
    except Exception:
        return None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _physical_index(device: int) -> int:
    """NVML counts every GPU of the machine; torch those in CUDA_VISIBLE_DEVICES (as Ray sets it)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    ids = [v.strip() for v in visible.split(",") if v.strip()]
    if device < len(ids) and ids[device].isdigit():
        return int(ids[device])
    return device


def combine(ranks: list[dict[str, Any]]) -> dict[str, Any]:
    """A trial's figures from its ranks': memory of the largest rank, CPU summed, utilisation
    averaged (over the ranks that have it); the first rank's note on a missing GPU figure."""
    out: dict[str, Any] = {}
    for name in FIGURES:
        values = [float(r[name]) for r in ranks if r.get(name) is not None]
        if not values:
            continue
        if name == "cpu_s":
            out[name] = round(sum(values), 3)
        elif name in MEAN:
            out[name] = round(sum(values) / len(values), 1)
        else:
            out[name] = max(values)
    note = next((r[NOTE] for r in ranks if r.get(NOTE)), None)
    if note is not None:
        out[NOTE] = note
    return out
