"""``state.json``: whether a study's run is going on, was interrupted, or is done."""

from __future__ import annotations

import json
import os
import re
import socket
import time
from pathlib import Path
from typing import Any

from tuner.results._store import atomic_write

STATE = "state.json"


def write_state(folder: Path, state: str, elapsed: float) -> None:
    data = {
        "state": state,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "elapsed_s": round(elapsed, 3),
        "updated": time.time(),
    }
    atomic_write(folder / STATE, lambda p: p.write_text(json.dumps(data), encoding="utf-8"))


def read_state(folder: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((folder / STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data


def alive(state: dict[str, Any]) -> bool:
    """Whether the process that wrote ``state`` still runs (on this host; elsewhere: unknown, say yes)."""
    if state.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(state["pid"]), 0)
    except (OSError, KeyError, ValueError):
        return False
    return True


def unfinished(folder: Path) -> str | None:
    """Why ``folder`` holds a run that has not finished, or ``None``."""
    state = read_state(folder)
    if state is None or state.get("state") == "done":
        return None
    if state.get("state") == "running" and alive(state):
        return f"{folder} is being run now (pid {state.get('pid')} on {state.get('host')})"
    return f"{folder} holds an unfinished run"


def unfinished_run(storage: Path, name: str) -> tuple[Path, str] | None:
    """The first run of the study ``name`` in ``storage`` (``name``, ``name-2``... but not
    ``name-extra``, another study's) left unfinished, with why; ``None`` when there is none."""
    pattern = re.compile(rf"{re.escape(name)}(-[0-9]+)?")
    for folder in sorted(p for p in storage.glob(f"{name}*") if pattern.fullmatch(p.name)):
        why = unfinished(folder)
        if why:
            return folder, why
    return None
