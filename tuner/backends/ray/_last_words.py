"""How a rank's process ended when it ended without an exception: its exit code or its signal.

Ray only says that an actor's process died. Each worker process therefore leaves its last words
in a small file on its node (``<tmp>/tuner-last-words/<key>.txt``, the key being its actor id):
``faulthandler`` writes the fatal signal (SIGSEGV, SIGFPE, SIGABRT, SIGBUS, SIGILL) with every
thread's Python stack, and ``os._exit`` is wrapped to write its exit code and caller first.
Nothing is written for SIGKILL (the kernel's OOM killer, ``kill -9``): no file means that. The
driver reads the file (:func:`read`, which deletes it) itself when the dead rank was on its own
node, else through a task on that node;
files of processes that are gone are swept when a new worker starts. No Ray here.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

FOLDER = Path(tempfile.gettempdir()) / "tuner-last-words"
_state: dict[str, Any] = {}  # this process's open file and the real os._exit


def install(key: str, folder: Path = FOLDER) -> Path:
    """From now on this process writes its last words to ``folder/<key>.txt``."""
    folder.mkdir(parents=True, exist_ok=True)
    _sweep(folder)
    path = folder / f"{key}.txt"
    handle = path.open("w", encoding="utf-8")
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    faulthandler.enable(file=handle, all_threads=True)
    if "exit" not in _state:
        _state["exit"] = os._exit
        os._exit = _exit  # type: ignore[assignment]
    _state["file"] = handle
    return path


def _exit(code: int) -> None:
    handle = _state.get("file")
    if handle is not None:
        with contextlib.suppress(Exception):
            frame = sys._getframe(1)
            where = f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno} in {frame.f_code.co_name}"
            handle.write(f"os._exit({code}) at {where}\n")
            handle.flush()
    _state["exit"](code)


def _sweep(folder: Path) -> None:
    """Delete the files of processes that no longer exist (killed workers never clean up)."""
    for path in folder.glob("*.txt"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int(path.read_text(encoding="utf-8").split("\n", 1)[0].split()[1])
            if not Path(f"/proc/{pid}").exists():
                path.unlink()


def read(key: str, folder: Path = FOLDER) -> str | None:
    """The last words of the process with ``key`` (and the file is gone), or ``None``."""
    path = folder / f"{key}.txt"
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    with contextlib.suppress(OSError):
        path.unlink()
    return text


_SIGNAL = re.compile(r"Fatal Python error: (\w[\w ]*)")
_EXIT = re.compile(r"os\._exit\((-?\d+)\) at (.+)")
_WHERE = re.compile(r'File "([^"]+)", line (\d+) in (\S+)')
_LIBRARY = re.compile(r"[/\\](?:site-packages|dist-packages|lib[/\\]python\d[\d.]*)[/\\]")
_NAMES = {
    "Segmentation fault": "SIGSEGV",
    "Floating-point exception": "SIGFPE",
    "Floating point exception": "SIGFPE",
    "Aborted": "SIGABRT",
    "Bus error": "SIGBUS",
    "Illegal instruction": "SIGILL",
}


def describe(text: str | None) -> str:
    """One line for the error: ``exited with code 3 (os._exit at toy.py:58 in faulty)``,
    ``killed by SIGSEGV (Segmentation fault) at toy.py:61 in faulty``, or, without last words,
    what that means."""
    if text:
        if match := _EXIT.search(text):
            return f"exited with code {match.group(1)} (os._exit at {match.group(2).strip()})"
        if match := _SIGNAL.search(text):
            what = match.group(1).strip()
            line = f"killed by {_NAMES.get(what, what)} ({what})"
            # faulthandler lists every thread, innermost call first; the one that crashed is "Current"
            blocks = text[match.end() :].split("\n\n")
            frames = _WHERE.findall(next((b for b in blocks if "Current thread" in b), ""))
            if frames:
                mine = next((f for f in frames if not _LIBRARY.search(f[0])), frames[0])
                line += f" at {os.path.basename(mine[0])}:{mine[1]} in {mine[2]}"
                if mine != frames[0]:
                    line += f" (inside {frames[0][2]})"
            return line
    return "ended without last words: killed by SIGKILL (the kernel's OOM killer, kill -9) or by the node's end"
