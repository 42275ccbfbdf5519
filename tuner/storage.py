"""Where a study's checkpoints live: a local path, a path every node shares, or an object store.

Rank 0 of a trial writes its checkpoints here itself and the driver records only where, so a
large model never passes through the driver. A checkpoint is a file of torch-serialised state
(``trial.report(..., checkpoint=state)``) or a directory copied whole (a Ray Tune-style
trainable's ``Checkpoint.from_directory(dir)``). Locations are read through ``pyarrow.fs``: a path
(``/shared/ckpt``), ``file://...``, ``s3://bucket/prefix`` (with pyarrow's query options, e.g.
``?endpoint_override=http://127.0.0.1:9000`` for an S3-compatible server; credentials from the
usual ``AWS_*`` variables), ``gs://`` and ``hdfs://`` as pyarrow supports them.
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

# Variables a worker needs to reach an object store, passed on from the driver's environment.
CREDENTIALS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "GOOGLE_APPLICATION_CREDENTIALS",
)


def is_remote(location: str) -> bool:
    """An object store or other non-local filesystem (``scheme://`` other than ``file://``)."""
    scheme = urlsplit(location).scheme
    return len(scheme) > 1 and scheme != "file"


_DIRECTORY = re.compile(r"checkpoint_(\d+)$")


def credentials() -> dict[str, str]:
    return {k: os.environ[k] for k in CREDENTIALS if k in os.environ}


@dataclass
class CheckpointStore:
    """Save, load and delete checkpoints under ``location``: ``<trial>/step-<step>.pt`` for a
    state, ``<trial>/checkpoint_<step>/`` for a directory."""

    location: str
    _fs: Any = field(default=None, repr=False)
    _root: str = ""

    def __post_init__(self) -> None:
        from pyarrow import fs

        if is_remote(self.location):
            self._fs, self._root = fs.FileSystem.from_uri(self.location)
        else:
            local = self.location.removeprefix("file://")
            self._fs, self._root = fs.LocalFileSystem(), os.path.abspath(local)
        self._root = self._root.rstrip("/")

    def __reduce__(self) -> tuple[Any, tuple[str]]:  # sent to workers by location, not by handle
        return (CheckpointStore, (self.location,))

    def path(self, trial_id: str, step: float) -> str:
        name = f"step-{int(step):08d}.pt" if float(step).is_integer() else f"step-{step:.6g}.pt"
        return posixpath.join(self._root, trial_id, name)

    def save(self, trial_id: str, step: float, state: Any) -> str:
        """Write ``state`` (tensors, numbers, containers) and return where it is."""
        import torch

        buffer = io.BytesIO()
        torch.save({"step": step, "state": state}, buffer)
        path = self.path(trial_id, step)
        self._fs.create_dir(posixpath.dirname(path), recursive=True)
        partial = f"{path}.partial"
        with self._fs.open_output_stream(partial) as out:
            out.write(buffer.getbuffer())
        self._fs.move(partial, path)  # readers never see half a checkpoint
        return path

    @property
    def filesystem(self) -> Any:
        """The ``pyarrow.fs`` filesystem the paths of this store are on."""
        return self._fs

    def folder(self, trial_id: str) -> str:
        """Where the trial's checkpoints go."""
        return posixpath.join(self._root, trial_id)

    def directory(self, trial_id: str, step: int) -> str:
        return posixpath.join(self._root, trial_id, f"checkpoint_{int(step):06d}")

    @staticmethod
    def is_directory(path: str) -> bool:
        """Whether ``path`` names a directory checkpoint (told by its name, without a look)."""
        return _DIRECTORY.search(path.rstrip("/")) is not None

    @staticmethod
    def step_of(path: str) -> int | None:
        """The step a directory checkpoint was saved at; ``None`` for a state file."""
        found = _DIRECTORY.search(path.rstrip("/"))
        return None if found is None else int(found.group(1))

    def save_directory(self, trial_id: str, step: int, source: str, filesystem: Any = None) -> str:
        """Copy the directory ``source`` (on ``filesystem``, default the local one) into the store
        and return where it is. Several ranks may copy into the same step's directory: their
        files are merged."""
        from pyarrow import fs

        path = self.directory(trial_id, step)
        self._fs.create_dir(path, recursive=True)
        fs.copy_files(
            str(source),
            path,
            source_filesystem=filesystem or fs.LocalFileSystem(),
            destination_filesystem=self._fs,
        )
        return path

    def copy(self, path: str, trial_id: str, step: float) -> str:
        """Another trial's checkpoint ``path`` copied among ``trial_id``'s (a population member
        taking on a donor's state), so that deleting either never touches the other; where the
        copy is. Raises ``FileNotFoundError`` when ``path`` is gone."""
        from pyarrow import fs

        if not self.exists(path):
            raise FileNotFoundError(f"no checkpoint at {path}")
        donor = posixpath.basename(posixpath.dirname(path.rstrip("/")))
        if self.is_directory(path):
            target = posixpath.join(self._root, trial_id, f"from-{donor}", f"checkpoint_{int(step):06d}")
            self._fs.create_dir(target, recursive=True)
            fs.copy_files(path, target, source_filesystem=self._fs, destination_filesystem=self._fs)
            return target
        target = posixpath.join(self._root, trial_id, f"from-{donor}", posixpath.basename(path))
        self._fs.create_dir(posixpath.dirname(target), recursive=True)
        self._fs.copy_file(path, f"{target}.partial")
        self._fs.move(f"{target}.partial", target)
        return target

    def drop_after(self, trial_id: str, step: int) -> None:
        """Delete the trial's directory checkpoints past ``step``: an earlier attempt's, which the
        trial, going on from ``step``, writes anew."""
        from pyarrow import fs

        selector = fs.FileSelector(self.folder(trial_id), allow_not_found=True)
        for info in self._fs.get_file_info(selector):
            saved = self.step_of(info.path)
            if info.type == fs.FileType.Directory and saved is not None and saved > step:
                self.delete(info.path)

    def download(self, path: str, local: str) -> str:
        """A directory checkpoint copied to the local directory ``local``."""
        from pyarrow import fs

        os.makedirs(local, exist_ok=True)
        fs.copy_files(path, local, source_filesystem=self._fs, destination_filesystem=fs.LocalFileSystem())
        return local

    def load(self, path: str) -> tuple[float, Any]:
        """``(step, state)``; tensors only (``weights_only``), onto the CPU."""
        import torch

        with self._fs.open_input_stream(path) as stream:
            data = stream.read()
        saved = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
        return saved["step"], saved["state"]

    def delete(self, path: str) -> None:
        from pyarrow.lib import ArrowException

        with contextlib.suppress(FileNotFoundError, OSError, ArrowException):  # already gone: nothing to prune
            if self.is_directory(path):
                self._fs.delete_dir(path)
            else:
                self._fs.delete_file(path)

    def uri(self, path: str) -> str:
        """``path`` as the user would open it (with its scheme, for an object store)."""
        if not is_remote(self.location):
            return path
        return f"{urlsplit(self.location).scheme}://{path}"

    def write_marker(self, name: str) -> str:
        self._fs.create_dir(self._root, recursive=True)
        path = posixpath.join(self._root, name)
        with self._fs.open_output_stream(path) as out:
            out.write(b"tuner")
        return path

    def exists(self, path: str) -> bool:
        from pyarrow import fs

        return bool(self._fs.get_file_info(path).type != fs.FileType.NotFound)
