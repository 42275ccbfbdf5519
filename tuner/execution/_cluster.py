"""Starting or joining Ray, and how many trials the cluster can hold at once."""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import sys
from collections.abc import Sequence
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
    ship: Sequence[str] = (),
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    dashboard: bool | None = None,
    temp_dir: str | None = None,
    object_store_mb: int | None = None,
) -> Connection:
    """Join the Ray at ``address`` (or ``RAY_ADDRESS``), else start an embedded one.

    On a cluster the workers get ``tuner`` and the local code of the modules in ``ship`` (the
    trainable's and the allowed ones) from this machine. The embedded Ray binds its dashboard
    to 127.0.0.1 (``TUNER_DASHBOARD_HOST``, set by ``--dashboard-host``, says otherwise) and
    keeps its log noise off the terminal.
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
        joined: Any = ray.init(address=address, runtime_env={"py_modules": shipped_modules(ship)}, **quiet)
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


def shipped_modules(modules: Sequence[str]) -> list[str]:
    """What a remote cluster's workers need from this machine: ``tuner``, and for each module
    name, its top-level package (or single-file module) when it is local code, not installed."""
    import tuner

    paths = [str(Path(tuner.__file__).parent)]
    for name in dict.fromkeys(m.split(".")[0] for m in modules if m):
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is None or spec.origin in (None, "built-in", "frozen"):
            continue
        locations = list(spec.submodule_search_locations or [])
        path = locations[0] if locations else spec.origin
        if path and not _installed(Path(path)):
            paths.append(str(path))
    return list(dict.fromkeys(paths))


def _installed(path: Path) -> bool:
    """Whether ``path`` is part of the Python installation (the standard library or an installed
    package), which every node has of its own."""
    import sysconfig

    where = sysconfig.get_paths()
    roots = {Path(where[k]).resolve() for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    path = path.resolve()
    return "site-packages" in path.parts or "dist-packages" in path.parts or any(r in path.parents for r in roots)


def path_entries() -> list[str]:
    """sys.path entries a worker on this machine needs to import what the driver imports; none
    when the code was shipped to a cluster (there, the shipped copies are what workers import)."""
    import ray

    if ray.is_initialized() and ray.get_runtime_context().runtime_env.get("py_modules"):
        return []
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
