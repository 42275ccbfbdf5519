"""Hugging Face's ``Trainer`` as DDP over a trial's worker group.

The Trainer takes its processes from accelerate's ``PartialState``, a process-wide singleton that
reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` from the environment when it is first made and
uses a ``torch.distributed`` process group already formed. Under ``workers: N`` tuner has formed
the group (gloo on CPU, nccl with a GPU each); here the singleton is made on it. Each rank is a
node of one device (``LOCAL_RANK`` 0), as in the Lightning integration. A worker process runs
trial after trial, so the singleton is cleared before a trial's state is made and after it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from tuner.trial import Trial

_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def training_arguments(trial: Trial) -> dict[str, Any]:
    """``TrainingArguments`` keywords for ``trial``: its device (``use_cpu``) and, for
    ``workers: N``, DDP over its worker group. Call it in the trial before making the
    ``TrainingArguments``: it makes accelerate's process state on the group, which the arguments
    then use (``accelerator_config={"use_configured_state": True}``)."""
    cpu = trial.device.type != "cuda"
    options: dict[str, Any] = {"use_cpu": cpu}
    reset()
    if trial.distributed:
        from accelerate.state import PartialState

        with group_environment(trial):
            PartialState(cpu=cpu)
        options["accelerator_config"] = {"use_configured_state": True}
    return options


@contextlib.contextmanager
def distributed(trial: Trial) -> Iterator[None]:
    """Within: a ``TrainingArguments`` made without :func:`training_arguments` runs DDP over the
    trial's worker group too (the environment accelerate reads is the group's)."""
    reset()
    if not trial.distributed:
        yield
        return
    try:
        with group_environment(trial):
            yield
    finally:
        reset()


@contextlib.contextmanager
def group_environment(trial: Trial) -> Iterator[None]:
    """The environment variables of a ``torch.distributed`` launch, for ``trial`` 's rank of its
    group; as they were afterwards (accelerate writes some of them)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            f"trial {trial.trial_id}: world_size {trial.world_size} without a torch.distributed process group"
            " (the worker group forms it: run the trial from a study with resources.workers)"
        )
    saved = {name: os.environ.get(name) for name in _VARIABLES}
    os.environ.update(RANK=str(trial.rank), WORLD_SIZE=str(trial.world_size), LOCAL_RANK="0", LOCAL_WORLD_SIZE="1")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")  # read only to form a group; the group is formed
    os.environ.setdefault("MASTER_PORT", "29500")
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def reset() -> None:
    """Clear accelerate's process-wide state (``AcceleratorState``, ``PartialState``,
    ``GradientState``) left by a trial before."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
