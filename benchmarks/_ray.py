"""The private Ray every benchmark runs on: its own temp folder, quiet, shut down at the end."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator


@contextlib.contextmanager
def private_ray(num_cpus: int, folder: str) -> Iterator[None]:
    """A local Ray of ``num_cpus`` CPUs whose files go under ``folder``/ray, for the ``with`` block."""
    import ray

    ray.init(
        address="local",
        num_cpus=num_cpus,
        include_dashboard=False,
        _temp_dir=os.path.join(folder, "ray"),
        logging_level=logging.ERROR,
        log_to_driver=False,
    )
    try:
        yield
    finally:
        ray.shutdown()
