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
        return _join(address, ship, quiet)
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


def _join(address: str, ship: Sequence[str], quiet: dict[str, Any]) -> Connection:
    """Join a running cluster, with its token when it has token authentication (as ``ray start``
    does: a token in ``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token`` turns
    it on); a failure is one line, not Ray's retries and traceback."""
    import ray

    from tuner.errors import UserError

    _token_mode_if_token()
    try:
        joined: Any = ray.init(address=address, runtime_env={"py_modules": shipped_modules(ship)}, **quiet)
    except Exception as exc:  # ConnectionError, AuthenticationError, RuntimeError from the GCS client
        causes: list[str] = []
        cause: BaseException | None = exc
        while cause is not None and len(causes) < 5:
            causes.append(f"{type(cause).__name__}: {cause}")
            cause = cause.__cause__ or cause.__context__
        text = " ".join(causes)
        hint = (
            "the cluster wants its authentication token: put it in ~/.ray/auth_token or RAY_AUTH_TOKEN "
            "(`ray get-auth-token` prints it on the head node)"
            if "auth" in text.lower()
            else "is the head node running, and is the address its GCS address (ray start --head --port)?"
        )
        raise UserError(f"--address {address}: cannot join the Ray cluster; {hint}") from exc
    return Connection(False, _url(joined.dashboard_url), address)


def _token_mode_if_token() -> None:
    """Turn token authentication on when a token is at hand and ``RAY_AUTH_MODE`` says nothing,
    as ``ray start`` does (Ray's own helper; its module is private, so it is optional)."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:
        return
    logging.getLogger(maybe_enable_token_auth_if_token_available.__module__).setLevel(logging.ERROR)
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def token_hint() -> str:
    """Where the cluster's token is, for the dashboard's login prompt."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "it is in RAY_AUTH_TOKEN"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    return f"`ray get-auth-token` prints it; it is kept in {path}"


def token_auth() -> bool:
    """Whether the connected cluster requires Ray's authentication token (its dashboard asks for it)."""
    import importlib

    try:
        raylet: Any = importlib.import_module("ray._raylet")
        return bool(raylet.get_authentication_mode() == raylet.AuthenticationMode.TOKEN)
    except (ImportError, AttributeError):
        return False


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
    view = ClusterView()
    view.refresh()
    return view.capacity(cpus, gpus)


class ClusterView:
    """The cluster as the engine needs to see it: live nodes, and where each placement group's
    bundles are placed. Read from Ray's control store at most once every ``every`` seconds."""

    def __init__(self, every: float = 1.0) -> None:
        self.every = every
        self._read = -math.inf
        self._alive: set[str] = set()
        self._resources: list[dict[str, float]] = []
        self._groups: dict[str, dict[str, Any]] = {}

    def refresh(self, force: bool = False) -> None:
        import time

        import ray
        from ray.util import placement_group_table

        now = time.monotonic()
        if not force and now - self._read < self.every:
            return
        self._read = now
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        self._alive = {n["NodeID"] for n in nodes}
        self._resources = [n.get("Resources", {}) for n in nodes]
        self._groups = placement_group_table()

    def alive(self, node_id: str) -> bool:
        return node_id in self._alive

    def placed(self, pg_id: str) -> list[str] | None:
        """The node of each bundle when the group is placed on live nodes, else ``None``."""
        entry = self._groups.get(pg_id)
        if entry is None or entry.get("state") != "CREATED":
            return None
        where = entry.get("bundles_to_node_id") or {}
        nodes = [where.get(i) for i in range(len(entry.get("bundles", {})))]
        if not nodes or any(n is None or n not in self._alive for n in nodes):
            return None
        return [str(n) for n in nodes]

    def capacity(self, cpus: float, gpus: float) -> int:
        return sum(fits(r, cpus, gpus) for r in self._resources)


def route_ray_messages(log: Any, say: Any) -> None:
    """Ray's driver prints the cluster's error messages as they arrive (a lost node comes with a
    state dump of hundreds of lines, a killed worker with a paragraph): send each whole to
    ``log`` and, for a lost node, one line to ``say``.

    Ray offers no switch for this; its module-level printer is replaced (checked to exist).
    """
    import ray._private.worker as ray_worker

    original = getattr(ray_worker, "print_to_stdstream", None)
    if original is None:
        return

    def printer(data: dict[str, Any], ignore_prefix: bool) -> None:
        if data.get("pid") != "raylet":
            original(data, ignore_prefix)
            return
        text = "\n".join(str(line) for line in data.get("lines", []))
        log(text)
        if "has been marked dead" in text:
            say(f"Ray: {_first_sentence(text)} (details in the study's logs/ray.log)")

    ray_worker.print_to_stdstream = printer


def _first_sentence(text: str, limit: int = 160) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    first = first.split(" because ")[0].split(". ")[0]
    return first if len(first) <= limit else first[: limit - 1] + "…"


def nodes_not_seeing(marker: str, timeout: float = 60.0) -> list[str]:
    """The live nodes (their addresses), other than the driver's, on which file ``marker`` does not
    exist: a path there is local to this machine, not shared."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = ray.get_runtime_context().get_node_id()
    others = [n for n in ray.nodes() if n.get("Alive") and n["NodeID"] != here]
    if not others:
        return []
    probe = ray.remote(num_cpus=0)(os.path.exists)
    refs = [
        probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(marker)
        for n in others
    ]
    seen = ray.get(refs, timeout=timeout)
    return [n.get("NodeManagerAddress", n["NodeID"]) for n, ok in zip(others, seen, strict=True) if not ok]
