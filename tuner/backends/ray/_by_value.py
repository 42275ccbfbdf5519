"""Objects handed over in Python (:mod:`tuner.config._by_value`), shipped to the workers.

The driver puts each one, pickled, in Ray's key-value store under its job's id (two drivers on
one cluster may both hand over a ``__main__:train_fn``), as Ray Tune registers a trainable; a
worker asking for a name that is not importable there reads it back once and keeps it.
"""

from __future__ import annotations

from typing import Any

from tuner.config import by_value

_NAMESPACE = "tuner"


def _key(name: str) -> bytes:
    import ray

    return f"by_value:{ray.get_runtime_context().get_job_id()}:{name}".encode()


def publish(names: list[str | None]) -> list[bytes]:
    """Put the objects of ``names`` (the trainable's, the stopper's) given in this driver where
    its workers find them; returns the keys. One that cannot be pickled is a :class:`ConfigError`
    naming it."""
    from ray import cloudpickle
    from ray.experimental import internal_kv

    from tuner.errors import ConfigError, Problem

    blobs: dict[str, bytes] = {}
    for field, name in zip(("trainable", "stopper"), names, strict=False):
        try:
            blobs |= by_value.pickled([name], cloudpickle.dumps)
        except Exception as exc:
            problem = f"cannot be sent to the workers (pickled): {type(exc).__name__}: {exc}"
            raise ConfigError([Problem(field, problem)]) from None
    keys: list[bytes] = []
    for name, blob in blobs.items():
        keys.append(_key(name))
        internal_kv._internal_kv_put(keys[-1], blob, overwrite=True, namespace=_NAMESPACE)
    return keys


def withdraw(keys: list[bytes]) -> None:
    """Take the published objects back out of the store (the study is over)."""
    from ray.experimental import internal_kv

    if internal_kv._internal_kv_initialized():
        for key in keys:
            internal_kv._internal_kv_del(key, namespace=_NAMESPACE)


def _fetch(name: str) -> Any:
    import ray
    from ray.experimental import internal_kv

    if not ray.is_initialized() or not internal_kv._internal_kv_initialized():
        return by_value.MISSING
    blob = internal_kv._internal_kv_get(_key(name), namespace=_NAMESPACE)
    if blob is None:
        return by_value.MISSING
    from ray import cloudpickle

    return cloudpickle.loads(blob)


def install() -> None:
    """Let this worker find the driver's objects by name."""
    by_value.on_miss(_fetch)
