"""The append-only record of a study's events: what ``resume`` replays.

One JSON object a line, flushed after each event and synced to disk at every snapshot, so
that a driver killed at any moment loses at most the line it was writing (a torn last
line is skipped on reading).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Any, TextIO

JOURNAL = "journal.jsonl"


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO | None = None
        self._lock = threading.Lock()  # the loop and the writer thread both write events

    def write(self, event: dict[str, Any]) -> None:
        # NaN and inf are written and read back as Python's json does (NaN, Infinity).
        line = json.dumps(event, default=str) + "\n"
        with self._lock:
            if self._file is None:
                self._file = self.path.open("a", encoding="utf-8")
            self._file.write(line)
            self._file.flush()

    def sync(self) -> None:
        with self._lock:
            fd = None if self._file is None else self._file.fileno()
        if fd is not None:
            with contextlib.suppress(OSError):  # closed meanwhile: close() synced it
                os.fsync(fd)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                os.fsync(self._file.fileno())
                self._file.close()
                self._file = None


def read_journal(folder: Path) -> list[dict[str, Any]]:
    path = folder / JOURNAL
    if not path.exists():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # the line being written when the driver died
        events.append(event)
    return events
