"""Periodic work on the engine's clock (simulated time on a simulated backend) or on the real one."""

from __future__ import annotations

import time
from collections.abc import Callable


class Timers:
    """``due(name, every)`` is true at most once every ``every`` seconds for each name."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._last: dict[str, float] = {}

    def due(self, name: str, every: float, *, real: bool = False, first: bool = True) -> bool:
        """``real``: on the wall clock whatever the backend's; ``first``: due at the first call."""
        now = time.monotonic() if real else self._now()
        last = self._last.get(name)
        if last is None and not first:
            self._last[name] = now
            return False
        if last is not None and now - last < every:
            return False
        self._last[name] = now
        return True
