"""A search space: named parameters, flattened to dotted paths for nested configs."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tuner.space._params import Constant, Parameter


@dataclass(frozen=True)
class Space:
    """Parameters by dotted name (``optimizer.lr`` for a nested ``parameters:`` block)."""

    params: Mapping[str, Parameter] = field(default_factory=dict)

    def __iter__(self) -> Iterator[str]:
        return iter(self.params)

    def __len__(self) -> int:
        return len(self.params)

    @property
    def searchable(self) -> dict[str, Parameter]:
        """Parameters a searcher chooses: everything but constants."""
        return {k: p for k, p in self.params.items() if not isinstance(p, Constant)}

    @property
    def grid_axes(self) -> dict[str, Parameter]:
        """Parameters marked ``grid: true``, searched exhaustively."""
        return {k: p for k, p in self.searchable.items() if p.grid}

    def subspace(self, names: list[str]) -> Space:
        return Space({k: self.params[k] for k in names})

    def complete(self, flat: Mapping[str, Any]) -> dict[str, Any]:
        """Fill in the constants: the full flat configuration for a suggestion."""
        out = {k: p.value for k, p in self.params.items() if isinstance(p, Constant)}
        out.update(flat)
        return {k: out[k] for k in self.params}


def grid_product(space: Space) -> list[dict[str, Any]]:
    """Every combination of the grid values of ``space`` (each must be finite)."""
    names = list(space.params)
    columns = []
    for name in names:
        values = space.params[name].grid_values()
        if values is None:  # caller validated; keep mypy and a misuse honest
            raise ValueError(f"{name} has no finite grid")
        columns.append(values)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*columns)]


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"opt.lr": 1}`` -> ``{"opt": {"lr": 1}}``: the config a trainable receives."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def flatten(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """The inverse of :func:`nest`."""
    out: dict[str, Any] = {}
    for key, value in nested.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def config_key(flat: Mapping[str, Any]) -> str:
    """A canonical string for a configuration, to tell repeats apart."""
    return json.dumps(flat, sort_keys=True, default=repr)
