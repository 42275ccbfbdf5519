"""Why a trial failed, in a word, and what to change, in a line: the one place that says so.

:func:`diagnose` is called once for each attempt that ended, by the engine, which hands its
:class:`Diagnosis` to the recorder (a ``resume`` replays the journaled one; see
:func:`journaled`). It reads the failure's one-line ``error`` and, where the worker sent one,
the whole ``detail`` (the traceback, whose last exception holds the full message that the last
line may lack), and returns a ``cause`` from :data:`tuner.status.CAUSES` and a ``hint`` naming
the likely fix with the figures the message holds (the two shapes, the two dtypes, the label out
of range). The rules match the exception types and message texts of Python and torch (checked
against real errors in ``tests/test_diagnose.py``; the CUDA-only ones by their exact text).
Failures the engine itself decides (stalled, leak, metric not reported, NaN) are given their
cause; only the hint comes from here. :func:`leak_per_step` is the rule that decides a leak.
No Ray, no torch: it runs on the driver, in replay, and in ``plan`` alike.
"""

from __future__ import annotations

import itertools
import re
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tuner.status import (
    ACTIONS,
    CAUSES,
    DETERMINISTIC,
    FAILED,
    NAN,
    OOM,
    POLICY_CAUSES,
    Cause,
    Status,
    default_action,
)

# The vocabulary lives in tuner.status; these names stay importable from here.
__all__ = [
    "ACTIONS",
    "CAUSES",
    "DETERMINISTIC",
    "LEAK_HINT",
    "POLICY_CAUSES",
    "Diagnosis",
    "default_action",
    "diagnose",
    "journaled",
    "leak_per_step",
]


@dataclass(frozen=True)
class Diagnosis:
    cause: Cause
    hint: str


# A hint from the rule's match (None: the cause was given, not matched), the text, the config.
Hint = Callable[[re.Match[str] | None, str, Mapping[str, Any]], str]


def _fixed(text: str) -> Hint:
    return lambda match, error, config: text


def _shapes(match: re.Match[str] | None, error: str, config: Mapping[str, Any]) -> str:
    found = [g for g in match.groups() if g] if match else []
    shown = (" " + " and ".join(found[:2]) if len(found) >= 2 else f" {match.group(0)}") if match else ""
    return (
        f"the shapes{shown} do not fit: check the layer sizes the configuration sets against the data "
        "(a first layer's input size, a flatten before a Linear, the number of channels)"
    )


def _dtypes(match: re.Match[str] | None, error: str, config: Mapping[str, Any]) -> str:
    found = [g for g in match.groups() if g] if match else []
    what = f" ({' vs '.join(found[:2])})" if found else ""
    return (
        f"two tensors of different dtypes meet{what}: cast the input to the model's dtype "
        "(x.float()), and give cross-entropy integer class labels (y.long())"
    )


def _oom(match: re.Match[str] | None, error: str, config: Mapping[str, Any]) -> str:
    batch = config.get("batch_size")
    at = f" at batch_size {batch}" if batch is not None else ""
    return (
        f"out of memory{at}: lower batch_size or the model's size for this configuration, or set "
        "`on_oom: halve_batch` to retry with half the batch and gradient accumulation"
    )


def _index(match: re.Match[str] | None, error: str, config: Mapping[str, Any]) -> str:
    label = f" (label {match.group(1)})" if match and match.lastindex and match.group(1) else ""
    return (
        f"an index is out of range{label}: check the number of classes (the model's output size) against the "
        "labels, and an embedding's size against the largest token id"
    )


def _not_reported(match: re.Match[str] | None, error: str, config: Mapping[str, Any]) -> str:
    # a Ray Tune-style trainable: its session says so, or its reports hold Tune's training_iteration
    if "ray.tune.report" in error or "training_iteration" in error:
        return (
            "a Ray Tune-style trainable (one config argument) must call ray.tune.report({<metric>: value}) "
            "or ray.train.report(...) each iteration, the metric the study names a number in that dict"
        )
    return (
        "the trainable must call trial.report(step, <metric>=value) each step, with the metric the study "
        "names (returning a dict does not report)"
    )


