"""Where trials run: each backend turns the engine's actions into running trials and their events.

``ray`` (the default) runs them on an embedded or existing Ray cluster; ``simulated`` runs
``f(config, step)`` functions on a virtual clock. Each is imported only when a study uses it:
a simulated study never imports Ray. ``tune`` hands the whole study to Ray Tune's ``Tuner``
(:mod:`tuner.backends.ray.tune`), which then makes the decisions the engine makes for the others;
:func:`run` picks the one a study names.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tuner.config import Study
from tuner.engine import Backend, Outcomes

NAMES = ("ray", "tune", "simulated")


def run(
    study: Study,
    seed: int,
    folder_for: Callable[[], Path],
    say: Callable[[str], None],
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    dashboard: bool | None = None,
    **options: Any,
) -> Outcomes:
    """Run ``study`` on the backend it names; ``options`` are :func:`tuner.engine.execute`'s
    (``quiet``, ``journal`` and ``elapsed`` to continue a run, ``trial_seed``, ``max_steps``)."""
    if study.spec.backend == "tune":
        from tuner.backends.ray.tune import run_on_tune

        where: dict[str, Any] = {"address": address, "num_cpus": num_cpus, "dashboard": dashboard}
        return run_on_tune(study, seed, folder_for, say, **where, **options)
    from tuner.engine import execute

    with session(study, say, address=address, num_cpus=num_cpus, dashboard=dashboard) as backend:
        return execute(study, seed, backend, folder_for, say, **options)


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


__all__ = ["NAMES", "run", "session"]
