"""Why a trial failed, in a word, and what to change, in a line.

``diagnose`` reads a failed trial's error (``Type: message``, as the worker records it, or what
the driver saw: a rank's process that died, a metric never reported) and returns a
:class:`Diagnosis`: a ``cause`` from a fixed vocabulary and a ``hint`` naming the likely fix
with the figures the message holds (the two shapes, the two dtypes, the label out of range).
The rules match the exception types and message texts of Python and torch (checked against
real errors in ``tests/test_diagnose.py``; the CUDA-only ones by their exact text). No Ray, no
torch: it runs on the driver, in replay, and in ``results`` alike.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

CAUSES = (
    "oom",
    "shape_mismatch",
    "device_mismatch",
    "dtype_mismatch",
    "device_assert",
    "cudnn",
    "nccl",
    "collective",
    "loader_worker_died",
    "process_exited",
    "stalled",
    "leak",
    "node_lost",
    "import_error",
    "not_reported",
    "nan",
    "user_exception",
)


# What a study does with a trial that failed, by cause (the study file's ``on_failure`` block):
# retry: from its last checkpoint, up to max_failures times, then as fail;
# fail: ends errored, never retried; infeasible: as fail, and the searcher is told to avoid the
# configuration (as for out-of-memory); stop: as fail, and the study starts no more trials;
# halve_batch (oom only): retried with half the batch per step and twice the accumulation.
ACTIONS = ("retry", "fail", "infeasible", "stop", "halve_batch")
# Errors that the same configuration will raise again: retrying them only burns compute.
DETERMINISTIC = (
    "shape_mismatch",
    "dtype_mismatch",
    "device_mismatch",
    "device_assert",
    "import_error",
    "not_reported",
    "nan",
)
# Not in on_failure: node_lost is always continued on a live node, leak has on_leak.
POLICY_CAUSES = tuple(c for c in CAUSES if c not in ("node_lost", "leak"))


def default_action(cause: str, on_oom: str = "infeasible") -> str:
    """What a study does with a failure of ``cause`` when the study file does not say."""
    if cause == "oom":
        return on_oom
    return "fail" if cause in DETERMINISTIC else "retry"


@dataclass(frozen=True)
class Diagnosis:
    cause: str
    hint: str


Hint = Callable[[re.Match[str], str, Mapping[str, Any]], str]


def _fixed(text: str) -> Hint:
    return lambda match, error, config: text


def _shapes(match: re.Match[str], error: str, config: Mapping[str, Any]) -> str:
    found = [g for g in match.groups() if g]
    shown = " and ".join(found[:2]) if len(found) >= 2 else match.group(0)
    return (
        f"the shapes {shown} do not fit: check the layer sizes the configuration sets against the data "
        "(a first layer's input size, a flatten before a Linear, the number of channels)"
    )


def _dtypes(match: re.Match[str], error: str, config: Mapping[str, Any]) -> str:
    found = [g for g in match.groups() if g]
    what = f" ({' vs '.join(found[:2])})" if found else ""
    return (
        f"two tensors of different dtypes meet{what}: cast the input to the model's dtype "
        "(x.float()), and give cross-entropy integer class labels (y.long())"
    )


def _devices(match: re.Match[str], error: str, config: Mapping[str, Any]) -> str:
    return (
        "a tensor and the model are on different devices: build the model with trial.prepare(model) and "
        "move every tensor you create to trial.device (trial.loader's batches already are)"
    )


def _oom(match: re.Match[str], error: str, config: Mapping[str, Any]) -> str:
    batch = config.get("batch_size")
    at = f" at batch_size {batch}" if batch is not None else ""
    return (
        f"out of memory{at}: lower batch_size or the model's size for this configuration, or set "
        "`on_oom: halve_batch` to retry with half the batch and gradient accumulation"
    )


def _index(match: re.Match[str], error: str, config: Mapping[str, Any]) -> str:
    label = f" (label {match.group(1)})" if match.lastindex and match.group(1) else ""
    return (
        f"an index is out of range{label}: check the number of classes (the model's output size) against the "
        "labels, and an embedding's size against the largest token id"
    )


def _exit(match: re.Match[str], error: str, config: Mapping[str, Any]) -> str:
    code = re.search(r"exit(?:ed)? (?:with )?(?:code|status)[ :]*(-?\d+)", error)
    signal = re.search(r"\b(SIG[A-Z]+)\b", error)
    where = re.search(r" at (\S+:\d+ in \S+)", error)
    at = f" at {where.group(1)}" if where else ""
    if code:
        return (
            f"the process exited with code {code.group(1)}{at} without an exception: look for os._exit or a "
            "library that calls exit() there; raise an exception instead so the trial records why"
        )
    if signal and signal.group(1) == "SIGKILL":
        return (
            "the process was killed without a trace (SIGKILL): most often the kernel's OOM killer; lower the "
            "memory a trial uses (batch_size, DataLoader num_workers) or give each trial more (resources)"
        )
    if signal:
        return (
            f"the process crashed in native code ({signal.group(1)}){at}: an extension built for another "
            "torch or CUDA, a bad pointer in custom C++/CUDA code, or a fault in a library; the stacks of "
            "every thread are in the trial's log"
        )
    return (
        "a rank's process ended without an exception: look for os._exit/sys.exit in the trainable, a crash "
        "in native code (segfault), or the memory monitor; the log of the trial and Ray's worker logs say which"
    )


_RULES: list[tuple[str, re.Pattern[str], Hint]] = [
    (cause, re.compile(pattern, re.MULTILINE), hint)
    for cause, pattern, hint in [
        ("oom", r"CUDA out of memory|OutOfMemoryError|can't allocate memory|^MemoryError|out of memory", _oom),
        (
            "device_assert",
            r"device-side assert triggered|Target (-?\d+) is out of bounds|index out of range in self"
            r"|t >= 0 && t < n_classes|srcIndex < srcSelectDimSize|index (-?\d+) is out of bounds",
            _index,
        ),
        (
            "cudnn",
            r"CUDNN_STATUS_\w+|cuDNN error",
            _fixed(
                "cuDNN failed: often memory (a smaller batch_size) or an unsupported input size; "
                "torch.backends.cudnn.benchmark = False, or CUDA_LAUNCH_BLOCKING=1 to find the call"
            ),
        ),
        (
            "nccl",
            r"NCCL|ncclUnhandledCudaError|ProcessGroupNCCL",
            _fixed(
                "NCCL failed between the ranks: a rank died or ran out of memory first (look at the other ranks' "
                "errors), or the GPUs cannot talk (NCCL_DEBUG=INFO says why)"
            ),
        ),
        (
            "loader_worker_died",
            r"DataLoader worker \(pid",
            _fixed(
                "a DataLoader worker process died (often killed for memory): lower num_workers, or make the dataset "
                "cheaper to copy into the workers"
            ),
        ),
        (
            "dtype_mismatch",
            r"same dtype, but got:? (\w+)\W+(\w+)|expected scalar type (\w+) but found (\w+)"
            r"|expected target dtype to be .* but got (\w+)|Found dtype (\w+) but expected (\w+)"
            r"|Input type \((?!torch\.cuda)\S+\) and (?:weight|bias) type \((?!torch\.cuda)\S+\) should be the same",
            _dtypes,
        ),
        (
            "device_mismatch",
            r"Expected all tensors to be on the same device|is not on the expected device"
            r"|Input type \(\S+\) and weight type \(\S+\) should be the same",
            _devices,
        ),
        (
            "shape_mismatch",
            r"shapes cannot be multiplied \((\S+) and (\S+)\)|size of tensor a \((\d+)\) must match the size of "
            r"tensor b \((\d+)\)|shape '(\[[^\]]*\])' is invalid for input of size (\d+)"
            r"|input batch_size \((\d+)\) to match target batch_size \((\d+)\)"
            r"|expected input(\[[^\]]*\]) to have (\d+ channels), but got (\d+ channels)"
            r"|size mismatch for \S+ copying a param with shape (torch.Size\(\[[^\]]*\]\)) from checkpoint, "
            r"the shape in current model is (torch.Size\(\[[^\]]*\]\))",
            _shapes,
        ),
        (
            "collective",
            r"DistBackendError|[Gg]loo|Connection (?:closed|reset) by peer|collective .*timed out",
            _fixed(
                "a collective between the ranks failed: another rank failed or left first (its error is the cause), "
                "or the ranks called collectives in a different order"
            ),
        ),
        (
            "import_error",
            r"^(?:ModuleNotFoundError|ImportError)\b",
            _fixed(
                "an import failed on the worker: install the package on every node, or allow and ship your "
                "module (--allow-module)"
            ),
        ),
        ("node_lost", r"lost with its node|node has died", _fixed("its node left the cluster")),
        (
            "leak",
            r"^(?:GPU )?memory grows by ([\d.]+) MB a step",
            lambda match, error, config: LEAK_HINT.format(mb=float(match.group(1))),
        ),
        (
            "not_reported",
            r"returned without reporting|was not reported",
            _fixed(
                "the trainable must call trial.report(step, <metric>=value) each step, with the metric the study "
                "names (returning a dict does not report)"
            ),
        ),
        (
            "process_exited",
            r"ActorDiedError|process (?:died|exited|killed)|Segmentation fault|\bSIG[A-Z]+\b|exit code",
            _exit,
        ),
    ]
]


def diagnose(status: str, error: str | None, config: Mapping[str, Any] | None = None) -> Diagnosis | None:
    """The cause and a hint for a trial that ended ``status`` with ``error``; ``None`` when it did
    not fail (finished, pruned, stopped)."""
    config = config or {}
    if status == "nan":
        return Diagnosis(
            "nan",
            "the metric became NaN or infinite: the loss diverged; lower lr, clip gradients, or check the data for NaN",
        )
    if status not in ("errored", "oom"):
        return None
    text = error or ""
    if status == "oom":
        match = re.match(r"", "")
        assert match is not None
        return Diagnosis("oom", _oom(match, text, config))
    for cause, pattern, hint in _RULES:
        match = pattern.search(text)
        if match is not None:
            return Diagnosis(cause, hint(match, text, config))
    return Diagnosis("user_exception", "an exception in the trainable: its traceback is in the trial's log")


LEAK_WARMUP = 3  # reports left out: allocators and caches grow at the start of any training
LEAK_MIN_REPORTS = 8  # after the warm-up, how many reports a verdict needs
LEAK_MIN_MB = 64.0  # growth below this over the trial is never a leak
LEAK_STEADY = 0.9  # the share of steps on which memory must have grown: a leak grows on every step,
# while an allocator grows by a block (8 MB for a 2048x1024 float32 temporary) on some steps and
# plateaus (a clean loop was flagged at 0.75: 8 MB on 8 of 10 steps)


def leak_per_step(rss_mb: list[float]) -> float | None:
    """Megabytes a report by which resident memory grows steadily, or ``None`` when it does not:
    after a warm-up, at least ``LEAK_MIN_REPORTS`` samples, growth on most steps, at least
    ``LEAK_MIN_MB`` in all, and a least-squares slope of at least 1 MB a report."""
    samples = rss_mb[LEAK_WARMUP:]
    if len(samples) < LEAK_MIN_REPORTS:
        return None
    diffs = [b - a for a, b in itertools.pairwise(samples)]
    grown = sum(d > 0 for d in diffs) / len(diffs)
    n = len(samples)
    mean_x, mean_y = (n - 1) / 2, sum(samples) / n
    slope = sum((i - mean_x) * (y - mean_y) for i, y in enumerate(samples)) / sum((i - mean_x) ** 2 for i in range(n))
    if grown < LEAK_STEADY or samples[-1] - samples[0] < LEAK_MIN_MB or slope < 1.0:
        return None
    return slope


LEAK_HINT = (
    "memory grows by {mb:.0f} MB a step: a tensor kept with its graph (accumulate loss.item(), not loss), "
    "or a list that keeps every batch's outputs"
)
