"""What one rank of a trial used: memory, CPU and GPU, measured while it runs.

A :class:`Usage` is started with the trial and read at its end. A daemon thread samples the
process's resident memory (and, where a GPU is in use, its utilisation through NVML) every
``EVERY_S`` seconds; CPU seconds are the process's (all its threads: torch's intra-op pool
included, DataLoader worker processes not); GPU memory is torch's own peak counters. No Ray,
and nothing here may raise into the trial: a figure that cannot be read is left out.

:func:`combine` turns the ranks' figures into the trial's: the largest rank for memory, the
sum for CPU seconds, the mean for GPU utilisation.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from typing import Any

EVERY_S = 0.25
FIELDS = ("peak_rss_mb", "cpu_s", "peak_gpu_mb", "peak_gpu_reserved_mb", "gpu_util")


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


class Usage:
    """One rank's use of the machine over one trial; ``stop()`` returns the figures."""

    def __init__(self, every: float = EVERY_S) -> None:
        self.every = every
        self._cpu0 = time.process_time()
        self._peak_rss = rss_mb() or 0.0
        self._util: list[float] = []
        self._nvml: Any = None
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

    def _gpu_util(self) -> None:
        gpu = cuda()
        if gpu is None:
            return
        try:
            if self._nvml is None:
                import pynvml

                pynvml.nvmlInit()
                self._nvml = (pynvml, pynvml.nvmlDeviceGetHandleByIndex(_physical_index(gpu.current_device())))
            nvml, handle = self._nvml
            self._util.append(float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu))
        except Exception:  # optional: without NVML there is no utilisation figure
            self._nvml = (None, None) if self._nvml is None else self._nvml

    def _sample(self) -> None:
        while not self._done.wait(self.every):
            self.sample()
            if self._nvml != (None, None):
                self._gpu_util()

    def stop(self) -> dict[str, float]:
        self._done.set()
        self.sample()
        out: dict[str, float] = {"cpu_s": round(time.process_time() - self._cpu0, 3)}
        if self._peak_rss:
            out["peak_rss_mb"] = round(self._peak_rss, 1)
        try:
            if (gpu := cuda()) is not None:
                out["peak_gpu_mb"] = round(gpu.max_memory_allocated() / 2**20, 1)
                out["peak_gpu_reserved_mb"] = round(gpu.max_memory_reserved() / 2**20, 1)
        except Exception:  # a broken CUDA context must not hide the trial's end
            pass
        if self._util:
            out["gpu_util"] = round(sum(self._util) / len(self._util), 1)
        return out


def _physical_index(device: int) -> int:
    """NVML counts every GPU of the machine; torch those in CUDA_VISIBLE_DEVICES (as Ray sets it)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    ids = [v.strip() for v in visible.split(",") if v.strip()]
    if device < len(ids) and ids[device].isdigit():
        return int(ids[device])
    return device


def combine(ranks: list[dict[str, Any]]) -> dict[str, float]:
    """A trial's figures from its ranks': memory of the largest rank, CPU summed, utilisation averaged."""
    out: dict[str, float] = {}
    for name in FIELDS:
        values = [float(r[name]) for r in ranks if r.get(name) is not None]
        if not values:
            continue
        if name == "cpu_s":
            out[name] = round(sum(values), 3)
        elif name == "gpu_util":
            out[name] = round(sum(values) / len(values), 1)
        else:
            out[name] = max(values)
    return out
