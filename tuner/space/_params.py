"""The search-space model: one frozen dataclass per kind of parameter.

Bounds are inclusive. ``log=True`` means the parameter is searched uniformly in
log space; ``q`` rounds a sampled value to the nearest multiple of ``q``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

GRID_LIMIT = 10_000  # largest number of grid values one parameter may expand to


@dataclass(frozen=True)
class Constant:
    """A fixed value: W&B's ``value``."""

    value: Any
    grid: bool = False

    def sample(self, rng: np.random.Generator) -> Any:
        return self.value

    def grid_values(self) -> list[Any] | None:
        return [self.value]

    def rule(self, value: Any) -> str | None:
        """Why ``value`` is not a value of this parameter, or ``None`` when it is."""
        return None if same(value, self.value) else f"must be {self.value!r}"


@dataclass(frozen=True)
class Categorical:
    """One of ``values``, drawn with ``probabilities`` when given."""

    values: tuple[Any, ...]
    probabilities: tuple[float, ...] | None = None
    grid: bool = False

    def sample(self, rng: np.random.Generator) -> Any:
        index = rng.choice(len(self.values), p=self.probabilities)
        return self.values[int(index)]

    def grid_values(self) -> list[Any] | None:
        return list(self.values)

    def rule(self, value: Any) -> str | None:
        if any(same(value, v) for v in self.values):
            return None
        return f"must be one of {', '.join(map(repr, self.values))}"


def _quantize(value: float, q: float | None, low: float, high: float) -> float:
    if q is None:
        # A bound reached through log space comes back as 0.029999999999999995: give the bound.
        for bound in (low, high):
            if math.isclose(value, bound, rel_tol=1e-12):
                return bound
        return min(max(value, low), high)
    lo, hi = math.ceil(low / q - 1e-9) * q, math.floor(high / q + 1e-9) * q
    return _clean(min(max(round(value / q) * q, lo), hi))


@dataclass(frozen=True)
class Float:
    """A real number in ``[low, high]``; ``log`` and ``q`` as in the module docstring.

    ``integer``: the values are whole numbers (``q_uniform`` with integer min, max and q).
    """

    low: float
    high: float
    log: bool = False
    q: float | None = None
    grid: bool = False
    integer: bool = False

    def sample(self, rng: np.random.Generator) -> float:
        if self.log:
            raw = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            raw = rng.uniform(self.low, self.high)
        return self.decode(raw)

    def decode(self, raw: float) -> float:
        """Clip (and round to ``q``) a raw value a searcher proposed."""
        value = _quantize(float(raw), self.q, self.low, self.high)
        return round(value) if self.integer else value

    def rule(self, value: Any) -> str | None:
        if not _number(value) or not (self.low - 1e-12 * abs(self.low) <= value <= self.high + 1e-12 * abs(self.high)):
            return f"must be a number in [{self.low:g}, {self.high:g}]"
        return None

    def grid_values(self) -> list[Any] | None:
        if self.q is None:
            return None
        lo = math.ceil(self.low / self.q - 1e-9)
        hi = math.floor(self.high / self.q + 1e-9)
        if hi - lo + 1 > GRID_LIMIT:
            return None
        return [self.decode(_clean(k * self.q)) for k in range(lo, hi + 1)]


@dataclass(frozen=True)
class Int:
    """An integer in ``[low, high]``."""

    low: int
    high: int
    log: bool = False
    grid: bool = False

    def sample(self, rng: np.random.Generator) -> int:
        if self.log:
            raw = math.exp(rng.uniform(math.log(self.low - 0.5), math.log(self.high + 0.5)))
            return self.decode(raw)
        return int(rng.integers(self.low, self.high, endpoint=True))

    def decode(self, raw: float) -> int:
        return int(min(max(round(raw), self.low), self.high))

    def rule(self, value: Any) -> str | None:
        if not (isinstance(value, int) and not isinstance(value, bool)) or not self.low <= value <= self.high:
            return f"must be an integer in [{self.low}, {self.high}]"
        return None

    def grid_values(self) -> list[Any] | None:
        if self.high - self.low + 1 > GRID_LIMIT:
            return None
        return list(range(self.low, self.high + 1))


QUANTILE_EDGE = 1e-6  # how near 0 or 1 a searcher's quantile may come (a normal's 4.75 sigma)


