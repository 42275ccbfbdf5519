"""Starting or joining Ray, and how many trials the cluster can hold at once."""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Connection:
    started_here: bool
    dashboard_url: str | None
    address: str

    def close(self) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()


def connect(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    dashboard: bool | None = None,
    temp_dir: str | None = None,
    object_store_mb: int | None = None,
) -> Connection:
    """Join the Ray at ``address`` (or ``RAY_ADDRESS``), else start an embedded one.

    The embedded Ray binds its dashboard to 127.0.0.1 (``TUNER_DASHBOARD_HOST``, set by
    ``--dashboard-host``, says otherwise) and keeps its log noise off the terminal.
    ``dashboard=None`` starts the dashboard when ``ray[default]`` is installed.
    """
    import ray

    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    address = address or os.environ.get("RAY_ADDRESS") or None
    quiet: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False, "configure_logging": True}
    if ray.is_initialized():
        return Connection(False, None, ray.get_runtime_context().gcs_address)
    if address and address != "local":
        joined: Any = ray.init(address=address, runtime_env={"py_modules": _shipped_modules()}, **quiet)
        return Connection(False, _url(joined.dashboard_url), address)
    if dashboard is None:
        dashboard = importlib.util.find_spec("aiohttp") is not None  # installed with ray[default]
    ctx: Any = ray.init(
        address="local",
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        include_dashboard=dashboard,
        dashboard_host=os.environ.get("TUNER_DASHBOARD_HOST", "127.0.0.1"),
        _temp_dir=temp_dir,
        object_store_memory=None if object_store_mb is None else object_store_mb * 1024 * 1024,
        **quiet,
    )
    return Connection(True, _url(ctx.dashboard_url) if dashboard else None, "local")


def _url(url: str | None) -> str | None:
    return None if not url else url if url.startswith("http") else f"http://{url}"


def _shipped_modules() -> list[str]:
    """On a remote cluster the workers get ``tuner`` and ``trainables`` from this machine."""
    import tuner

    mods = [str(Path(tuner.__file__).parent)]
    trainables = sys.modules.get("trainables")
    if trainables is not None and trainables.__file__:
        mods.append(str(Path(trainables.__file__).parent))
    return mods


def path_entries() -> list[str]:
    """sys.path entries a local worker needs to import what the driver imports."""
    return [str(Path.cwd()), *[p for p in sys.path if p and Path(p).is_dir()]][:32]


def fits(node: dict[str, float], cpus: float, gpus: float) -> int:
    """How many workers of ``cpus`` and ``gpus`` one node with these resources holds."""
    fit = math.floor(node.get("CPU", 0) / cpus + 1e-9) if cpus > 0 else 10**6
    if gpus > 0:
        fit = min(fit, math.floor(node.get("GPU", 0) / gpus + 1e-9))
    return fit


def capacity(cpus: float, gpus: float) -> int:
    """Workers of this size the cluster can run at once, node by node (no single-node assumption)."""
    import ray

    return sum(fits(node.get("Resources", {}), cpus, gpus) for node in ray.nodes() if node.get("Alive"))