def _exit(match: re.Match[str] | None, error: str, config: Mapping[str, Any]) -> str:
    code = re.search(r"exit(?:ed)? (?:with )?(?:code|status)[ :]*(-?\d+)", error)
    signal = re.search(r"\b(SIG[A-Z]+)\b", error)
    where = re.search(r" at (\S+:\d+ in [^\s()]+)", error)  # not the ")" that closes "(os._exit at ...)"
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


LEAK_HINT = (
    "memory grows by {mb:.0f} MB a step: a tensor kept with its graph (accumulate loss.item(), not loss), "
    "or a list that keeps every batch's outputs"
)


def _leak(match: re.Match[str] | None, error: str, config: Mapping[str, Any]) -> str:
    found = re.search(r"grows by ([\d.]+) MB", error)
    if found is None:
        return LEAK_HINT.replace("by {mb:.0f} MB ", "")
    return LEAK_HINT.format(mb=float(found.group(1)))


def _stalled(match: re.Match[str] | None, error: str, config: Mapping[str, Any]) -> str:
    silent = re.search(r"no report for (\d+) s", error)
    how_long = f" for {silent.group(1)} s" if silent else ""
    return (
        f"it stopped reporting{how_long}, past stall_timeout: a deadlock, a blocking read, or a step longer "
        "than the timeout; the ranks' stacks are in its log"
    )


# Each cause's hint: the one a rule's match fills in, and the one a given cause gets.
HINTS: dict[Cause, Hint] = {
    "oom": _oom,
    "device_assert": _index,
    "cudnn": _fixed(
        "cuDNN failed: often memory (a smaller batch_size) or an unsupported input size; "
        "torch.backends.cudnn.benchmark = False, or CUDA_LAUNCH_BLOCKING=1 to find the call"
    ),
    "nccl": _fixed(
        "NCCL failed between the ranks: a rank died or ran out of memory first (look at the other ranks' "
        "errors), or the GPUs cannot talk (NCCL_DEBUG=INFO says why)"
    ),
    "loader_worker_died": _fixed(
        "a DataLoader worker process died (often killed for memory): lower num_workers, or make the dataset "
        "cheaper to copy into the workers"
    ),
    "dtype_mismatch": _dtypes,
    "device_mismatch": _fixed(
        "a tensor and the model are on different devices: build the model with trial.prepare(model) and "
        "move every tensor you create to trial.device (trial.loader's batches already are)"
    ),
    "shape_mismatch": _shapes,
    "collective": _fixed(
        "a collective between the ranks failed: another rank failed or left first (its error is the cause), "
        "or the ranks called collectives in a different order"
    ),
    "import_error": _fixed(
        "an import failed on the worker: install the package on every node, or allow and ship your "
        "module (--allow-module)"
    ),
    "node_lost": _fixed("its node left the cluster"),
    "leak": _leak,
    "not_reported": _not_reported,
    "process_exited": _exit,
    "stalled": _stalled,
    "nan": _fixed(
        "the metric became NaN or infinite: the loss diverged; lower lr, clip gradients, or check the data for NaN"
    ),
    "user_exception": _fixed("an exception in the trainable: its traceback is in the trial's log"),
}

