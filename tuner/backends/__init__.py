"""Where trials run: each backend turns the engine's actions into running trials and their events.

``ray`` (the default) runs them on an embedded or existing Ray cluster; ``simulated`` runs
``f(config, step)`` functions on a virtual clock. Each is imported only when a study uses it:
a simulated study never imports Ray.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from tuner.config import Study
from tuner.engine import Backend

NAMES = ("ray", "simulated")


@contextlib.contextmanager
def session(
    study: Study,
    say: Callable[[str], None],
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    dashboard: bool | None = None,
) -> Iterator[Backend]:
    """The backend ``study`` names (``backend:`` in its file), ready for :func:`tuner.engine.execute`
    and cleaned up after; ``address``, ``num_cpus`` and ``dashboard`` say where Ray runs."""
    if study.spec.backend == "simulated":
        from tuner.backends.simulated import SimulatedBackend

        yield SimulatedBackend(study)
        return
    from tuner.backends.ray import ray_session

    with ray_session(study, say, address, num_cpus, dashboard) as backend:
        yield backend


__all__ = ["NAMES", "session"]
