"""The dispatchers that stand in for Ray Tune's and Ray Train's public functions in a worker.

:func:`install` replaces the functions named in :data:`PATCHES`, in the modules that define and
re-export them, by dispatchers: in a thread bound to a trial's session (:func:`bind`) they call
that session's method; anywhere else Ray's own function, so Ray itself is unchanged for anyone
else. Modules of Ray imported later are patched as their import finishes (an import hook), so a
trainable's ``from ray.tune import report`` gets the dispatcher, and a worker that never meets
Ray Tune never imports it.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.abc
import importlib.machinery
import sys
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any

# module -> {function: the Session method that answers it in a trial}
_REPORT = {"report": "report"}
_TUNE = {**_REPORT, "get_checkpoint": "tune_checkpoint", "get_context": "context"}
_TRAIN = {**_REPORT, "get_checkpoint": "train_checkpoint", "get_context": "context", "get_dataset_shard": "dataset"}
_TORCH = {n: n for n in ("get_device", "get_devices", "prepare_model", "prepare_data_loader")}
PATCHES: dict[str, dict[str, str]] = {
    "ray.tune": _TUNE,
    "ray.tune.trainable.trainable_fn_utils": _TUNE,
    "ray.tune.context": {"get_context": "context"},
    "ray.train": _TRAIN,
    "ray.train.v2.api.train_fn_utils": _TRAIN,
    "ray.train._internal.session": _TRAIN,  # Train v1 (RAY_TRAIN_V2_ENABLED=0)
    "ray.train.context": {"get_context": "context"},
    "ray.train.torch": _TORCH,
    "ray.train.torch.train_loop_utils": _TORCH,
    "ray.train.v2.torch.train_loop_utils": _TORCH,
    "ray.train.collective": {"barrier": "barrier", "broadcast_from_rank_zero": "broadcast"},
    "ray.train.collective.collectives": {"barrier": "barrier", "broadcast_from_rank_zero": "broadcast"},
}
V2_TORCH = "ray.train.v2.torch.train_loop_utils"  # whose prepare_* run in a trial, v1 or v2 alike

_local = threading.local()
_active: list[Any] = []  # every session bound in this process
_wrappers: dict[int, Callable[..., Any]] = {}  # id(Ray's function) -> its dispatcher
_lock = threading.RLock()


@contextlib.contextmanager
def bind(session: Any) -> Iterator[None]:
    """Ray's functions answer from ``session`` in this thread while the block runs."""
    previous = getattr(_local, "session", None)
    _local.session = session
    with _lock:
        _active.append(session)
    try:
        yield
    finally:
        _local.session = previous
        with _lock:
            _active.remove(session)


def current() -> Any:
    """The session of the trial this thread runs; with none, the only trial running in this
    process (a thread the trainable started), if there is exactly one."""
    session = getattr(_local, "session", None)
    if session is not None:
        return session
    with _lock:
        return _active[0] if len(_active) == 1 else None


def install() -> None:
    """Patch the Ray modules already imported, and every one of :data:`PATCHES` imported later."""
    with _lock:
        if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
            sys.meta_path.insert(0, _Finder())
        for name in PATCHES:
            module = sys.modules.get(name)
            if module is not None:
                _patch(module)


def rebind(namespace: dict[str, Any]) -> None:
    """Names in ``namespace`` bound to Ray's functions before :func:`install` now name the dispatchers."""
    with _lock:
        for key, value in list(namespace.items()):
            wrapper = _wrappers.get(id(value))
            if wrapper is not None and getattr(wrapper, "__wrapped__", None) is value:
                namespace[key] = wrapper


def _patch(module: types.ModuleType) -> None:
    for name, method in PATCHES.get(module.__name__, {}).items():
        original = getattr(module, name, None)
        if original is None or hasattr(original, "__tuner_method__"):
            continue
        setattr(module, name, _dispatcher(original, method))


def _dispatcher(original: Callable[..., Any], method: str) -> Callable[..., Any]:
    with _lock:
        wrapper = _wrappers.get(id(original))
        if wrapper is not None:
            return wrapper

        @functools.wraps(original)
        def dispatch(*args: Any, **kwargs: Any) -> Any:
            session = current()
            if session is None:
                return original(*args, **kwargs)
            return getattr(session, method)(*args, **kwargs)

        dispatch.__tuner_method__ = method  # type: ignore[attr-defined]
        _wrappers[id(original)] = dispatch
        return dispatch


def original(module: str, name: str) -> Callable[..., Any]:
    """Ray's own ``module.name``, behind its dispatcher."""
    function: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return function.__wrapped__ if hasattr(function, "__tuner_method__") else function  # type: ignore[attr-defined]


class _Finder(importlib.abc.MetaPathFinder):
    """Finds the modules of :data:`PATCHES` as the other finders do, and patches each one once
    its code has run."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name not in PATCHES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader)
                return spec
        return None


class _Loader(importlib.abc.Loader):
    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def __getattr__(self, name: str) -> Any:  # get_resource_reader and the like: the real loader's
        return getattr(self.loader, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        module: types.ModuleType | None = self.loader.create_module(spec)
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        with _lock:
            _patch(module)
