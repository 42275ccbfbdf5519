"""How a trial's model is spread over its ranks: one strategy per module, chosen by name.

``ddp`` (every rank holds the whole model, gradients averaged), ``fsdp`` (parameters, gradients
and optimizer state sharded over the ranks, FSDP2's ``fully_shard``) and ``pipeline`` (the model
split into stages, one per rank, micro-batches passed along by a GPipe or 1F1B schedule). The
trainable calls ``trial.prepare(model)`` whatever the strategy; :class:`Trial` hands it to the
strategy the study's ``resources`` name. No Ray here.
"""

from __future__ import annotations

from typing import Any

from tuner.strategies._base import Ranks, Strategy, StrategyOptions

STRATEGIES: dict[str, str] = {
    "ddp": "tuner.strategies._ddp:DDP",
    "fsdp": "tuner.strategies._fsdp:FSDP",
    "pipeline": "tuner.strategies._pipeline:Pipeline",
}

__all__ = ["STRATEGIES", "Ranks", "Strategy", "StrategyOptions", "create"]


def create(options: StrategyOptions) -> Strategy:
    import importlib

    module, name = STRATEGIES[options.name].split(":")
    cls: Any = getattr(importlib.import_module(module), name)
    strategy: Strategy = cls(options)
    return strategy
