"""The last checkpoint of each trial, kept by the driver (so a retry may land on any node).

Writes go through the :class:`Writer`; until one is on disk, ``load`` answers from memory, so
a retry never waits for the disk and never sees an older checkpoint than the last reported.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

Submit = Callable[[str, Callable[[], None]], None]


class Checkpoints:
    def __init__(self, folder: Path, submit: Submit | None = None, saved: Callable[[str, float], None] | None = None):
        self.folder = folder
        self._submit = submit
        self._saved = saved  # told (trial, step) once a checkpoint is on disk
        self._waiting: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def path_of(self, trial_id: str) -> Path | None:
        path = self.folder / f"{trial_id}.pt"
        return path if path.exists() else None

    def save(self, trial_id: str, step: float, state: Any) -> None:
        entry = (step, state)
        with self._lock:
            self._waiting[trial_id] = entry

        def write() -> None:
            self._write(trial_id, step, state)
            with self._lock:
                if self._waiting.get(trial_id) is entry:
                    del self._waiting[trial_id]
            if self._saved is not None:
                self._saved(trial_id, step)

        if self._submit is None:
            write()
        else:
            self._submit(f"checkpoint:{trial_id}", write)

    def _write(self, trial_id: str, step: float, state: Any) -> None:
        import torch

        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{trial_id}.pt"
        tmp = path.with_suffix(".pt.tmp")
        torch.save({"step": step, "state": state}, tmp)
        os.replace(tmp, path)

    def load(self, trial_id: str) -> tuple[float | None, Any]:
        """``(step, state)`` of the last checkpoint, or ``(None, None)``; tensors only, no pickle."""
        with self._lock:
            if trial_id in self._waiting:
                return self._waiting[trial_id]
        path = self.path_of(trial_id)
        if path is None:
            return None, None
        import torch

        saved = torch.load(path, weights_only=True, map_location="cpu")
        return saved["step"], saved["state"]
