"""Where trials run: each backend turns the engine's actions into running trials and their events."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuner.config import Study
    from tuner.engine._backend import Backend

NAMES = ("ray", "simulated")


def create(study: Study, **options: Any) -> Backend:
    """The backend ``study`` names (``backend:`` in its file), imported only when chosen:
    a simulated study never imports Ray. ``options`` go to the Ray backend (where to connect)."""
    if study.spec.backend == "simulated":
        from tuner.backends.simulated import SimulatedBackend

        return SimulatedBackend(study)
    from tuner.backends.ray import RayBackend  # type: ignore[attr-defined]

    backend: Backend = RayBackend(study, **options)
    return backend


__all__ = ["NAMES", "create"]
