"""The interface every strategy implements."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Protocol


class Ranks(Protocol):
    """What a strategy reads of the trial it serves (:class:`tuner.trial.Trial` is one): this
    rank, how many there are, where it trains and where its checkpoints go."""

    trial_id: str
    rank: int
    world_size: int
    store: Any  # the study's tuner.storage.CheckpointStore, or None

    @property
    def device(self) -> Any: ...

    @property
    def distributed(self) -> bool: ...

    def unwrap(self, model: Any) -> Any: ...


@dataclass(frozen=True)
class StrategyOptions:
    """What the study's ``resources`` say about the strategy (plain values: it travels to every rank)."""

    name: str = "ddp"
    stages: int = 1  # pipeline: stages, one per rank
    microbatches: int = 4  # pipeline: micro-batches per step
    schedule: str = "gpipe"  # pipeline: gpipe or 1f1b
    mixed_precision: str = "none"  # fsdp: none, bf16 or fp16 for parameters in compute
    cpu_offload: bool = False  # fsdp: parameters and their gradients live on the CPU between uses
    full_checkpoints: bool = False  # fsdp: gather the full state on rank 0 instead of writing shards


class Strategy(abc.ABC):
    """Call order: ``prepare(model, trial)`` once per trial on every rank; then the trainable
    trains what it returned; ``holds_metrics(trial)`` says whether this rank's reported values
    count in the average over ranks (a pipeline's last stage alone sees the loss)."""

    def __init__(self, options: StrategyOptions) -> None:
        self.options = options

    @abc.abstractmethod
    def prepare(self, model: Any, trial: Ranks, **kwargs: Any) -> Any: ...

    def holds_metrics(self, trial: Ranks) -> bool:
        return True

    def replicas(self, trial: Ranks) -> int:
        """How many ranks split the data: every rank, unless they split the model instead."""
        return trial.world_size

    def state_dict(self, model: Any, optimizer: Any, trial: Ranks) -> dict[str, Any]:
        """The whole model's (and optimizer's) state; every rank calls it, rank 0's is saved."""
        state = {"model": trial.unwrap(model).state_dict()}
        if optimizer is not None:
            state["optimizer"] = optimizer.state_dict()
        return state

    def checkpoint(self, checkpoint: Any, step: float, trial: Ranks) -> Any:
        """What ``report(step, checkpoint=...)`` keeps, on every rank (FSDP writes its shards here)."""
        return checkpoint

    def load_state_dict(self, model: Any, optimizer: Any, state: dict[str, Any], trial: Ranks) -> None:
        trial.unwrap(model).load_state_dict(state["model"])
        if optimizer is not None and "optimizer" in state:
            optimizer.load_state_dict(state["optimizer"])
