"""Ray Tune's ``param_space`` -> our :class:`Space`: one pure conversion, every problem found at once.

Tune's domains, as Tune itself samples them (``ray/tune/search/sample.py``), each to the
parameter with the same values (our bounds are inclusive):

- ``uniform(a, b)``: ``Float(a, b)``; ``loguniform(a, b)``: ``Float(a, b, log=True)``.
- ``quniform(a, b, q)``, ``qloguniform(a, b, q)``: the same with ``q``: the multiples of ``q`` in
  ``[a, b]``, as floats (Tune casts a float domain's values to ``float``).
- ``randint(a, b)``, ``lograndint(a, b)``: ``Int(a, b - 1)`` (Tune's upper bound is exclusive),
  with ``log`` for the second.
- ``qrandint(a, b, q)``, ``qlograndint(a, b, q)``: for ``q > 1`` the multiples of ``q`` in
  ``[a, b]`` (both inclusive), as integers; for ``q == 1`` Tune excludes ``b``: ``Int(a, b - 1)``.
- ``choice(values)``: ``Categorical(values)``; ``grid_search(values)``: the same, a grid axis.
- ``randn(mean, sd)``, ``qrandn(mean, sd, q)``: ``Normal(mean, sd)``, with ``q`` for the second.

A domain with one possible value (``randint(3, 4)``) is a constant. Any other value is a constant
passed through unchanged; nested dicts holding domains give dotted names (``optimizer.lr``).

``tune.Tuner`` hands a searcher its ``param_space`` with each ``sample_from`` (and each object
that is not a number or a string) replaced by a placeholder, which it resolves in each trial's
configuration: a ``sample_from`` is then evaluated by Tune on the configuration suggested, as
with Tune's own searchers, and never searched (:func:`functions` names them). A ``sample_from``
given directly, ``{"eval": ...}`` and domains inside lists are refused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ray.tune.impl.placeholder import _FunctionResolver
from ray.tune.search import sample

from tuner.errors import ConfigError, Problem
from tuner.space import Categorical, Constant, Float, Int, Normal, Parameter, Space

PATH = "param_space"  # how a problem names where it is


def convert_param_space(param_space: Mapping[str, Any]) -> tuple[Space, dict[str, Any]]:
    """``(space, constants)``: the searched parameters by dotted name, and every other value in a
    dict shaped as ``param_space`` (keys kept as they are). Raises :class:`ConfigError` naming
    each parameter that cannot be searched."""
    params: dict[str, Parameter] = {}
    problems: list[Problem] = []
    constants = _walk(param_space, "", params, problems)
    if problems:
        raise ConfigError(problems)
    return Space(params), constants


def _walk(
    block: Mapping[Any, Any], prefix: str, params: dict[str, Parameter], problems: list[Problem]
) -> dict[Any, Any]:
    """Fill ``params`` from ``block``; returns its constants."""
    constants: dict[Any, Any] = {}
    for key, value in block.items():
        name = f"{prefix}{key}"
        where = f"{PATH}.{name}"
        if not _holds_domain(value):
            constants[key] = value
        elif isinstance(value, list | tuple):
            problems.append(Problem(where, "a search domain inside a list cannot be searched; give it a key"))
        elif not isinstance(key, str) or not key or "." in key:
            problems.append(Problem(where, f"a searched parameter's key must be a string without '.', got {key!r}"))
        elif not _searched(value):  # a nested dict
            inner = _walk(value, f"{name}.", params, problems)
            if inner:
                constants[key] = inner
        else:
            try:
                param = parameter(value)
            except ValueError as exc:
                problems.append(Problem(where, str(exc)))
                continue
            if isinstance(param, Constant):
                constants[key] = param.value
            else:
                params[name] = param
    return constants


def functions(constants: Mapping[Any, Any], prefix: str = "") -> list[str]:
    """The names of the ``sample_from`` values Tune resolves itself in each trial's configuration."""
    out = []
    for key, value in constants.items():
        if isinstance(value, Mapping):
            out += functions(value, f"{prefix}{key}.")
        elif isinstance(value, tuple) and len(value) == 2 and value[0] == _FunctionResolver.TOKEN:
            out.append(f"{PATH}.{prefix}{key}")
    return out


def _searched(value: Any) -> bool:
    """A Tune domain or one of its dict forms (``{"grid_search": [...]}``, ``{"eval": "..."}``)."""
    if isinstance(value, sample.Domain):
        return True
    return isinstance(value, Mapping) and len(value) == 1 and ("grid_search" in value or "eval" in value)


