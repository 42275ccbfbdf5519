"""Before a study runs on Ray: checkpoints must go where every node can read them."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

from tuner.backends.ray._cluster import nodes_not_seeing
from tuner.config import Study
from tuner.errors import UserError
from tuner.storage import CheckpointStore, is_remote


def check_checkpoint_location(study: Study, location: str) -> None:
    """On a cluster, a local path is tried from each node (a marker file), and refused if some
    node cannot see it."""
    if is_remote(location):
        return
    fresh = [p for p in [Path(location), *Path(location).parents] if not p.exists()]
    store = CheckpointStore(location)
    marker = store.write_marker(f".tuner-shared-{uuid.uuid4().hex}")
    try:
        blind = nodes_not_seeing(marker)
    finally:
        store.delete(marker)
        for made in fresh:  # leave no folder behind that was made for the test
            with contextlib.suppress(OSError):
                made.rmdir()
    if blind:
        field = "checkpoints.path" if study.spec.checkpoints.path else "storage"
        raise UserError(
            f"{field}: {location} is local to this machine; node(s) {', '.join(blind)} cannot read it. "
            "Give checkpoints.path a folder every node shares (NFS) or an object store (s3://bucket/prefix)"
        )
