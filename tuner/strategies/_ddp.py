"""``ddp``: the whole model on every rank, gradients averaged (DistributedDataParallel)."""

from __future__ import annotations

from typing import Any

from tuner.strategies._base import Ranks, Strategy


class DDP(Strategy):
    def prepare(self, model: Any, trial: Ranks, **kwargs: Any) -> Any:
        if kwargs:
            raise TypeError(f"trial.prepare: ddp takes no options, got {', '.join(kwargs)}")
        model = model.to(trial.device)
        if not trial.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [trial.device.index] if trial.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)
