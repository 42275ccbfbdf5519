"""The driver's index of its trials' checkpoints: which exist, where, and which to keep.

Rank 0 writes a checkpoint to the study's :class:`~tuner.storage.CheckpointStore` and reports
its path; the driver records it (journal ``ckpt`` event), hands the last one to a retry or a
resumed trial, and prunes the rest: per trial the last ``keep`` and, with ``keep_best``, the
one at the trial's best value. Deletions go through the writer thread.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from tuner.storage import CheckpointStore

Submit = Callable[[str, Callable[[], None]], None]


@dataclass
class _Saved:
    step: float
    path: str
    value: float | None  # the study's metric at that step, minimised (sign already applied)


@dataclass
class Checkpoints:
    store: CheckpointStore
    keep: int = 1
    keep_best: bool = True
    submit: Submit | None = None
    journal: Callable[[str, float, str], None] | None = None
    files: bool = True  # whether the paths are files of ``store`` (a simulated backend's are not)
    _saved: dict[str, list[_Saved]] = field(default_factory=dict)

    def saved(self, trial_id: str, step: float, path: str, value: float | None) -> None:
        """A checkpoint rank 0 wrote; anything older (but the trial's best) is deleted."""
        entries = self._saved.setdefault(trial_id, [])
        entries.append(_Saved(step, path, value))
        if self.journal is not None:
            self.journal(trial_id, step, path)
        self._prune(trial_id)

    def rewind(self, trial_id: str, step: float | None) -> None:
        """Forget the checkpoints after ``step`` (a retry goes on from there and writes them anew)."""
        self._saved[trial_id] = [s for s in self._saved.get(trial_id, []) if step is not None and s.step <= step]

    def copy(self, path: str, trial_id: str, step: float) -> str:
        """A copy of another trial's checkpoint ``path`` among ``trial_id``'s (raises when it is gone)."""
        return self.store.copy(path, trial_id, step) if self.files else path

    def replace(self, trial_id: str, step: float, path: str, journal: bool = True) -> None:
        """The trial's checkpoints are now only ``path`` (a copy of a donor's): the others are
        deleted. ``journal=False``: the caller's own event records it."""
        gone = [s.path for s in self._saved.get(trial_id, []) if s.path != path] if self.files else []
        self._saved[trial_id] = [_Saved(step, path, None)]
        if self.journal is not None and journal:
            self.journal(trial_id, step, path)
        for old in gone:
            if self.submit is None:
                self.store.delete(old)
            else:
                self.submit(f"delete:{old}", functools.partial(self.store.delete, old))

    def _prune(self, trial_id: str) -> None:
        entries = self._saved[trial_id]
        keep = {id(s) for s in entries[-self.keep :]}
        finite = [s for s in entries if s.value is not None and math.isfinite(s.value)]
        if self.keep_best and finite:
            keep.add(id(min(finite, key=lambda s: s.value)))  # type: ignore[arg-type, return-value]
        gone = [s for s in entries if id(s) not in keep] if self.files else []
        self._saved[trial_id] = [s for s in entries if id(s) in keep]
        for s in gone:
            if self.submit is None:
                self.store.delete(s.path)
            else:
                self.submit(f"delete:{s.path}", functools.partial(self.store.delete, s.path))

    def last(self, trial_id: str) -> tuple[float | None, str | None]:
        """``(step, path)`` of the trial's last checkpoint, or ``(None, None)``."""
        entries = self._saved.get(trial_id)
        if not entries:
            return None, None
        return entries[-1].step, entries[-1].path

    def at(self, trial_id: str, step: float) -> tuple[float, str] | None:
        """``(step, path)`` of the trial's last kept checkpoint at or before ``step``, or ``None``."""
        entries = [s for s in self._saved.get(trial_id, []) if s.step <= step]
        return (entries[-1].step, entries[-1].path) if entries else None

    def path_of(self, trial_id: str) -> str | None:
        """The trial's last checkpoint as the user would open it (``s3://...`` for an object store)."""
        _, path = self.last(trial_id)
        return None if path is None else self.store.uri(path)
