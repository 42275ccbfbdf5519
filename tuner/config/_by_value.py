"""Objects a study names that were handed over in Python rather than written in a module.

A Ray Tune script run through :class:`tuner.integrations.ray_tune.Tuner` passes its trainable
(and a stopper) as objects, often defined in the script itself (``__main__``), where a worker
process cannot import them. :func:`give` names such an object the way a study file would
(``__main__:train_fn``) and keeps it; :func:`tuner.config.import_named` finds it here first. The
workers get a copy through the backend (:mod:`tuner.backends.ray`), which publishes
:func:`pickled` copies and installs a fetcher (:func:`on_miss`) in each worker: an object is
pickled with cloudpickle, by value for ``__main__`` and by reference for importable modules, as
Ray Tune ships its trainables.

An object given here is trusted: the caller's own code handed it over. Pure: no Ray.
"""

from __future__ import annotations

import contextlib
import re
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

_OBJECTS: dict[str, Any] = {}
_FETCHERS: list[Callable[[str], Any]] = []
_LOCK = threading.Lock()
_MISSING = object()


def give(obj: Any, hint: str | None = None) -> str:
    """The dotted name ``obj`` goes by in a study (``module:name``), kept for this process.

    The module is where ``obj`` was defined; the name is its own (``hint`` for an instance or a
    lambda), made unique among the objects given: the same object always gets the same name."""
    with _LOCK:
        for name, kept in _OBJECTS.items():
            if kept is obj:
                return name
        module = getattr(obj, "__module__", None) or "__main__"
        if not isinstance(module, str) or not re.fullmatch(r"[A-Za-z_][\w.]*", module):
            module = "__main__"
        base = _identifier(hint or getattr(obj, "__name__", None) or type(obj).__name__)
        home = sys.modules.get(module) if module != "__main__" else None
        name, n = f"{module}:{base}", 1
        while name in _OBJECTS or getattr(home, name.partition(":")[2], obj) is not obj:
            n += 1
            name = f"{module}:{base}_{n}"
        _OBJECTS[name] = obj
        return name


def keep(name: str, obj: Any) -> None:
    """Keep ``obj`` under a name a study already uses (a restored run's trainable)."""
    with _LOCK:
        _OBJECTS[name] = obj


def given(name: str) -> bool:
    """Whether ``name`` names an object handed over in this process."""
    return name in _OBJECTS


def lookup(name: str, fetch: bool = False) -> Any:
    """The object given as ``name``; with ``fetch``, else one a fetcher finds (a worker asking
    for the driver's copy); else :data:`MISSING`."""
    obj = _OBJECTS.get(name, _MISSING)
    if obj is not _MISSING or not fetch:
        return obj
    for fetch_one in list(_FETCHERS):
        found = fetch_one(name)
        if found is not _MISSING:
            with _LOCK:
                _OBJECTS.setdefault(name, found)
            return _OBJECTS[name]
    return _MISSING


def pickled(names: Iterable[str | None] | None = None, dumps: Callable[[Any], bytes] | None = None) -> dict[str, bytes]:
    """The objects given in this process (those of ``names``, else all), pickled by ``dumps``
    (default cloudpickle's; the workers' copies by Ray's, which keeps object refs' owners)."""
    if dumps is None:
        import cloudpickle

        dumps = cloudpickle.dumps
    with _LOCK:
        chosen = _OBJECTS if names is None else {n: _OBJECTS[n] for n in names if n in _OBJECTS}
        return {name: dumps(obj) for name, obj in chosen.items()}


def pickled_where_possible(names: Iterable[str | None]) -> dict[str, bytes]:
    """As :func:`pickled`, leaving out an object that cannot be pickled (a callback holding a
    lock or a client): a restore then needs it handed over again."""
    out: dict[str, bytes] = {}
    for name in names:
        with contextlib.suppress(Exception):
            out |= pickled([name])
    return out


def on_miss(fetch: Callable[[str], Any]) -> None:
    """Ask ``fetch(name)`` for a name not given here (it returns :data:`MISSING` when it has none)."""
    if fetch not in _FETCHERS:
        _FETCHERS.append(fetch)


def forget(name: str) -> None:
    with _LOCK:
        _OBJECTS.pop(name, None)


def _identifier(text: str) -> str:
    word = re.sub(r"\W", "_", str(text).split(".")[-1]).strip("_") or "obj"
    return word if re.match(r"[A-Za-z_]", word) else f"_{word}"


MISSING = _MISSING
