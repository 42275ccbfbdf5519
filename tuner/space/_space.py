"""A search space: named parameters, flattened to dotted paths for nested configs."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tuner.space._params import Constant, Parameter, same

Condition = tuple[tuple[str, tuple[Any, ...]], ...]  # (parent, the values that make it active), all must hold


@dataclass(frozen=True)
class Space:
    """Parameters by dotted name (``optimizer.lr`` for a nested ``parameters:`` block).

    ``paths``: where a parameter sits in the configuration a trainable receives, for those whose
    name does not say it: a name written with dots (``optimizer.config.lr``, as W&B allows) is one
    key, ``("optimizer.config.lr",)``, not three nested ones. See :meth:`nest`.

    ``conditions``: a parameter that exists only when others have given values (``when:`` in
    the study file), by name; a parameter is active when every parent it names is active and
    has one of the values listed. Parents come before their children in ``params``.
    """

    params: Mapping[str, Parameter] = field(default_factory=dict)
    conditions: Mapping[str, Condition] = field(default_factory=dict)
    paths: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

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
        return Space(
            {k: self.params[k] for k in names},
            {k: c for k, c in self.conditions.items() if k in names},
            {k: p for k, p in self.paths.items() if k in names},
        )

    def nest(self, flat: Mapping[str, Any]) -> dict[str, Any]:
        """The configuration a trainable receives for a flat one: :func:`nest` by this space's paths."""
        return nest(flat, self.paths)

    def active(self, flat: Mapping[str, Any]) -> dict[str, Any]:
        """``flat`` without the parameters whose conditions it does not meet (in order)."""
        if not self.conditions:
            return dict(flat)
        out: dict[str, Any] = {}
        for name in self.params:
            if name in flat and all(
                parent not in self.params or (parent in out and _among(out[parent], values))
                for parent, values in self.conditions.get(name, ())
            ):  # a parent outside this space (a grid axis of a sub-search) is decided by the whole
                out[name] = flat[name]
        for name, value in flat.items():  # not of this space (a grid axis of another): kept
            if name not in self.params:
                out[name] = value
        return out

    def problems(self, flat: Mapping[str, Any]) -> dict[str, str]:
        """What is wrong with a (possibly partial) configuration, by parameter: names this space
        lacks, values outside a parameter's range or values, parameters whose condition the
        configuration does not meet. Empty when it is a valid point of this space."""
        out: dict[str, str] = {}
        for name, value in flat.items():
            param = self.params.get(name)
            if param is None:
                out[name] = f"is not a parameter of this study ({', '.join(self.params)})"
            elif (why := param.rule(value)) is not None:
                out[name] = why
        if not out:
            kept = self.active(flat)
            for name in flat:
                if name not in kept:
                    when = " and ".join(f"{p} in {list(v)}" for p, v in self.conditions.get(name, ()))
                    out[name] = f"is inactive here (it exists only when {when})"
        return out

    def complete(self, flat: Mapping[str, Any]) -> dict[str, Any]:
        """Fill in the constants: the full flat configuration for a suggestion (active ones only)."""
        out = {k: p.value for k, p in self.params.items() if isinstance(p, Constant)}
        out.update(flat)
        return self.active({k: out[k] for k in self.params if k in out})


def _among(value: Any, values: tuple[Any, ...]) -> bool:
    return any(same(value, v) for v in values)


def iter_grid(space: Space) -> Iterator[dict[str, Any]]:
    """Every combination of the grid values of ``space`` (each must be finite), lazily, in the
    order the values are listed; with conditions, each valid combination once, its inactive
    parameters left out (a value listed twice still gives its cells twice)."""
    names = list(space.params)
    columns = []
    for name in names:
        values = space.params[name].grid_values()
        if values is None:  # caller validated; keep mypy and a misuse honest
            raise ValueError(f"{name} has no finite grid")
        columns.append(values)
    seen: set[tuple[tuple[str, int], ...]] = set()
    for combo in itertools.product(*(range(len(c)) for c in columns)):
        full = {n: columns[i][k] for i, (n, k) in enumerate(zip(names, combo, strict=True))}
        if not space.conditions:
            yield full
            continue
        cell = space.active(full)
        identity = tuple((n, k) for n, k in zip(names, combo, strict=True) if n in cell)
        if identity not in seen:
            seen.add(identity)
            yield cell


def grid_product(space: Space) -> list[dict[str, Any]]:
    """:func:`iter_grid` as a list."""
    return list(iter_grid(space))


def nest(flat: Mapping[str, Any], paths: Mapping[str, tuple[str, ...]] | None = None) -> dict[str, Any]:
    """``{"opt.lr": 1}`` -> ``{"opt": {"lr": 1}}``: the config a trainable receives. A name in
    ``paths`` goes where its path says (``{"opt.lr": ("opt.lr",)}`` keeps it one key)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = (paths or {}).get(key) or key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def leaf_paths(nested: Mapping[str, Any], parts: tuple[str, ...] = ()) -> dict[str, tuple[str, ...]]:
    """The path of each leaf of a nested configuration, by its :func:`flatten` name: what
    :func:`nest` needs to rebuild it whatever dots its keys hold."""
    out: dict[str, tuple[str, ...]] = {}
    for key, value in nested.items():
        path = (*parts, str(key))
        if isinstance(value, Mapping):
            out.update(leaf_paths(value, path))
        else:
            out[".".join(path)] = path
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


def space_size(space: Space) -> int | None:
    """The number of distinct configurations of ``space``'s searchable parameters, exactly
    (Python integers do not overflow), or ``None`` when one of them is continuous."""
    sizes = [p.grid_values() for p in space.searchable.values()]
    if any(v is None for v in sizes):
        return None
    product = math.prod(len(v) for v in sizes if v is not None)
    if space.conditions and product <= 1_000_000:  # inactive parameters make cells alike
        return len({config_key(c) for c in iter_grid(space.subspace(list(space.searchable)))})
    return product


def config_key(flat: Mapping[str, Any]) -> str:
    """A canonical string for a configuration, to tell repeats apart."""
    return json.dumps(flat, sort_keys=True, default=repr)
