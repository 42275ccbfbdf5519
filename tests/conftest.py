"""Shared fixtures: a private Ray per session, run from a scratch folder."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.pop("RAY_ADDRESS", None)
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# mypy takes 30-40 s on a fresh clone (no cache yet): when its check is among the tests to run,
# it starts as soon as they are collected and runs beside them at the lowest priority (on the CPU
# the tests leave idle: many wait on trials); the check collects its result. With the tests spread
# over processes (pytest -n), the first starts it; another that gets the check runs its own, with
# a cache of its own.
BACKGROUND = {"tests/test_quality.py::test_tool_passes[mypy]": ("mypy",)}
WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1... under pytest -n; None without
_started: dict[tuple[str, ...], tuple[subprocess.Popen[bytes], IO[bytes]]] = {}


def _start_tool(args: tuple[str, ...]) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    out = tempfile.TemporaryFile()  # noqa: SIM115 (closed by run_tool or at the session's end)
    if args[0] == "mypy" and WORKER not in (None, "gw0"):
        args = (*args, "--cache-dir", str(Path(tempfile.gettempdir()) / f"tuner-mypy-{WORKER}"))
    command = [sys.executable, "-m", *args]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, preexec_fn=lambda: os.nice(19))
    return proc, out


def run_tool(*args: str) -> tuple[int, str]:
    """``python -m ARGS`` in the project's root: its exit code and output (stdout and stderr),
    from the run started in the background for it when there is one."""
    proc, out = _started.pop(args, None) or _start_tool(args)
    with out:
        proc.wait()
        out.seek(0)
        return proc.returncode, out.read().decode(errors="replace")


def pytest_collection_finish(session: pytest.Session) -> None:
    wanted = {item.nodeid for item in session.items}
    if WORKER not in (None, "gw0"):
        return
    for nodeid, args in BACKGROUND.items():
        if nodeid in wanted:
            _started[args] = _start_tool(args)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Spread over processes (pytest -n), the slow tests (real studies, tens of seconds) go first
    and the quick ones fill in after them, so that no process is left with one long test at the
    end while the others are idle. Each process collects the same order."""
    if WORKER is not None:
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A background run never collected (the session stopped early) is ended, by its pid."""
    for proc, out in _started.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        out.close()
    _started.clear()


@pytest.fixture(scope="session")
def ray_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A private Ray with 2 CPUs and its own temp dir, shut down after the session."""
    import ray

    temp = tmp_path_factory.mktemp("ray")
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        _temp_dir=str(temp),
        logging_level="ERROR",
        log_to_driver=False,
        object_store_memory=200 * 1024 * 1024,
    )
    yield
    ray.shutdown()


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from a scratch folder (results land there), with the project importable."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT))
    return tmp_path


@pytest.fixture
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything starts or joins Ray."""
    import ray

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("Ray was started")

    monkeypatch.setattr(ray, "init", refuse)


@pytest.fixture
def ray_tmp() -> Iterator[Path]:
    """A short private folder for an embedded Ray started by a CLI subprocess (socket paths
    over ~100 characters fail); afterwards, any of that Ray's processes still alive (a
    SIGKILLed driver leaves its agents behind) are ended by pid."""
    path = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    yield path
    end_ray_processes(path)
    shutil.rmtree(path, ignore_errors=True)


def end_ray_processes(ray_tmp: Path) -> None:
    marker = f"RAY_TMPDIR={ray_tmp}".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            with contextlib.suppress(OSError):
                os.kill(int(pid), signal.SIGKILL)


def cli_env(ray_tmp: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if ray_tmp is not None:
        env["RAY_TMPDIR"] = str(ray_tmp)
    return env


def cli(*args: str, cwd: Path, ray_tmp: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m tuner ARGS`` as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "tuner", *args],
        cwd=cwd,
        env=cli_env(ray_tmp),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cli_here(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m tuner ARGS`` run in this process, from ``cwd``: the same parser, verbs, output
    and exit code as :func:`cli`, on the session's private Ray (the caller asks for ``ray_local``)
    instead of an embedded Ray of its own, which costs 10-20 s a call on this 2-core machine.
    The verbs' subprocess path (``__main__``, an embedded Ray, signals) keeps its own tests."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from tuner.cli import main

    out, err, environ, here = io.StringIO(), io.StringIO(), dict(os.environ), Path.cwd()
    os.chdir(cwd)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse: --help, a bad flag
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        os.chdir(here)
        os.environ.clear()
        os.environ.update(environ)  # main sets TUNER_PROGRESS and the like for its process
    return subprocess.CompletedProcess(["tuner", *args], code, out.getvalue(), err.getvalue())


def study(body: str, **overrides: Any) -> Any:
    """A study from an indented YAML string (tests write them inline)."""
    import textwrap

    from tuner.config import load_study

    return load_study(text=textwrap.dedent(body), **overrides)