@dataclass(frozen=True)
class Normal:
    """A normal draw ``N(mu, sigma)``; with ``log`` the value is ``exp`` of it (unbounded).

    Model-based searchers search it by its quantile, ``cdf(value)`` in ``[0, 1]``, and take the
    value ``ppf(u)`` (W&B's bayes does the same).
    """

    mu: float
    sigma: float
    log: bool = False
    q: float | None = None
    grid: bool = False

    def sample(self, rng: np.random.Generator) -> float:
        raw = rng.normal(self.mu, self.sigma)
        return self._value(math.exp(raw) if self.log else raw)

    def _value(self, raw: float) -> float:
        if self.q is not None:
            return _clean(round(raw / self.q) * self.q)
        return float(raw)

    def ppf(self, u: float) -> float:
        """The value at quantile ``u`` (kept ``QUANTILE_EDGE`` away from 0 and 1)."""
        raw = NormalDist(self.mu, self.sigma).inv_cdf(min(max(u, QUANTILE_EDGE), 1 - QUANTILE_EDGE))
        return self._value(math.exp(raw) if self.log else raw)

    def cdf(self, value: float) -> float:
        """The quantile of ``value``: the inverse of :meth:`ppf`."""
        if self.log:
            return 0.0 if value <= 0 else NormalDist(self.mu, self.sigma).cdf(math.log(value))
        return NormalDist(self.mu, self.sigma).cdf(value)

    def rule(self, value: Any) -> str | None:
        if not _number(value):
            return "must be a number"
        if self.log and self.q is not None and value < 0:  # rounding takes a small draw to 0
            return "must be a non-negative number"
        if self.log and self.q is None and value <= 0:
            return "must be a positive number"
        return None

    def grid_values(self) -> list[Any] | None:
        return None


@dataclass(frozen=True)
class Beta:
    """A draw of ``Beta(a, b)`` on ``[0, 1]`` (W&B's ``beta``); ``q`` rounds it (``q_beta``).

    Searched by its quantile as :class:`Normal` is.
    """

    a: float
    b: float
    q: float | None = None
    grid: bool = False

    def sample(self, rng: np.random.Generator) -> float:
        return self._value(rng.beta(self.a, self.b))

    def _value(self, raw: float) -> float:
        if self.q is not None:
            return _clean(round(raw / self.q) * self.q)
        return float(raw)

    def ppf(self, u: float) -> float:
        from scipy.stats import beta

        return self._value(float(beta.ppf(min(max(u, 0.0), 1.0), self.a, self.b)))

    def cdf(self, value: float) -> float:
        from scipy.stats import beta

        return float(beta.cdf(value, self.a, self.b))

    def rule(self, value: Any) -> str | None:
        if not _number(value) or not 0 <= value <= 1:
            return "must be a number in [0, 1]"
        return None

    def grid_values(self) -> list[Any] | None:
        return None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def same(a: Any, b: Any) -> bool:
    """Equal as parameter values: ``1`` and ``1.0`` alike, ``True`` and ``1`` not."""
    if _number(a) and _number(b):
        return bool(a == b)
    return type(a) is type(b) and bool(a == b)


def _clean(x: float) -> float:
    """Drop float noise from ``k * q`` (``3 * 0.1`` is ``0.30000000000000004``)."""
    return float(f"{x:.12g}")


Parameter = Constant | Categorical | Float | Int | Normal | Beta
Quantiled = Normal | Beta  # searched by their quantile in [0, 1] (see Normal)


def describe(param: Parameter) -> str:
    """A short phrase naming the kind of parameter, for error messages."""
    if isinstance(param, Float):
        kind = "log-scale float range" if param.log else "float range"
        return f"continuous {kind} [{param.low}, {param.high}]"
    if isinstance(param, Normal):
        return "unbounded normal distribution"
    if isinstance(param, Beta):
        return "beta distribution"
    if isinstance(param, Int):
        return f"integer range [{param.low}, {param.high}]"
    return type(param).__name__.lower()


def summary(param: Parameter) -> str:
    """How a parameter reads to a person: ``log-uniform [0.0001, 0.1]``, ``one of a, b``."""
    axis = ", grid axis" if param.grid else ""
    if isinstance(param, Constant):
        return f"{param.value!r}"
    if isinstance(param, Categorical):
        probs = f" with probabilities {list(param.probabilities)}" if param.probabilities else ""
        return f"one of {', '.join(map(str, param.values))}{probs}{axis}"
    if isinstance(param, Int):
        return f"integer in [{param.low}, {param.high}]{axis}"
    if isinstance(param, Float):
        kind = "log-uniform" if param.log else "uniform"
        step = f" in steps of {param.q:g}" if param.q is not None else ""
        return f"{kind} in [{param.low:g}, {param.high:g}]{step}{axis}"
    step = f" in steps of {param.q:g}" if param.q is not None else ""
    if isinstance(param, Beta):
        return f"beta(a={param.a:g}, b={param.b:g}){step}"
    return f"{'log-' if param.log else ''}normal(mu={param.mu:g}, sigma={param.sigma:g}){step}"