# First match wins, in this order; ``leak`` and ``not_reported`` match the engine's own texts,
# for journals written before the engine gave those causes.
_SOURCES: list[tuple[Cause, str]] = [
    ("oom", r"CUDA out of memory|OutOfMemoryError|can't allocate memory|^MemoryError|out of memory"),
    (
        "device_assert",
        r"device-side assert triggered|Target (-?\d+) is out of bounds|index out of range in self"
        r"|t >= 0 && t < n_classes|srcIndex < srcSelectDimSize|index (-?\d+) is out of bounds",
    ),
    ("cudnn", r"CUDNN_STATUS_\w+|cuDNN error"),
    ("nccl", r"NCCL|ncclUnhandledCudaError|ProcessGroupNCCL"),
    ("loader_worker_died", r"DataLoader worker \(pid"),
    (
        "dtype_mismatch",
        r"same dtype, but got:? (\w+)\W+(\w+)|expected scalar type (\w+) but found (\w+)"
        r"|expected target dtype to be .* but got (\w+)|Found dtype (\w+) but expected (\w+)"
        r"|Input type \((?!torch\.cuda)\S+\) and (?:weight|bias) type \((?!torch\.cuda)\S+\) should be the same",
    ),
    (
        "device_mismatch",
        r"Expected all tensors to be on the same device|is not on the expected device"
        r"|Input type \(\S+\) and weight type \(\S+\) should be the same",
    ),
    (
        "shape_mismatch",
        r"shapes cannot be multiplied \((\S+) and (\S+)\)|size of tensor a \((\d+)\) must match the size of "
        r"tensor b \((\d+)\)|shape '(\[[^\]]*\])' is invalid for input of size (\d+)"
        r"|input batch_size \((\d+)\) to match target batch_size \((\d+)\)"
        r"|expected input(\[[^\]]*\]) to have (\d+ channels), but got (\d+ channels)"
        r"|size mismatch for \S+ copying a param with shape (torch.Size\(\[[^\]]*\]\)) from checkpoint, "
        r"the shape in current model is (torch.Size\(\[[^\]]*\]\))",
    ),
    ("collective", r"DistBackendError|[Gg]loo|Connection (?:closed|reset) by peer|collective .*timed out"),
    ("import_error", r"^(?:ModuleNotFoundError|ImportError)\b"),
    ("node_lost", r"lost with its node|node has died"),
    ("leak", r"^(?:GPU )?memory grows by ([\d.]+) MB a step"),
    ("not_reported", r"returned without reporting|was not reported"),
    ("process_exited", r"ActorDiedError|process (?:died|exited|killed)|Segmentation fault|\bSIG[A-Z]+\b|exit code"),
]
_RULES = [(cause, re.compile(pattern, re.MULTILINE)) for cause, pattern in _SOURCES]
_PATTERNS = dict(_RULES)

_FRAME = re.compile(r'^\s*File "', re.MULTILINE)


def _raised(detail: str | None) -> str | None:
    """The last exception's whole text (``Type: message``, every line of it) at the end of a
    Python traceback; ``None`` when ``detail`` is not one (a dead process's last words)."""
    if not detail or "Traceback (most recent call last):" not in detail:
        return None
    frames = list(_FRAME.finditer(detail))
    if not frames:
        return None
    lines = detail[frames[-1].end() :].splitlines()[1:]
    # the frame's source line and its carets are indented; the exception starts at column 0
    start = next((i for i, line in enumerate(lines) if line and not line[0].isspace()), None)
    return None if start is None else "\n".join(lines[start:]).strip() or None


def diagnose(
    status: Status | str,
    error: str | None,
    config: Mapping[str, Any] | None = None,
    detail: str | None = None,
    *,
    cause: Cause | None = None,
) -> Diagnosis | None:
    """The cause and a hint for an attempt that ended ``status`` with ``error`` (its one line);
    ``None`` when it did not fail (finished, pruned, stopped).

    ``detail``: the whole story the worker sent (its traceback), read for the full message of
    the exception. ``cause``: the engine's own verdict (stalled, leak, not_reported, node_lost),
    which no rule overrides. ``config``: the trial's, for the figures of a hint (batch_size).
    """
    config = config or {}
    if status not in FAILED:
        return None
    text = _raised(detail) or error or ""
    if status == NAN:
        cause = "nan"
    elif status == OOM:
        cause = "oom"
    if cause is None:
        for candidate, pattern in _RULES:
            match = pattern.search(text)
            if match is not None:
                return Diagnosis(candidate, HINTS[candidate](match, text, config))
        cause = "user_exception"
    rule = _PATTERNS.get(cause)
    return Diagnosis(cause, HINTS[cause](rule.search(text) if rule else None, text, config))


def journaled(event: Mapping[str, Any], config: Mapping[str, Any] | None = None) -> Diagnosis | None:
    """The diagnosis of a journal's ``end`` event: the cause and hint it carries, or, for an
    event written before ends carried them, diagnosed now from its status and error."""
    if event.get("cause") is not None:
        return Diagnosis(event["cause"], event.get("hint") or "")
    return diagnose(event.get("status", ""), event.get("error"), config)


