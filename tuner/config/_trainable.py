"""Finding, trusting and inspecting the training function a study names."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import sys
import textwrap
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tuner.errors import Problem

DEFAULT_ALLOWED = ("trainables",)


def split(dotted: str) -> tuple[str, str]:
    """``pkg.module:function`` (or ``pkg.module.function``) -> ``(module, function)``."""
    module, _, attr = dotted.partition(":") if ":" in dotted else dotted.rpartition(".")
    return module, attr


def allowed_modules(extra: Sequence[str] = (), root: Path | None = None) -> tuple[str, ...]:
    """Module prefixes whose code a study may run: ``trainables``, the command line's
    ``--allow-module`` values, and ``[tool.tuner] allowed_modules`` of ``pyproject.toml``
    in the working folder. Never the study file itself: a YAML cannot widen its own trust.
    """
    prefixes = [*DEFAULT_ALLOWED, *extra]
    pyproject = (root or Path.cwd()) / "pyproject.toml"
    if pyproject.exists():
        try:
            table = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {}).get("tuner", {})
        except (OSError, tomllib.TOMLDecodeError):
            table = {}
        prefixes += [str(p) for p in table.get("allowed_modules", [])]
    return tuple(p.rstrip(".") for p in prefixes)


def is_allowed(module: str, prefixes: Sequence[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def import_trainable(dotted: str) -> Callable[..., Any]:
    """The function ``dotted`` names, imported (the working folder is importable)."""
    module_name, attr = split(dotted)
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    module = importlib.import_module(module_name)
    fn = getattr(module, attr, None)
    if fn is None:
        raise AttributeError(f"module {module_name!r} has no attribute {attr!r}")
    if not callable(fn):
        raise TypeError(f"{dotted!r} is not callable")
    return fn


def check_trainable(dotted: str, metric: str, allowed: Sequence[str], backend: str = "ray") -> list[Problem]:
    """Everything knowable about the trainable before a trial: trust, import, signature, metric.

    On the simulated backend the trainable is ``f(config, step) -> metrics``, not ``(config, trial)``.
    """
    module_name, _ = split(dotted)
    if not is_allowed(module_name, allowed):
        return [
            Problem(
                "trainable",
                f"module {module_name!r} is not allowed to run; allowed: "
                f"{', '.join(p + '.*' for p in allowed)} (add more with --allow-module or "
                "[tool.tuner] allowed_modules in pyproject.toml)",
            )
        ]
    try:
        fn = import_trainable(dotted)
    except Exception as exc:  # any import failure is the user's to fix
        return [Problem("trainable", f"cannot import {dotted!r}: {type(exc).__name__}: {exc}")]
    second = "step" if backend == "simulated" else "trial"
    try:
        inspect.signature(fn).bind(object(), object())
    except TypeError:
        return [Problem("trainable", f"{dotted!r} must take (config, {second})")]
    except ValueError:
        pass  # no signature to read: the first trial will tell
    if backend == "simulated":
        return _check_simulated(fn, dotted, metric)
    reported = reported_metrics(fn)
    if reported is not None and metric not in reported:
        return [
            Problem(
                "metric.name",
                f"{metric!r} is never reported by {dotted} "
                f"(its trial.report calls report: {', '.join(sorted(reported))})",
            )
        ]
    return []


def _check_simulated(fn: Callable[..., Any], dotted: str, metric: str) -> list[Problem]:
    if reported_metrics(fn) is not None:
        return [
            Problem(
                "trainable",
                f"{dotted} reports through trial.report: backend simulated calls f(config, step) "
                "and records the metrics it returns",
            )
        ]
    returned = returned_metrics(fn)
    if returned is not None and metric not in returned:
        return [Problem("metric.name", f"{metric!r} is never returned by {dotted} (it returns: {', '.join(returned)})")]
    return []


def returned_metrics(fn: Callable[..., Any]) -> list[str] | None:
    """The keys of the dict literals ``fn`` returns (``seconds`` aside), when every return is one
    with plain string keys; ``None`` when that cannot be known."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return None
    names: dict[str, None] = {}
    returns = [n for n in ast.walk(tree) if isinstance(n, ast.Return)]
    for node in returns:
        if not isinstance(node.value, ast.Dict):
            return None
        for key in node.value.keys:
            if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                return None
            if key.value != "seconds":
                names[key.value] = None
    return list(names) or None


def reported_metrics(fn: Callable[..., Any]) -> set[str] | None:
    """The metric names ``fn`` passes by keyword to ``.report(...)``, following the functions of
    its own module that it calls.

    ``None`` when that cannot be known: no source, no such call, or a ``**metrics`` call.
    """
    module = inspect.getmodule(fn)
    try:
        source = inspect.getsource(module) if module else None
    except (OSError, TypeError):
        source = None
    if not source:
        return None
    functions = {n.name: n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)}
    todo, seen, names = [getattr(fn, "__name__", "")], set(), set()
    while todo:
        name = todo.pop()
        if name in seen or name not in functions:
            continue
        seen.add(name)
        for node in ast.walk(functions[name]):
            if not isinstance(node, ast.Call):
                continue
            if isinstance(node.func, ast.Name):
                todo.append(node.func.id)
            elif isinstance(node.func, ast.Attribute) and node.func.attr == "report":
                for kw in node.keywords:
                    if kw.arg is None:
                        return None
                    if kw.arg != "checkpoint":
                        names.add(kw.arg)
    return names or None
