"""A search space as the unit cube the GP works in, and back.

Every searchable parameter is one column:

- a real range: ``[low, high]`` (its logarithm for a log scale) mapped onto ``[0, 1]``;
- an integer, or a real with ``q`` (a finite ladder of values): the same, with each value owning
  an equal slice of ``[0, 1]`` (the bounds widened by half a step, as Optuna does) so that the
  end values are not under-sampled; its ``choices`` are the slices' centres;
- a categorical: the index of the value (the kernel compares it for equality only);
- a normal or beta distribution: its quantile ``cdf(value)``, as W&B's bayes searches it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from tuner.space import Categorical, Float, Int, Quantiled, Space

MAX_LADDER = 100_000  # a discrete parameter with more values is treated as continuous, then rounded


@dataclass(frozen=True)
class Column:
    name: str
    kind: Literal["continuous", "discrete", "categorical"]
    low: float = 0.0  # the scale's ends (log-transformed for a log scale)
    high: float = 1.0
    log: bool = False
    values: tuple[Any, ...] = ()  # a discrete or categorical parameter's values, in order
    quantiled: Quantiled | None = None  # a distribution searched by its quantile

    def choices(self) -> np.ndarray:
        """Where the values lie in ``[0, 1]`` (discrete) or their indices (categorical)."""
        if self.kind == "categorical":
            return np.arange(len(self.values), dtype=float)
        return np.array([self.to_unit(v) for v in self.values])

    def inactive(self) -> float:
        """Where a configuration in which this parameter is inactive (``when:``) sits: a category
        of its own, or the middle of the range. So the model sees configurations that differ only
        in inactive parameters as one point, and active values do not borrow from them."""
        return float(len(self.values)) if self.kind == "categorical" else 0.5

    def to_unit(self, value: Any) -> float:
        if self.kind == "categorical":
            return float(self.values.index(value))
        if self.quantiled is not None:
            return self.quantiled.cdf(value)
        x = math.log(value) if self.log else float(value)
        return (x - self.low) / (self.high - self.low)

    def from_unit(self, u: float) -> float:
        x = self.low + min(max(u, 0.0), 1.0) * (self.high - self.low)
        return math.exp(x) if self.log else x


class Encoding:
    """Configurations of ``space`` <-> rows of the unit cube."""

    def __init__(self, space: Space) -> None:
        self.space = space
        self.columns = [_column(name, p) for name, p in space.searchable.items()]
        self.dim = len(self.columns)
        self.is_categorical = np.array([c.kind == "categorical" for c in self.columns], dtype=bool)
        self.discrete = [i for i, c in enumerate(self.columns) if c.kind != "continuous"]
        self._choices = {i: self.columns[i].choices() for i in self.discrete}

    def choices(self, i: int) -> np.ndarray:
        return self._choices[i]

    def encode(self, configs: list[dict[str, Any]]) -> np.ndarray:
        out = np.empty((len(configs), self.dim))
        for j, column in enumerate(self.columns):
            out[:, j] = [column.to_unit(c[column.name]) if column.name in c else column.inactive() for c in configs]
        return out

    def decode(self, x: np.ndarray) -> dict[str, Any]:
        """The configuration a row stands for: snapped to the nearest value, clipped to the bounds."""
        x = self.snap(x[None, :])[0]
        out: dict[str, Any] = {}
        for j, column in enumerate(self.columns):
            param = self.space.searchable[column.name]
            if column.quantiled is not None:
                out[column.name] = column.quantiled.ppf(float(x[j]))
            elif column.kind == "continuous":
                assert isinstance(param, Float | Int)
                out[column.name] = param.decode(column.from_unit(float(x[j])))
            else:
                out[column.name] = column.values[int(np.argmin(np.abs(self._choices[j] - x[j])))]
        return out

    def snap(self, x: np.ndarray) -> np.ndarray:
        """Rows with every discrete and categorical column moved to its nearest value."""
        x = np.clip(np.array(x, dtype=float), 0.0, None)
        for j in self.discrete:
            choices = self._choices[j]
            x[:, j] = choices[np.abs(x[:, j, None] - choices[None, :]).argmin(axis=1)]
        return np.clip(x, 0.0, np.where(self.is_categorical, np.inf, 1.0))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` uniform rows (each value of a discrete column equally likely)."""
        return self.from_cube(rng.random((n, self.dim)))

    def from_cube(self, u: np.ndarray) -> np.ndarray:
        """Points of ``[0, 1)^d`` (uniform or quasi-random) as rows: discrete columns by slice."""
        x = np.array(u, dtype=float)
        for j in self.discrete:
            choices = self._choices[j]
            x[:, j] = choices[np.minimum((u[:, j] * len(choices)).astype(int), len(choices) - 1)]
        return x


def _column(name: str, p: Any) -> Column:
    if isinstance(p, Categorical):
        return Column(name, "categorical", values=tuple(p.values))
    if isinstance(p, Quantiled):
        return Column(name, "continuous", quantiled=p)
    ladder = p.grid_values() if isinstance(p, Int | Float) else None
    if ladder is not None and len(ladder) <= MAX_LADDER and len(ladder) > 1:
        values = tuple(sorted(ladder))
        log = bool(getattr(p, "log", False))
        if log:
            # Half a step beyond each end in log space (the steps between values are not equal).
            lo = math.log(values[0]) - (math.log(values[1]) - math.log(values[0])) / 2
            hi = math.log(values[-1]) + (math.log(values[-1]) - math.log(values[-2])) / 2
        else:
            step = (values[-1] - values[0]) / (len(values) - 1)
            lo, hi = values[0] - step / 2, values[-1] + step / 2
        return Column(name, "discrete", lo, hi, log, values)
    if isinstance(p, Float | Int):
        lo, hi = (math.log(p.low), math.log(p.high)) if p.log else (float(p.low), float(p.high))
        return Column(name, "continuous", lo, hi, bool(p.log))
    raise TypeError(f"cannot encode {p!r}")
