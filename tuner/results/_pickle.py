"""The data inside a pickle, read without importing or running anything it names.

A Ray Tune folder keeps some of its settings (the ``TuneConfig`` in ``tuner.pkl``, the
``CheckpointConfig`` in the experiment state) as pickles of Ray's classes. Loading them for
real would import Ray and run whatever the pickle names; here every class or function a
pickle names becomes a :class:`Stub` that only records its arguments and state, so the plain
values (strings, numbers, dicts) can be read back safely.
"""

from __future__ import annotations

import importlib
import io
import math
import pickle
from typing import Any


class Stub:
    """Stands for an object of the class ``Stub.name``: the arguments it was made with and the
    state it was given (usually a dict of its attributes)."""

    name = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs
        self.state: Any = None
        self.items: list[Any] = []  # what a list-like object was extended with

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:  # a dict-like object's items
        self.items.append((key, value))

    def append(self, value: Any) -> None:
        self.items.append(value)

    def extend(self, values: Any) -> None:
        self.items.extend(values)

    def __call__(self, *args: Any, **kwargs: Any) -> Stub:
        """What calling the object makes (cloudpickle rebuilds a function's or a class's parts by
        calling what it named: ``_builtin_type("CodeType")(...)``): another stub."""
        return type(self)(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<{self.name}>"

    def attrs(self) -> dict[str, Any]:
        """The object's attributes as it was pickled (``{}`` when its state was not a dict)."""
        state = self.state
        if isinstance(state, tuple) and state and isinstance(state[0], dict):  # (dict, slots)
            state = state[0]
        return state if isinstance(state, dict) else {}


# numpy's own rebuilders of its scalars and arrays (a metric computed with numpy, as Ray pickles
# it), which only make data: read for real, as numbers. numpy 1's module names are read as numpy 2's.
_NUMPY = {"scalar", "_reconstruct"}  # of numpy.core.multiarray (numpy 1) or numpy._core.multiarray
_NUMPY_TYPES = {"dtype", "ndarray"}  # of numpy


def _multiarray() -> Any:
    try:
        return importlib.import_module("numpy._core.multiarray")
    except ImportError:  # numpy 1
        return importlib.import_module("numpy.core.multiarray")


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> Any:
    """numpy's ``_reconstruct``, which a pickle calls with an empty shape (its data follows in
    ``__setstate__``): a larger one would only allocate memory, so it is refused."""
    if not isinstance(shape, tuple) or math.prod(int(n) for n in shape) > 1:
        raise pickle.UnpicklingError(f"numpy array rebuilt at shape {shape!r}: not as numpy pickles one")
    return _multiarray()._reconstruct(subtype, shape, dtype)


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name in _NUMPY:
            return _reconstruct if name == "_reconstruct" else _multiarray().scalar
        if module == "numpy" and name in _NUMPY_TYPES:
            return super().find_class(module, name)
        return type(name, (Stub,), {"name": f"{module}.{name}"})

    def persistent_load(self, pid: Any) -> Any:
        return None


def read_pickle(data: bytes) -> Any:
    """The pickled value with every object of a class replaced by a :class:`Stub` (numpy's
    scalars and arrays aside: a numpy scalar or a 0-d array comes back as a Python number);
    ``None`` when ``data`` is not a pickle this can read."""
    try:
        return _numbers(_Unpickler(io.BytesIO(data)).load())
    except Exception:  # a format this reader does not follow: the caller does without
        return None


def _numbers(value: Any) -> Any:
    """``value`` with numpy scalars and 0-d arrays as Python numbers, in dicts, lists and tuples."""
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_numbers(v) for v in value)
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        return value.item()
    return value


def attrs(value: Any) -> dict[str, Any]:
    """A stub's attributes, ``{}`` for anything else."""
    return value.attrs() if isinstance(value, Stub) else {}
