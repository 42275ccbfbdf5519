"""W&B sweep ``parameters:`` blocks -> :class:`Space`, with every problem located by path."""

from __future__ import annotations

import difflib
import math
from typing import Any

from tuner.errors import Problem
from tuner.space._params import Beta, Categorical, Constant, Float, Int, Normal, Parameter
from tuner.space._space import Condition, Space

_RANGE = {"min", "max"}
_NORMAL = {"mu", "sigma"}
_BETA = {"a", "b"}
# distribution -> the keys it takes (besides ``distribution`` and ``grid``): W&B's sweep schema
DISTRIBUTIONS: dict[str, set[str]] = {
    "constant": {"value"},
    "categorical": {"values", "probabilities"},
    "categorical_w_probabilities": {"values", "probabilities"},
    "uniform": _RANGE,
    "int_uniform": _RANGE,
    "log_uniform": _RANGE,
    "log_uniform_values": _RANGE,
    "q_uniform": _RANGE | {"q"},
    "q_log_uniform": _RANGE | {"q"},
    "q_log_uniform_values": _RANGE | {"q"},
    "inv_log_uniform": _RANGE,
    "inv_log_uniform_values": _RANGE,
    "normal": _NORMAL,
    "q_normal": _NORMAL | {"q"},
    "log_normal": _NORMAL,
    "q_log_normal": _NORMAL | {"q"},
    "beta": _BETA,
    "q_beta": _BETA | {"q"},
}
_KEYS = {"value", "values", "probabilities", "distribution", "min", "max", "mu", "sigma", "q", "a", "b"}
_KEYS |= {"parameters", "grid", "description", "when"}


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