def _holds_domain(value: Any) -> bool:
    if _searched(value):
        return True
    if isinstance(value, Mapping):
        return any(_holds_domain(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_holds_domain(v) for v in value)
    return False


def parameter(domain: Any) -> Parameter:
    """One Tune domain (or ``{"grid_search": values}``) as our parameter; ``ValueError`` says why not."""
    if isinstance(domain, Mapping):
        if "eval" in domain:
            raise ValueError("an {'eval': ...} value is a function of the config; no searcher can model it")
        return _categorical(domain["grid_search"], grid=True, kind="grid_search")
    sampler = domain.get_sampler()
    q = None
    if isinstance(sampler, sample.Quantized):
        q, sampler = sampler.q, sampler.get_sampler()
    if isinstance(domain, sample.Function):
        raise ValueError("tune.sample_from draws from a function: pass the param_space through tune.Tuner")
    if isinstance(domain, sample.Categorical) and isinstance(sampler, sample.Uniform | sample.Grid):
        grid = isinstance(sampler, sample.Grid)
        return _categorical(domain.categories, grid=grid, kind="grid_search" if grid else "tune.choice")
    if isinstance(domain, sample.Float):
        if isinstance(sampler, sample.Normal):
            return Normal(float(sampler.mean), float(sampler.sd), q=None if q is None else float(q))
        if isinstance(sampler, sample.Uniform | sample.LogUniform):
            log = isinstance(sampler, sample.LogUniform)
            return _float(float(domain.lower), float(domain.upper), log, None if q is None else float(q))
    if isinstance(domain, sample.Integer) and isinstance(sampler, sample.Uniform | sample.LogUniform):
        return _integer(domain.lower, domain.upper, isinstance(sampler, sample.LogUniform), q)
    raise ValueError(
        f"{type(domain).__name__} with sampler {type(sampler).__name__} cannot be searched; "
        "use tune.uniform, loguniform, randint, choice, grid_search, randn or their q forms"
    )


def _categorical(values: Any, grid: bool, kind: str) -> Parameter:
    if not isinstance(values, list | tuple) or not values:
        raise ValueError(f"{kind} needs a non-empty list of values, got {values!r}")
    if any(_holds_domain(v) for v in values):
        raise ValueError(f"{kind} holds a search domain among its values; nested domains cannot be searched")
    if grid and any(isinstance(v, Mapping) for v in values):
        # Tune merges a suggestion into the param_space dict by dict: a dict value would be merged
        # into {"grid_search": [...]} instead of replacing it.
        raise ValueError("grid_search over dicts cannot be merged into Tune's config; use tune.choice([...])")
    if len(values) == 1:
        return Constant(values[0])
    return Categorical(tuple(values), grid=grid)


def _float(low: float, high: float, log: bool, q: float | None) -> Parameter:
    name = ("q" if q is not None else "") + ("loguniform" if log else "uniform")
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(f"tune.{name} needs finite bounds with lower <= upper, got ({low!r}, {high!r})")
    if q is not None:
        if q <= 0:
            raise ValueError(f"tune.{name} needs q > 0, got {q!r}")
        low, high = _multiples(low, high, q, name)
    if low == high:
        return Constant(low)
    return Float(low, high, log=log, q=q)


def _integer(lower: Any, upper: Any, log: bool, q: Any) -> Parameter:
    name = ("q" if q is not None else "") + ("lograndint" if log else "randint")
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in (lower, upper, q if q is not None else 1)):
        raise ValueError(f"tune.{name} needs integer bounds (and q), got ({lower!r}, {upper!r})")
    if q is None or q == 1:  # the upper bound is exclusive
        if upper - 1 < lower:
            raise ValueError(f"tune.{name}({lower}, {upper}) has no values: the upper bound is exclusive")
        return Constant(lower) if upper - 1 == lower else Int(lower, upper - 1, log=log)
    if q <= 0:
        raise ValueError(f"tune.{name} needs q > 0, got {q!r}")
    low, high = _multiples(lower, upper, q, name)
    if low == high:
        return Constant(int(low))
    return Float(low, high, log=log, q=float(q), integer=True)


def _multiples(low: float, high: float, q: float, name: str) -> tuple[float, float]:
    """The first and last multiple of ``q`` in ``[low, high]``, as Tune's quantizer finds them."""
    first, last = _index(low, q, math.ceil) * q, _index(high, q, math.floor) * q
    if first > last:
        raise ValueError(f"tune.{name}: no multiple of q={q!r} lies within [{low!r}, {high!r}]")
    return float(f"{first:.12g}"), float(f"{last:.12g}")


def _index(bound: float, q: float, round_fn: Any) -> int:
    scaled = bound / q
    nearest = round(scaled)
    return int(nearest) if math.isclose(scaled, nearest) else int(round_fn(scaled))
