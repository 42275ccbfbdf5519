"""The words for how a trial stands, why it failed and what the study does about it: defined once.

A trial's record has a :data:`Status`; a failed one a :data:`Cause` (given by
:func:`tuner.diagnose.diagnose`) and an :data:`Action` (the study file's ``on_failure``);
its searcher is told an :data:`OutcomeState`, which :func:`outcome_state` derives from the
other two. The engine, the results, the report and the CLI import these instead of spelling
the strings. No imports beyond typing: every layer may use it.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

Status = Literal["running", "finished", "pruned", "errored", "nan", "oom", "stopped"]
RUNNING: Final = "running"
FINISHED: Final = "finished"  # reached its last step (its own end, or the scheduler's max_t)
PRUNED: Final = "pruned"  # stopped early by the scheduler
ERRORED: Final = "errored"  # failed: an exception, a dead process, a stall, a leak, a metric not reported
NAN: Final = "nan"  # its metric became NaN or infinite
OOM: Final = "oom"  # out of memory (CUDA's error, or killed by the host's memory monitor)
STOPPED: Final = "stopped"  # stopped by the study (time limit, another trial's ``stop`` action)
STATUSES: tuple[Status, ...] = get_args(Status)
FAILED: tuple[Status, ...] = (ERRORED, NAN, OOM)
# Ended without failing: the last value reported is the trial's (to the searcher, the best rule).
SCORED: tuple[Status, ...] = (FINISHED, PRUNED, STOPPED)

Cause = Literal[
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
]
CAUSES: tuple[Cause, ...] = get_args(Cause)
# Errors that the same configuration will raise again: retrying them only burns compute.
DETERMINISTIC: tuple[Cause, ...] = (
    "shape_mismatch",
    "dtype_mismatch",
    "device_mismatch",
    "device_assert",
    "import_error",
    "not_reported",
    "nan",
)
# Not in on_failure: node_lost is always continued on a live node, leak has on_leak.
POLICY_CAUSES: tuple[Cause, ...] = tuple(c for c in CAUSES if c not in ("node_lost", "leak"))

# What a study does with a trial that failed, by cause (the study file's ``on_failure`` block):
# retry: from its last checkpoint, up to max_failures times, then as fail;
# fail: ends errored, never retried; infeasible: as fail, and the searcher is told to avoid the
# configuration (as for out-of-memory); stop: as fail, and the study starts no more trials;
# halve_batch (oom only): retried with half the batch per step and twice the accumulation.
Action = Literal["retry", "fail", "infeasible", "stop", "halve_batch"]
ACTIONS: tuple[Action, ...] = get_args(Action)
OomAction = Literal["halve_batch", "infeasible"]  # the study file's ``on_oom``

# What a searcher is told of a trial (tuner.searchers.Outcome.state).
OutcomeState = Literal["complete", "pruned", "failed", "infeasible", "running"]
OUTCOME_STATES: tuple[OutcomeState, ...] = get_args(OutcomeState)


def default_action(cause: Cause | str, on_oom: OomAction = "infeasible") -> Action:
    """What a study does with a failure of ``cause`` when the study file does not say."""
    if cause == "oom":
        return on_oom
    return "fail" if cause in DETERMINISTIC else "retry"


def outcome_state(status: Status, action: Action | None = None, value: float | None = None) -> OutcomeState:
    """What the searcher is told of a trial that stands at ``status``: ``action``, what the study
    did about its failure; ``value``, its last value (``None``: it has none)."""
    if status == RUNNING:
        return "running"
    if action in ("infeasible", "halve_batch"):  # halve_batch at the end: halving did not help
        return "infeasible"
    if status == FINISHED:
        return "complete"
    if status in FAILED or value is None:
        return "failed"
    return "pruned"  # pruned or stopped early: its value at the step it reached
