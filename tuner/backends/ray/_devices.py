"""``gpus: auto`` on Ray: each slot's share of a GPU, and which GPU (with its memory) a slot got.

Slots hold ``1 / k`` of a GPU, ``k`` the most trials the CPUs allow on one GPU
(:func:`tuner.engine.per_gpu_bound`), so that Ray spreads them over the GPUs; which of them may
run a trial is the engine's decision (:class:`tuner.engine.Packing`). A slot's GPU and its memory
are asked of its rank once (NVML, else torch): Ray's node resources count GPUs, not their memory.
"""

from __future__ import annotations

import contextlib
from typing import Any

from tuner.engine import Gpu, per_gpu_bound


def auto_share(cpus_per_trial: float) -> float:
    """The GPU fraction a slot holds with ``gpus: auto``; 0 when the cluster has no GPU."""
    import ray

    bounds = [
        per_gpu_bound(node["Resources"].get("CPU", 0.0), int(node["Resources"]["GPU"]), cpus_per_trial)
        for node in ray.nodes()
        if node.get("Alive") and node.get("Resources", {}).get("GPU", 0) >= 1
    ]
    most = max(bounds, default=0)
    return 0.0 if most == 0 else round(1.0 / most, 4)


def probe(actor: Any) -> Any:
    """Ask a slot's rank which GPU it holds: an object reference to ``(key, total MB)``."""
    return actor.__ray_call__.remote(_this_gpu)


def read(ref: Any) -> Gpu | None:
    """The answer of :func:`probe` when it has come (``None`` while not, or when it failed)."""
    import ray

    ready, _ = ray.wait([ref], timeout=0)
    if not ready:
        return None
    try:
        key, total = ray.get(ref, timeout=0)
    except Exception:  # a rank that died before answering: asked again after its rebuild
        return None
    return Gpu(str(key), float(total))


def _this_gpu(_actor: Any) -> tuple[str, float]:
    """In the rank's process: its node and GPU, and that GPU's memory in MB."""
    import ray

    ctx = ray.get_runtime_context()
    gpu = str(ray.get_gpu_ids()[0])
    return f"{ctx.get_node_id()[:8]}:gpu{gpu}", _total_mb(gpu)


def _total_mb(gpu: str) -> float:
    with contextlib.suppress(Exception):
        try:
            import pynvml
        except ImportError:
            from ray._private.thirdparty import pynvml
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(int(gpu))
        return float(pynvml.nvmlDeviceGetMemoryInfo(handle).total) / 2**20
    import torch  # CUDA_VISIBLE_DEVICES holds this rank's GPU only: it is device 0

    return float(torch.cuda.get_device_properties(0).total_memory) / 2**20
