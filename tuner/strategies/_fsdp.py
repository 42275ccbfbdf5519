"""``fsdp``: parameters, gradients and optimizer state sharded over the ranks (FSDP2).

Each child module that holds parameters is sharded on its own (so only one block's full
parameters exist at a time in the forward and backward passes), then the root; or the blocks
the trainable names with ``trial.prepare(model, blocks=[...])`` (a list, or a callable that
returns one). ``mixed_precision`` keeps the parameters in compute in bf16/fp16 (gradients
reduced in float32); ``cpu_offload`` keeps the shards on the CPU between uses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tuner.strategies._base import Ranks, Strategy


class FSDP(Strategy):
    def prepare(self, model: Any, trial: Ranks, blocks: Any = None, **kwargs: Any) -> Any:
        import torch
        from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, fully_shard

        if kwargs:
            raise TypeError(f"trial.prepare: fsdp takes blocks=..., got {', '.join(kwargs)}")
        model = model.to(trial.device)
        if not trial.distributed:  # one process (plan --smoke): nothing to shard
            return model
        options: dict[str, Any] = {}
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.options.mixed_precision)
        if dtype is not None:
            options["mp_policy"] = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)
        if self.options.cpu_offload:
            options["offload_policy"] = CPUOffloadPolicy(pin_memory=trial.device.type == "cuda")
        chosen = blocks(model) if isinstance(blocks, Callable) else blocks  # type: ignore[arg-type]
        for block in chosen if chosen is not None else _blocks(model):
            fully_shard(block, **options)
        fully_shard(model, **options)
        return model

    def state_dict(self, model: Any, optimizer: Any, trial: Ranks) -> dict[str, Any]:
        """For a checkpoint: by default each rank's shards, written by every rank at ``report``
        with ``torch.distributed.checkpoint`` (no full model on any rank); with
        ``full_checkpoints`` (or a store that is not a filesystem) the full state, gathered on
        the CPU of rank 0."""
        if not trial.distributed:
            return super().state_dict(model, optimizer, trial)
        if not self.options.full_checkpoints and trial.store is not None and not _remote(trial.store.location):
            return {SHARDED: (model, optimizer)}  # written at report, when the step is known
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        if optimizer is None:
            return {"model": get_model_state_dict(model, options=options)}
        model_state, optimizer_state = get_state_dict(model, optimizer, options=options)
        return {"model": model_state, "optimizer": optimizer_state}

    def checkpoint(self, checkpoint: Any, step: float, trial: Ranks) -> Any:
        """At ``report``: every rank writes its shards beside the step's checkpoint record
        (``step-N.dcp/``), and the record holds where they are."""
        if not isinstance(checkpoint, dict) or SHARDED not in checkpoint:
            return checkpoint
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict

        model, optimizer = checkpoint.pop(SHARDED)
        assert trial.store is not None
        folder = trial.store.path(trial.trial_id, step).removesuffix(".pt") + ".dcp"
        model_state, optimizer_state = get_state_dict(model, optimizer if optimizer is not None else [])
        dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=folder)
        return {**checkpoint, "sharded": folder}

    def load_state_dict(self, model: Any, optimizer: Any, state: dict[str, Any], trial: Ranks) -> None:
        """Shards read back by every rank (``sharded``), or a full state sharded into the model."""
        if not trial.distributed:
            super().load_state_dict(model, optimizer, state, trial)
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

        optimizers = optimizer if optimizer is not None else []
        if "sharded" in state:
            import torch.distributed.checkpoint as dcp

            model_state, optimizer_state = get_state_dict(model, optimizers)
            loaded: dict[str, Any] = {"model": model_state, "optimizer": optimizer_state}
            dcp.load(loaded, checkpoint_id=state["sharded"])
            set_state_dict(model, optimizers, model_state_dict=loaded["model"], optim_state_dict=loaded["optimizer"])
            return
        set_state_dict(
            model,
            optimizers if "optimizer" in state else [],
            model_state_dict=state["model"],
            optim_state_dict=state.get("optimizer", {}) if optimizer is not None else {},
            options=StateDictOptions(full_state_dict=True),
        )


SHARDED = "__sharded__"


def _remote(location: str) -> bool:
    from tuner.storage import is_remote

    return is_remote(location)


def _blocks(model: Any) -> list[Any]:
    """The model's children that hold parameters (a Sequential's layers, a network's blocks)."""
    return [child for child in model.children() if any(True for _ in child.parameters())]