LEAK_WARMUP = 3  # reports left out: allocators and caches grow at the start of any training
LEAK_MIN_REPORTS = 8  # after the warm-up, how many reports any verdict needs
LEAK_MIN_MB = 64.0  # a verdict on fewer than LEAK_LONG reports wants at least this much growth
LEAK_LONG = 16  # past the warm-up, how many reports a small steady growth must last
LEAK_MIN_RATE = 0.5  # MB a report (the median step) below which growth is never a leak
LEAK_STEADY = 0.9  # the share of steps that must have grown by a quarter of the median step or more (one may miss)
LEAK_KEEPS_UP = 0.5  # the later half must grow at least this share as fast as the earlier half
LEAK_KEPT = 0.5  # the share of what memory grew by that it must still hold
LEAK_WINDOW = 32  # only the last reports are judged


def leak_per_step(rss_mb: list[float]) -> float | None:
    """Megabytes a report by which memory grows steadily (the least-squares slope), or ``None``
    when it does not. The engine calls it at every report with the whole series so far, so
    each threshold must hold on every prefix of a clean trial's series, not only the whole:

    - ``LEAK_WARMUP``: the first reports grow in any training (allocator arenas, lazily built
      kernels, the optimizer's state at its first step).
    - ``LEAK_WINDOW``: the last 32 reports past the warm-up are judged, so that a leak that
      starts late is seen within about 30 reports (28 of 31 steps must grow) and a call costs
      the same late in a trial as early.
    - Growth is *steady*: the median step is at least ``LEAK_MIN_RATE``, and at least
      ``LEAK_STEADY`` of the steps (all but one, with fewer than 20) grew by a quarter of it or
      more. A kept tensor grows memory by its size on every step; an allocator grows by a
      block (8 MB for a 2048x1024 float32 temporary) on some steps and then plateaus, and a
      cache grows and drops (a sawtooth): their median step is 0, or their growing share under
      0.9 (a clean loop was flagged at 0.75: 8 MB on 8 of 10 steps). A quarter, and one miss:
      a real leak's steps come in the allocator's granules (a Ray worker keeping 16 MB a step
      measured 24, 24, 24, 0, 24, 8, 24, 16, 16, 24: median 24, all but the 0 above 6).
      0.5 MB a report is 50 MB per hundred reports, far above a clean loop (the median step of
      every clean real series the tests replay is 0.00 MB), and half the smallest real leak
      they check (``total = total + loss`` on a validation set: about 1 MB a report).
    - It *keeps up*: the later half of the window grows at least half as fast as the earlier
      half, which a warm-up that slowly levels off does not; and memory still holds at least
      half of what it grew by (``LEAK_KEPT``), which a cache that fills and is emptied every
      ten reports or more (a sawtooth with growth on 90% of its steps) does not.
    - It *lasts*: ``LEAK_MIN_MB`` (64 MB) after ``LEAK_MIN_REPORTS`` (8) reports flags a
      large leak soon (16 MB a step by the 11th report); a small one must hold for
      ``LEAK_LONG`` (16) reports, longer than any run of growth in the clean real traces the
      tests replay (4 reports: a Ray worker's warm-up of 16, 16, 8, 8 MB), so that a short
      rise of a clean loop is never taken for one.
    """
    samples = rss_mb[LEAK_WARMUP:][-LEAK_WINDOW:]
    n = len(samples)
    if n < LEAK_MIN_REPORTS:
        return None
    diffs = [b - a for a, b in itertools.pairwise(samples)]
    rate = statistics.median(diffs)
    if rate < LEAK_MIN_RATE:
        return None
    if sum(d < rate / 4 for d in diffs) > max(1.0, (1 - LEAK_STEADY) * len(diffs)):
        return None
    if samples[-1] - samples[0] < LEAK_MIN_MB and n < LEAK_LONG:
        return None
    if samples[-1] - samples[0] < LEAK_KEPT * sum(d for d in diffs if d > 0):
        return None
    half = n // 2
    if samples[-1] - samples[-half - 1] < LEAK_KEEPS_UP * (samples[half] - samples[0]):
        return None
    mean_x, mean_y = (n - 1) / 2, sum(samples) / n
    return sum((i - mean_x) * (y - mean_y) for i, y in enumerate(samples)) / sum((i - mean_x) ** 2 for i in range(n))
