"""The append-only record of a study's events: what ``resume`` replays.

One JSON object a line, flushed after each event and synced to disk at every snapshot, so
that a driver killed at any moment loses at most the line it was writing (a torn last
line is skipped on reading).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TextIO

JOURNAL = "journal.jsonl"


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO | None = None

    def write(self, event: dict[str, Any]) -> None:
        if self._file is None:
            self._file = self.path.open("a", encoding="utf-8")
        # NaN and inf are written and read back as Python's json does (NaN, Infinity).
        self._file.write(json.dumps(event, default=str) + "\n")
        self._file.flush()

    def sync(self) -> None:
        if self._file is not None:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self.sync()
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
