"""Finding, trusting and inspecting the training function a study names."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import sys
import textwrap
import tomllib
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from tuner.config import _by_value as by_value
from tuner.errors import MissingExtra, Problem

DEFAULT_ALLOWED = ("trainables",)
Style = Literal["tuner", "tune"]


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


def import_named(dotted: str) -> Any:
    """The object ``dotted`` names in its module, imported (the working folder is importable);
    an object handed over in Python (:mod:`tuner.config._by_value`) goes by its given name."""
    given = by_value.lookup(dotted)
    if given is not by_value.MISSING:
        return given
    module_name, attr = split(dotted)
    if module_name == "__main__":  # only ever handed over: a worker asks the driver's copy
        given = by_value.lookup(dotted, fetch=True)
        if given is not by_value.MISSING:
            return given
        raise AttributeError(
            f"{dotted!r} was handed over by a Python script (tuner.integrations.ray_tune.Tuner) and is not "
            "known here; restore that run with Tuner.restore(path, trainable=...)"
        )
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
        if not hasattr(module, attr):
            raise AttributeError(f"module {module_name!r} has no attribute {attr!r}")
    except (ImportError, AttributeError):  # handed over from code this process cannot import
        given = by_value.lookup(dotted, fetch=True)
        if given is not by_value.MISSING:
            return given
        raise
    return getattr(module, attr)


def import_trainable(dotted: str) -> Callable[..., Any]:
    """The function ``dotted`` names, imported (the working folder is importable)."""
    fn = import_named(dotted)
    if not callable(fn):
        raise TypeError(f"{dotted!r} is not callable")
    return fn


def checked_import(
    key: str,
    dotted: str,
    allowed: Sequence[str],
    load: Callable[[str], Any] = import_trainable,
    own: type[Exception] | tuple[type[Exception], ...] = (),
) -> tuple[Any, list[Problem]]:
    """``load(dotted)`` when its module may run, else ``None`` and one :class:`Problem` on ``key``:
    its module is not trusted, it does not import, or (an ``own`` error) it is not what ``key`` takes."""
    module_name, _ = split(dotted)
    if not by_value.given(dotted) and not is_allowed(module_name, allowed):
        return None, [
            Problem(
                key,
                f"module {module_name!r} is not allowed to run; allowed: "
                f"{', '.join(p + '.*' for p in allowed)} (add more with --allow-module or "
                "[tool.tuner] allowed_modules in pyproject.toml)",
            )
        ]
    try:
        return load(dotted), []
    except own as exc:
        return None, [Problem(key, f"{dotted!r} {exc}")]
    except Exception as exc:  # any import failure is the user's to fix
        missing = MissingExtra.of(exc)
        detail = str(missing) if missing is not None else f"{type(exc).__name__}: {exc}"
        return None, [Problem(key, f"cannot import {dotted!r}: {detail}")]


def check_trainable(
    dotted: str, metric: str | None, allowed: Sequence[str], backend: str = "ray", api: str = "auto"
) -> list[Problem]:
    """Everything knowable about the trainable before a trial: trust, import, signature, metric.

    On the simulated backend the trainable is ``f(config, step) -> metrics``, not ``(config, trial)``;
    elsewhere ``api`` (``trainable_api``) says which of :func:`trainable_style` 's forms it has.
    """
    fn, problems = checked_import("trainable", dotted, allowed)
    if problems:
        return problems
    if backend == "simulated":
        if api == "tune":
            return [Problem("trainable_api", "tune: backend simulated calls f(config, step), not a Ray Tune trainable")]
        try:
            try:
                inspect.signature(fn).bind(object(), object())
            except TypeError:
                inspect.signature(fn).bind(object(), object(), object())  # f(config, step, state)
        except TypeError:
            return [Problem("trainable", f"{dotted!r} must take (config, step) or (config, step, state)")]
        except ValueError:
            pass  # no signature to read: the first trial will tell
        return _check_simulated(fn, dotted, metric)
    try:
        style = trainable_style(fn, api)
    except TypeError as exc:
        return [Problem("trainable", f"{dotted!r} {exc}")]
    reported = reported_metrics(fn, style)
    if reported is not None and style == "tune":
        reported.add("training_iteration")
    if reported is not None and metric is not None and metric not in reported:
        calls = "tune.report" if style == "tune" else "trial.report"
        return [
            Problem(
                "metric.name",
                f"{metric!r} is never reported by {dotted} (its {calls} calls report: {', '.join(sorted(reported))})",
            )
        ]
    return []


def trainable_style(fn: Callable[..., Any], api: str = "auto") -> Style:
    """How ``fn`` is called: ``tuner``, as ``fn(config, trial)``; ``tune``, as Ray Tune's function
    API (``fn(config)``, or ``fn()`` as a ``TorchTrainer`` 's ``train_loop_per_worker`` may be)
    reporting through ``ray.tune.report`` or ``ray.train.report``.

    ``api`` ``auto`` takes a function for ``tune`` when it has exactly one required positional
    parameter (or no parameter at all) and its module uses Ray (holds ``ray``, ``tune``, ``train``
    or one of their functions or classes); otherwise for ``tuner``. A ``ray.tune.Trainable``
    subclass (Ray Tune's class API) is ``tune``. :class:`TypeError` when
    ``fn`` cannot be called the way ``api`` says.
    """
    if is_tune_class(fn):  # Ray Tune's class API: run by tuner.backends.ray._tune_class
        if api == "tuner":
            raise TypeError("is a ray.tune.Trainable class: it runs as a Ray Tune trainable (trainable_api: tune)")
        return "tune"
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # no signature to read: the first trial will tell
        return "tune" if api == "tune" else "tuner"
    one = _tune_like(signature)
    if api == "tune" or (api == "auto" and one and _uses_ray(fn)):
        if not (_binds(signature, 1) or _binds(signature, 0)):
            raise TypeError("must take (config) or nothing, as a Ray Tune trainable (trainable_api: tune)")
        return "tune"
    if not _binds(signature, 2):
        if api == "auto" and one:
            raise TypeError(
                "must take (config, trial); it takes one argument, as a Ray Tune trainable does, but its "
                "module uses neither ray.tune nor ray.train (say trainable_api: tune if it reports through them)"
            )
        raise TypeError("must take (config, trial)")
    return "tuner"


def declared_resources(fn: Callable[..., Any]) -> dict[str, float] | str | None:
    """What a trial of ``fn`` asks for through Ray Tune's ``tune.with_resources`` (or a class
    trainable's ``default_resource_request``), as ``{"cpus": n, "gpus": m}``; a string saying why
    it cannot be used (several bundles, resources that depend on the config); ``None``: it asks
    for nothing. Told without importing Ray."""
    request: Any = getattr(fn, "_resources", None)
    if request is None and is_tune_class(fn) and defines(fn, "default_resource_request"):
        try:  # one that reads the config answers per trial: not one figure for the study
            request = fn.default_resource_request(_NoConfig())  # type: ignore[attr-defined]
        except Exception:
            return "its default_resource_request depends on the config"
    if request is None:
        return None
    bundles = getattr(request, "bundles", None)
    if bundles is None:
        return "its resources are a function of the config" if callable(request) else None
    if len(bundles) != 1:
        return f"it asks for {len(bundles)} bundles (a Ray Train placement): give workers, cpus and gpus instead"
    bundle = {str(k).upper(): float(v) for k, v in bundles[0].items()}
    return {"cpus": bundle.get("CPU", 1.0) or 1.0, "gpus": bundle.get("GPU", 0.0)}


class _NoConfig(dict):
    """A config that raises on any read: whether resources depend on the config."""

    def _read(self, *args: Any, **kwargs: Any) -> Any:
        raise LookupError("the config is read")

    __getitem__ = get = __contains__ = __iter__ = __len__ = keys = items = values = _read


def defines(cls: Any, name: str) -> bool:
    """Whether a class trainable, or a base of it other than Ray Tune's own ``Trainable`` (whose
    defaults ask for no resources and save nothing), defines ``name``."""
    ray_bases = {("ray.tune.trainable.trainable", "Trainable"), ("builtins", "object")}
    return any(name in vars(c) for c in inspect.getmro(cls) if (c.__module__, c.__name__) not in ray_bases)


def is_tune_class(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` is a subclass of Ray Tune's ``Trainable`` (told without importing Ray)."""
    return inspect.isclass(fn) and any(
        c.__name__ == "Trainable" and c.__module__.startswith("ray.tune") for c in inspect.getmro(fn)
    )


def _tune_like(signature: inspect.Signature) -> bool:
    params = list(signature.parameters.values())
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in params if p.kind in positional and p.default is p.empty]
    return len(required) == 1 or not params


