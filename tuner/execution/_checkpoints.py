"""The last checkpoint of each trial, kept by the driver (so a retry may land on any node)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


class Checkpoints:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path_of(self, trial_id: str) -> Path | None:
        path = self.folder / f"{trial_id}.pt"
        return path if path.exists() else None

    def save(self, trial_id: str, step: float, state: Any) -> None:
        import torch

        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{trial_id}.pt"
        tmp = path.with_suffix(".pt.tmp")
        torch.save({"step": step, "state": state}, tmp)
        os.replace(tmp, path)

    def load(self, trial_id: str) -> tuple[float | None, Any]:
        """``(step, state)`` of the last checkpoint, or ``(None, None)``; tensors only, no pickle."""
        path = self.path_of(trial_id)
        if path is None:
            return None, None
        import torch

        saved = torch.load(path, weights_only=True, map_location="cpu")
        return saved["step"], saved["state"]
