"""Joining or starting Ray for one study, and leaving it as it was found."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

from tuner.backends.ray import _by_value
from tuner.backends.ray._backend import RayBackend
from tuner.backends.ray._cluster import connect, token_auth, token_hint
from tuner.config import Study


@contextlib.contextmanager
def ray_session(
    study: Study, say: Callable[[str], None], address: str | None, num_cpus: int | None, dashboard: bool | None
) -> Iterator[RayBackend]:
    """A :class:`RayBackend` on the cluster at ``address`` (an embedded one by default). SIGTERM
    (``ray job stop``, a pod evicted) stops the run as Ctrl-C does while it runs."""
    try:
        conn = connect(address, ship=study.modules, num_cpus=num_cpus, dashboard=dashboard)
    except SystemExit as exc:  # ray.init's own SIGTERM handler exits with the signal's number
        if exc.code == signal.SIGTERM:
            raise KeyboardInterrupt from None  # interrupted as it started: exit code 130 as later
        raise
    previous = _stop_on_sigterm()
    published: list[bytes] = []
    try:
        published = _by_value.publish([study.trainable, study.spec.stopper])
        if conn.dashboard_url:
            say(f"Ray dashboard: {conn.dashboard_url}")
            if token_auth():
                say(f"  it asks for the cluster's token: {token_hint()}")
        yield RayBackend(study, say)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        _by_value.withdraw(published)
        if conn.started_here:
            conn.close()


def _stop_on_sigterm() -> Any:
    """Returns the handler it replaced (``None`` off the main thread, where signals cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)