def _binds(signature: inspect.Signature, count: int) -> bool:
    try:
        signature.bind(*([None] * count))
    except TypeError:
        return False
    return True


def _uses_ray(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` 's module holds Ray: a module of it, or a function or class from one."""
    for value in getattr(fn, "__globals__", {}).values():
        name = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
        if isinstance(name, str) and (name == "ray" or name.startswith("ray.")):
            return True
    return False


def _check_simulated(fn: Callable[..., Any], dotted: str, metric: str | None) -> list[Problem]:
    if reported_metrics(fn) is not None:
        return [
            Problem(
                "trainable",
                f"{dotted} reports through trial.report: backend simulated calls f(config, step) "
                "and records the metrics it returns",
            )
        ]
    returned = returned_metrics(fn)
    if returned is not None and metric is not None and metric not in returned:
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


def reported_metrics(fn: Callable[..., Any], style: Style = "tuner") -> set[str] | None:
    """The metric names ``fn`` reports, following the functions of its own module that it calls:
    for ``tuner``, the keywords of its ``.report(step, ...)`` calls; for ``tune``, the keys of the
    dict its ``report(metrics)`` calls pass (a dict literal, ``dict(...)``, or a name assigned one
    in the same function).

    ``None`` when that cannot be known: no source, no such call, or metrics built otherwise.
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
            called = node.func.id if isinstance(node.func, ast.Name) else None
            if called is not None and called in functions:
                todo.append(called)
            elif style == "tune" and (called == "report" or _attribute(node.func) == "report"):
                keys = _dict_keys(_metrics_argument(node), functions[name])
                if keys is None:
                    return None
                names.update(keys)
            elif style == "tuner" and _attribute(node.func) == "report":
                for kw in node.keywords:
                    if kw.arg is None:
                        return None
                    if kw.arg != "checkpoint":
                        names.add(kw.arg)
    return names or None


def _attribute(func: ast.expr) -> str | None:
    return func.attr if isinstance(func, ast.Attribute) else None


def _metrics_argument(call: ast.Call) -> ast.expr | None:
    if call.args:
        return call.args[0]
    return next((kw.value for kw in call.keywords if kw.arg == "metrics"), None)


def _dict_keys(node: ast.expr | None, function: ast.FunctionDef) -> list[str] | None:
    """The string keys of a dict literal or ``dict(k=...)``; for a name, of the dicts assigned to
    it in ``function`` when nothing else is assigned to it or changes it there. ``None`` when a key
    cannot be read."""
    if not isinstance(node, ast.Name):
        return _literal_keys(node)
    found: list[str] = []
    assigned = False
    for n in ast.walk(function):
        if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == node.id for t in n.targets):
            keys = _literal_keys(n.value)
            if keys is None:
                return None
            found += keys
            assigned = True
        elif isinstance(n, ast.Subscript | ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == node.id:
            return None  # metrics["acc"] = ..., metrics.update(...): keys added elsewhere
        elif isinstance(n, ast.AugAssign | ast.AnnAssign | ast.NamedExpr) and getattr(n.target, "id", None) == node.id:
            return None
    return found if assigned else None


def _literal_keys(node: ast.expr | None) -> list[str] | None:
    if isinstance(node, ast.Dict):
        keys = [k.value if isinstance(k, ast.Constant) and isinstance(k.value, str) else None for k in node.keys]
        return None if None in keys else [str(k) for k in keys]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        names = [kw.arg for kw in node.keywords]
        return None if None in names else [str(k) for k in names]
    return None
