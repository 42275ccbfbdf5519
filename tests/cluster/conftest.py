"""A real Ray cluster of separate node processes on this machine, token authentication on.

``ray start --head --block`` and ``ray start --address ... --block`` per node, each with its own
ports and one temp folder; a node is ended by the pid of its ``ray start`` (which stops what it
started) and whatever of it is left, by pid. Never ``ray stop``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT

RAY = str(Path(sys.executable).with_name("ray"))
# To keep tests short: missed heartbeats mark a node dead in ~3 s instead of Ray's default ~15 s,
# and metrics reach the Prometheus endpoint every 2 s instead of every 10 s.
SYSTEM_CONFIG = (
    '{"health_check_period_ms": 1000, "health_check_failure_threshold": 3, "health_check_timeout_ms": 1000,'
    ' "metrics_report_interval_ms": 2000}'
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Node:
    process: subprocess.Popen[bytes]
    log: Path
    metrics_port: int

    def raylet(self) -> psutil.Process | None:
        try:
            kids = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.Error:
            return None
        return next((p for p in kids if p.name() == "raylet"), None)

    def node_id(self) -> str | None:
        raylet = self.raylet()
        with contextlib.suppress(psutil.Error):
            flags = raylet.cmdline() if raylet is not None else []
            return next((f.split("=", 1)[1] for f in flags if f.startswith("--node_id=")), None)
        return None

    def processes(self) -> list[psutil.Process]:
        try:
            parent = psutil.Process(self.process.pid)
            return [parent, *parent.children(recursive=True)]
        except psutil.Error:
            return []


@dataclass
class Cluster:
    folder: Path
    address: str
    dashboard: str
    metrics_port: int
    env: dict[str, str]
    nodes: list[Node] = field(default_factory=list)
    # A folder the worker node has an empty one of its own at (what a path local to this machine
    # is to other machines); None where a mount namespace is not permitted.
    local: Path | None = None

    def start_node(self, cpus: int = 1, head: bool = False, private: Path | None = None) -> Node:
        """A node; with ``private``, that folder is an empty one of its own on this node (a mount
        namespace of its own with a tmpfs there: what a node-local path is to other machines)."""
        log = self.folder / f"node{len(self.nodes)}.log"
        metrics = self.metrics_port if head else free_port()
        args = [RAY, "start", "--block", "--num-cpus", str(cpus), "--disable-usage-stats"]
        args += ["--dashboard-agent-listen-port", str(free_port()), "--metrics-export-port", str(metrics)]
        args += ["--runtime-env-agent-port", str(free_port())]
        if head:
            port = self.address.rsplit(":", 1)[1]
            args += ["--head", "--port", port, "--temp-dir", str(self.folder / "ray")]
            args += ["--dashboard-port", self.dashboard.rsplit(":", 1)[1], "--dashboard-host", "127.0.0.1"]
            args += ["--include-dashboard", "true", "--ray-client-server-port", str(free_port())]
            args += ["--system-config", SYSTEM_CONFIG]
        else:
            args += ["--address", self.address]
        if private is not None:
            command = f"mount -t tmpfs tmpfs {shlex.quote(str(private))} && exec {shlex.join(args)}"
            args = ["unshare", "--mount", "--propagation", "private", "sh", "-c", command]
        with log.open("wb") as out:
            node = Node(subprocess.Popen(args, env=self.env, stdout=out, stderr=subprocess.STDOUT), log, metrics)
        self.nodes.append(node)
        return node

    def alive(self) -> set[str]:
        """The ids of the nodes ``ray status`` lists as active."""
        done = subprocess.run(
            [RAY, "status", "--address", self.address], env=self.env, capture_output=True, text=True, check=False
        )
        active = done.stdout.split("Active:")[1].split("Pending:")[0] if "Active:" in done.stdout else ""
        return {line.split("node_", 1)[1].strip() for line in active.splitlines() if "node_" in line}

    def join(self, cpus: int = 1, head: bool = False, private: Path | None = None, attempts: int = 3) -> Node:
        """A node that has joined (the head: that is up): started again (the failed one ended by
        pid) when its ``ray start`` gives up, as it does when it cannot read its node's record
        from the GCS within Ray's fixed 30 s (seen once in CI on this 2-core machine: that one
        call hit its deadline while the head was still starting its dashboard)."""
        for attempt in range(attempts):
            node = self.start_node(cpus, head=head, private=private)
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and node.process.poll() is None:
                if (node_id := node.node_id()) is not None and node_id in self.alive():
                    return node
                time.sleep(0.5)
            self.stop_node(node)
            if attempt < attempts - 1:  # the last one's log stays for the message
                self.nodes.remove(node)
        raise RuntimeError(f"no node joined in {attempts} attempts:\n{self.logs()}")

    def wait_for(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.alive()) != count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster never had {count} live nodes:\n{self.logs()}")
            time.sleep(0.5)

    def logs(self) -> str:
        """The tail of each node's ``ray start`` output and of the GCS's and raylets' own logs."""
        files = [n.log for n in self.nodes]
        for pattern in ("gcs_server.*", "raylet*.out", "raylet*.err"):
            files += sorted(self.folder.glob(f"ray/session_latest/logs/{pattern}"))
        return "\n".join(f"--- {f.name}\n{f.read_text(errors='replace')[-2000:]}" for f in files if f.exists())

    def stop_node(self, node: Node) -> None:
        survivors = node.processes()
        with contextlib.suppress(ProcessLookupError):
            node.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            node.process.wait(timeout=20)
        for proc in survivors:  # whatever outlived its `ray start`, by pid
            with contextlib.suppress(psutil.Error):
                proc.kill()

    @property
    def driver_env(self) -> dict[str, str]:
        """A user's shell: the token at hand, nothing else said (tuner turns token mode on)."""
        return {k: v for k, v in self.env.items() if k != "RAY_AUTH_MODE"}

    def cli(self, *args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tuner", *args],
            cwd=cwd,
            env=self.driver_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def popen(self, *args: str, cwd: Path) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "tuner", *args],
            cwd=cwd,
            env=self.driver_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def private_folder(path: Path) -> Path | None:
    """``path``, made, when a node can have an empty folder of its own there (a mount namespace
    with a tmpfs, as :meth:`Cluster.start_node` makes); else ``None``."""
    path.mkdir()
    command = f"mount -t tmpfs tmpfs {shlex.quote(str(path))}"
    probe = ["unshare", "--mount", "--propagation", "private", "sh", "-c", command]
    return path if subprocess.run(probe, capture_output=True, check=False).returncode == 0 else None


@pytest.fixture(scope="package")
def cluster() -> Iterator[Cluster]:
    """A head and one worker node, one CPU each, token authentication on, the worker with a
    folder of its own at ``Cluster.local``: one for every test of this folder (each leaves it with
    the two nodes it began with), ended after the last."""
    folder = Path(tempfile.mkdtemp(prefix="rc", dir="/tmp"))  # short: Ray's socket paths must fit
    (folder / "token").write_text(secrets.token_hex(32))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(
        RAY_AUTH_MODE="token",  # what a node needs to join a cluster with token authentication
        RAY_AUTH_TOKEN_PATH=str(folder / "token"),
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    port = free_port()
    made = Cluster(folder, f"127.0.0.1:{port}", f"127.0.0.1:{free_port()}", free_port(), env)
    try:
        made.join(head=True)
        made.local = private_folder(folder / "local")
        made.join(private=made.local)
        yield made
    finally:
        for node in reversed(made.nodes):
            made.stop_node(node)
        shutil.rmtree(folder, ignore_errors=True)
