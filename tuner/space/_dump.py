"""A space back to the ``parameters:`` block that reads as it: for studies made in Python.

:func:`parameters_block` is the inverse of :func:`tuner.space.parse_parameters` for each kind of
parameter (parsing the block gives parameters that sample the same values), so a study built
from a Ray Tune ``param_space`` is recorded, resumed and reported as one written by hand.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from tuner.space._params import Beta, Categorical, Constant, Float, Int, Normal, Parameter
from tuner.space._space import Space


def parameter_spec(param: Parameter) -> dict[str, Any]:
    """One parameter as its study-file mapping (``{distribution: ..., min: ..., max: ...}``)."""
    spec: dict[str, Any]
    if isinstance(param, Constant):
        spec = {"value": param.value}
    elif isinstance(param, Categorical):
        spec = {"values": list(param.values)}
        if param.probabilities is not None:
            spec["probabilities"] = list(param.probabilities)
    elif isinstance(param, Float):
        spec = _ranged(param.low, param.high, param.log, param.q, param.integer)
    elif isinstance(param, Int):
        # a log-scale integer: the integers of a log-uniform draw, rounded (q 1 between whole bounds)
        spec = _ranged(param.low, param.high, True, 1.0, True) if param.log else _int_uniform(param)
    elif isinstance(param, Normal):
        kind = ("q_" if param.q is not None else "") + ("log_normal" if param.log else "normal")
        spec = {"distribution": kind, "mu": param.mu, "sigma": param.sigma}
        spec |= {"q": param.q} if param.q is not None else {}
    elif isinstance(param, Beta):
        spec = {"distribution": "q_beta" if param.q is not None else "beta", "a": param.a, "b": param.b}
        spec |= {"q": param.q} if param.q is not None else {}
    else:  # pragma: no cover - every kind of parameter is above
        raise TypeError(f"no study-file form for {type(param).__name__}")
    if param.grid:
        spec["grid"] = True
    return spec


def parameters_block(space: Space, constants: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``parameters:`` block of ``space`` (dotted names as nested blocks), with ``constants``
    (a dict shaped as the configuration) as ``value:`` entries where they sit."""
    block: dict[str, Any] = {}
    for key, value in (constants or {}).items():
        _place(block, [str(key)], {"value": value})
    for name, param in space.params.items():
        parts = list(space.paths.get(name, tuple(name.split("."))))
        _place(block, parts, parameter_spec(param))
    return block


def _place(block: dict[str, Any], parts: list[str], spec: dict[str, Any]) -> None:
    head, rest = parts[0], parts[1:]
    if not rest:
        block[head] = spec
        return
    inner = block.get(head)
    if inner is not None and "value" in inner and isinstance(inner["value"], Mapping):
        # constants beside searched ones in one dict: each constant its own entry
        inner = {"parameters": {k: {"value": v} for k, v in inner["value"].items()}}
    if inner is None:
        inner = {"parameters": {}}
    block[head] = inner
    _place(inner["parameters"], rest, spec)


def _int_uniform(param: Int) -> dict[str, Any]:
    return {"distribution": "int_uniform", "min": param.low, "max": param.high}


def _ranged(low: float, high: float, log: bool, q: float | None, integer: bool) -> dict[str, Any]:
    kind = ("q_" if q is not None else "") + ("log_uniform_values" if log else "uniform")
    whole = integer and q is not None and all(float(x).is_integer() for x in (low, high, q))
    spec: dict[str, Any] = {
        "distribution": kind,
        "min": int(low) if whole else float(low),
        "max": int(high) if whole else float(high),
    }
    if q is not None:
        spec["q"] = int(q) if whole else float(q)
    elif not log and math.isclose(low, high):
        return {"value": low}
    return spec
