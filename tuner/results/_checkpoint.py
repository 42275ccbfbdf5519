"""A result's checkpoint: its path, a ``str`` as before, that Ray Tune scripts can also use the
way they use a ``Result.checkpoint`` (``as_directory()``, ``to_directory()``, ``path``)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import yaml

from tuner.errors import ResultsError
from tuner.storage import is_remote


class Checkpoint(str):
    """The path of a checkpoint (a directory; a state file for tuner's own trainables), readable
    as Ray's ``ray.tune.Checkpoint`` is. ``location`` is the store it lies in when that is an
    object store (its query options reach it)."""

    location: str | None

    def __new__(cls, path: str, location: str | None = None) -> Checkpoint:
        made = super().__new__(cls, path)
        made.location = location
        return made

    @property
    def path(self) -> str:
        return str(self)

    @property
    def filesystem(self) -> Any:
        """The ``pyarrow.fs`` filesystem of :attr:`path`."""
        return self._store().filesystem

    def _store(self) -> Any:
        from tuner.storage import CheckpointStore

        if is_remote(self):
            return CheckpointStore(self.location if self.location and is_remote(self.location) else str(self))
        return CheckpointStore(os.path.dirname(str(self)) or ".")

    def _inside(self) -> str:
        """The path within its filesystem (an object store's, without the scheme)."""
        return str(self).split("://", 1)[1].split("?", 1)[0] if is_remote(self) else str(self)

    def _check_directory(self) -> None:
        if not is_remote(self) and not os.path.isdir(self):
            what = "a state file written by trial.report (read it with torch.load)" if os.path.isfile(self) else "gone"
            raise ResultsError(f"checkpoint {self}: not a directory: it is {what}")

    @contextlib.contextmanager
    def as_directory(self) -> Iterator[str]:
        """A local directory holding the checkpoint: itself, or a temporary copy of one in an
        object store (removed after the block)."""
        self._check_directory()
        if not is_remote(self):
            yield str(self)
            return
        with tempfile.TemporaryDirectory(prefix="tuner-ckpt-") as local:
            yield self._store().download(self._inside(), local)

    def to_directory(self, path: str | os.PathLike[str] | None = None) -> str:
        """The checkpoint copied into ``path`` (default: a new temporary directory); that path."""
        from pyarrow import fs

        self._check_directory()
        target = str(path) if path is not None else tempfile.mkdtemp(prefix="tuner-ckpt-")
        os.makedirs(target, exist_ok=True)
        local = fs.LocalFileSystem()
        fs.copy_files(self._inside(), target, source_filesystem=self.filesystem, destination_filesystem=local)
        return target

    def get_metadata(self) -> dict[str, Any]:
        return {}

    def __reduce__(self) -> tuple[Any, tuple[str, str | None]]:
        return (Checkpoint, (str(self), self.location))


def _represent(dumper: Any, value: Checkpoint) -> Any:
    return dumper.represent_str(str(value))


yaml.SafeDumper.add_representer(Checkpoint, _represent)  # written as the path it is
yaml.Dumper.add_representer(Checkpoint, _represent)