class _Parser:
    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.params: dict[str, Parameter] = {}
        self.paths: dict[str, tuple[str, ...]] = {}  # name -> its keys in the trainable's config
        # name -> the ``when:`` blocks that apply to it (its own and its enclosing blocks'), with
        # their YAML path and the prefix of the block they were written in
        self.when: dict[str, list[tuple[Any, str, str]]] = {}

    def fail(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def block(
        self,
        block: Any,
        path: str,
        prefix: str,
        when: list[tuple[Any, str, str]] | None = None,
        parts: tuple[str, ...] = (),
    ) -> None:
        if not isinstance(block, dict) or not block:
            self.fail(path, f"must be a non-empty mapping of parameter names, got {block!r}")
            return
        for name, spec in block.items():
            where = f"{path}.{name}"
            if not isinstance(name, str) or not name.strip(". "):
                self.fail(where, "a parameter name must be a non-empty string")
                continue
            if not isinstance(spec, dict):
                self.fail(where, f"must be a mapping (value, values or distribution), got {spec!r}")
                continue
            unknown = sorted(set(spec) - _KEYS, key=str)
            if unknown:
                allowed = ", ".join(sorted(_KEYS))
                self.fail(where, f"unknown key(s) {', '.join(map(str, unknown))}; allowed: {allowed}")
                continue
            own = list(when or [])
            if "when" in spec:
                own.append((spec["when"], f"{where}.when", prefix))
                spec = {k: v for k, v in spec.items() if k != "when"}
            if "parameters" in spec:
                extra = set(spec) - {"parameters", "description"}
                if extra:
                    self.fail(where, f"a nested 'parameters' block takes no {', '.join(sorted(extra))}")
                    continue
                self.block(spec["parameters"], f"{where}.parameters", f"{prefix}{name}.", own, (*parts, name))
                continue
            param = self.leaf(spec, where)
            if param is not None and f"{prefix}{name}" in self.params:
                self.fail(where, f"{prefix}{name} is named twice, once with dots and once by nested blocks; rename one")
            elif param is not None:
                self.params[f"{prefix}{name}"] = param
                if "." in name or any("." in p for p in parts):
                    self.paths[f"{prefix}{name}"] = (*parts, name)
                if own:
                    self.when[f"{prefix}{name}"] = own

    def conditions(self) -> dict[str, Condition]:
        """The ``when:`` blocks resolved: each parent a known categorical (or constant) parameter
        written before, each value one of its values."""
        out: dict[str, Condition] = {}
        for name, blocks in self.when.items():
            condition: list[tuple[str, tuple[Any, ...]]] = []
            for spec, where, prefix in blocks:
                if not isinstance(spec, dict) or not spec:
                    self.fail(where, f"must map parameters to value(s), e.g. {{optimizer: sgd}}, got {spec!r}")
                    continue
                for parent, wanted in spec.items():
                    resolved = self.parent(name, parent, f"{where}.{parent}", prefix)
                    if resolved is None:
                        continue
                    values = tuple(wanted) if isinstance(wanted, list) else (wanted,)
                    allowed = self.params[resolved]
                    choices = allowed.values if isinstance(allowed, Categorical) else (allowed.value,)  # type: ignore[union-attr]
                    bad = [v for v in values if not any(v == c and type(v) is type(c) for c in choices)]
                    if bad or not values:
                        shown = ", ".join(map(repr, choices))
                        self.fail(
                            f"{where}.{parent}",
                            f"{bad[0] if bad else wanted!r} is not a value of {resolved}; its values: {shown}",
                        )
                        continue
                    condition.append((resolved, values))
            if condition:
                out[name] = tuple(condition)
        return out

    def parent(self, child: str, parent: Any, where: str, prefix: str) -> str | None:
        names = [f"{prefix}{parent}", str(parent)] if prefix else [str(parent)]
        found = next((n for n in names if n in self.params), None)
        if found is None:
            self.fail(where, f"unknown parameter {parent!r}; a condition names a parameter of the study")
            return None
        if found == child:
            self.fail(where, f"{child} cannot depend on itself")
            return None
        if list(self.params).index(found) > list(self.params).index(child):
            self.fail(where, f"{found} must be written before {child}, which depends on it")
            return None
        if not isinstance(self.params[found], Categorical | Constant):
            self.fail(where, f"{found} is not a parameter with values: a condition names a categorical (values: [...])")
            return None
        return found

    def number(self, spec: dict[str, Any], key: str, where: str, default: float | None = None) -> float | None:
        value = spec.get(key, default)
        if value is None:
            self.fail(f"{where}.{key}", "is required")
            return None
        if not _is_number(value) or not math.isfinite(value):
            self.fail(f"{where}.{key}", f"must be a finite number, got {value!r}")
            return None
        return float(value) if isinstance(value, float) else value

    def leaf(self, spec: dict[str, Any], where: str) -> Parameter | None:
        grid = spec.get("grid", False)
        if not isinstance(grid, bool):
            self.fail(f"{where}.grid", f"must be true or false, got {grid!r}")
            return None
        dist = spec.get("distribution")
        if dist is None:
            dist = _infer(spec)
            if dist is None:
                self.fail(where, "needs one of value, values, distribution, or min/max")
                return None
        if dist not in DISTRIBUTIONS:
            longer = [d for d in DISTRIBUTIONS if len(str(dist)) > 3 and d.startswith(str(dist))]
            near = longer or difflib.get_close_matches(str(dist), DISTRIBUTIONS, n=1)
            hint = f" (did you mean {near[0]}?)" if len(near) == 1 else ""
            self.fail(
                f"{where}.distribution", f"unknown distribution {dist!r}{hint}; one of {', '.join(DISTRIBUTIONS)}"
            )
            return None
        used = set(spec) - {"distribution", "grid", "description"}
        stray = sorted(used - DISTRIBUTIONS[dist])
        if stray:
            self.fail(where, f"{', '.join(stray)} not used by distribution {dist}")
            return None
        if dist == "constant":
            if "value" not in spec:  # W&B's schema requires it (``value: null`` is a value)
                self.fail(f"{where}.value", "is required by distribution constant")
                return None
            return Constant(spec["value"], grid=grid)
        if dist in ("categorical", "categorical_w_probabilities"):
            if dist == "categorical_w_probabilities" and "probabilities" not in spec:
                self.fail(f"{where}.probabilities", f"is required by distribution {dist}")
                return None
            return self.categorical(spec, where, grid)
        if dist in ("normal", "q_normal", "log_normal", "q_log_normal"):
            return self.normal(spec, where, dist, grid)
        if dist in ("beta", "q_beta"):
            return self.beta(spec, where, dist, grid)
        return self.ranged(spec, where, dist, grid)

    def categorical(self, spec: dict[str, Any], where: str, grid: bool) -> Parameter | None:
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            self.fail(f"{where}.values", f"must be a non-empty list, got {values!r}")
            return None
        probs = spec.get("probabilities")
        if probs is None:
            return Categorical(tuple(values), grid=grid)
        if not isinstance(probs, list) or len(probs) != len(values):
            self.fail(f"{where}.probabilities", f"must be a list of {len(values)} numbers, one per value")
            return None
        if not all(_is_number(p) and math.isfinite(p) and p >= 0 for p in probs):
            self.fail(f"{where}.probabilities", f"must be numbers >= 0, got {probs!r}")
            return None
        if abs(sum(probs) - 1.0) > 1e-6:
            self.fail(f"{where}.probabilities", f"must sum to 1, got {sum(probs):g}")
            return None
        return Categorical(tuple(values), tuple(float(p) for p in probs), grid=grid)

    def normal(self, spec: dict[str, Any], where: str, dist: str, grid: bool) -> Parameter | None:
        mu = self.number(spec, "mu", where, 0.0)
        sigma = self.number(spec, "sigma", where, 1.0)
        q = self.number(spec, "q", where, 1.0) if dist.startswith("q_") else None
        if mu is None or sigma is None or (dist.startswith("q_") and q is None):
            return None
        if sigma <= 0:
            self.fail(f"{where}.sigma", f"must be > 0, got {sigma!r}")
            return None
        if q is not None and q <= 0:
            self.fail(f"{where}.q", f"must be > 0, got {q!r}")
            return None
        return Normal(float(mu), float(sigma), log="log" in dist, q=q, grid=grid)

    def beta(self, spec: dict[str, Any], where: str, dist: str, grid: bool) -> Parameter | None:
        a, b = self.number(spec, "a", where, 1.0), self.number(spec, "b", where, 1.0)
        q = self.number(spec, "q", where, 1.0) if dist == "q_beta" else None
        if a is None or b is None or (dist == "q_beta" and q is None):
            return None
        for key, value in (("a", a), ("b", b), ("q", q)):
            if value is not None and value <= 0:
                self.fail(f"{where}.{key}", f"must be > 0, got {value!r}")
                return None
        return Beta(float(a), float(b), q=q, grid=grid)

    def ranged(self, spec: dict[str, Any], where: str, dist: str, grid: bool) -> Parameter | None:
        low, high = self.number(spec, "min", where), self.number(spec, "max", where)
        q = self.number(spec, "q", where, 1.0) if dist.startswith("q_") else None
        if low is None or high is None or (dist.startswith("q_") and q is None):
            return None
        if low >= high:
            self.fail(f"{where}.min", f"must be less than max ({high!r}), got {low!r}")
            return None
        if q is not None and q <= 0:
            self.fail(f"{where}.q", f"must be > 0, got {q!r}")
            return None
        if dist == "int_uniform":
            if not (isinstance(spec["min"], int) and isinstance(spec["max"], int)):
                self.fail(where, f"int_uniform needs integer min and max, got {spec['min']!r}, {spec['max']!r}")
                return None
            return Int(int(low), int(high), grid=grid)
        if dist in ("log_uniform", "q_log_uniform"):  # bounds are natural-log exponents
            low, high = math.exp(low), math.exp(high)
        elif dist == "inv_log_uniform":  # log(1/X) uniform in [min, max]: X log-uniform in [e^-max, e^-min]
            low, high = math.exp(-high), math.exp(-low)
        elif dist.startswith(("log_", "q_log_", "inv_log_")) and low <= 0:
            self.fail(f"{where}.min", f"must be > 0 for a log scale ({dist}), got {spec['min']!r}")
            return None
        if q is not None and math.floor(high / q + 1e-9) < math.ceil(low / q - 1e-9):
            self.fail(f"{where}.q", f"no multiple of {q!r} lies within [{low!r}, {high!r}]")
            return None
        # Whole numbers: a multiple of an integer q between integer bounds (for q_log_uniform the
        # bounds are exponents, so q alone decides).
        whole = [k for k in ("min", "max", "q") if dist != "q_log_uniform" or k == "q"]
        integer = dist.startswith("q_") and all(
            isinstance(spec.get(k, 1), int) and not isinstance(spec.get(k, 1), bool) for k in whole
        )
        return Float(float(low), float(high), log="log" in dist, q=q, grid=grid, integer=integer)


def _infer(spec: dict[str, Any]) -> str | None:
    """W&B's rules: values -> categorical, int bounds -> int_uniform, else uniform."""
    if "value" in spec:
        return "constant"
    if "values" in spec:
        return "categorical"
    if "min" in spec and "max" in spec:
        ints = all(isinstance(spec[k], int) and not isinstance(spec[k], bool) for k in _RANGE)
        return "int_uniform" if ints else "uniform"
    if "mu" in spec or "sigma" in spec:
        return "normal"
    return None


def parse_parameters(block: Any, path: str = "parameters") -> tuple[Space, list[Problem]]:
    """Convert a W&B ``parameters:`` block; problems are returned, not raised, to report them all."""
    parser = _Parser()
    parser.block(block, path, "")
    conditions = parser.conditions() if not parser.problems else {}
    return Space(parser.params, conditions, parser.paths), parser.problems
