"""The one-line live view of a running study (in place on a terminal, sparse otherwise)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tuner.results import Recorder


class Progress:
    def __init__(
        self,
        recorder: Recorder,
        *,
        stream: TextIO | None = None,
        quiet: bool = False,
        time_limit: float | None = None,
        every: float = 0.5,
    ) -> None:
        self.recorder = recorder
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = self.stream.isatty()
        self.time_limit = time_limit
        self.every = every if self.tty else 15.0
        self.started = time.monotonic()
        self._last = 0.0
        self._width = 0

    def line(self) -> str:
        c = self.recorder.counts()
        parts = [f"{time.monotonic() - self.started:6.1f}s"]
        if self.time_limit:
            parts[0] += f"/{self.time_limit:.0f}s"
        parts.append(
            f"running {c['running']}  finished {c['finished']}  pruned {c['pruned']}"
            f"  failed {c['errored'] + c['nan'] + c['oom']}"
        )
        best = self.recorder.best()
        if best is not None and best.value is not None:
            parts.append(f"best {self.recorder.metric}={best.value:.4g} ({best.trial_id})")
        return " | ".join(parts)

    def update(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.quiet or (not force and now - self._last < self.every):
            return
        self._last = now
        text = self.line()
        if self.tty:
            pad = max(self._width - len(text), 0)
            self.stream.write("\r" + text + " " * pad)
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if not self.quiet:
            self.update(force=True)
            if self.tty:
                self.stream.write("\n")
                self.stream.flush()
