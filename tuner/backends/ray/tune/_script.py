"""A Ray Tune script's ``Tuner(...)`` arguments -> the study file that says the same.

:func:`study_data` reads ``trainable``, ``param_space``, ``TuneConfig`` and ``RunConfig`` (Ray's
objects, read as Ray 2.60 keeps them) and returns the keys of a study file, every problem found at
once (:class:`ConfigError`, each naming where it is: ``tune_config.scheduler``,
``run_config.callbacks[0]``...), and the notices to say. The trainable and a stopper are handed
over by value (:mod:`tuner.config._by_value`), so a script's own functions run as they are.

What maps to what:

- ``param_space``: Tune's domains as parameters (:func:`convert_param_space`), grid axes
  included; a ``sample_from`` of nothing by the domain its draws span (:func:`drawn`);
  ``num_samples`` per grid cell, as Tune counts it (``run_cap``).
- ``search_alg``: none or ``BasicVariantGenerator``: ``random``; tuner's own ``Searcher``: its
  method and options; ``OptunaSearch`` with a TPE, GP, random or NSGA-II sampler: ``optuna``;
  ``BayesOptSearch``: ``bayes``; a ``ConcurrencyLimiter``: ``max_concurrent``; any other Tune
  searcher: ``method: tune``, asked as Tune asks it (:mod:`._search_alg`). One with a space of its
  own is refused: the space is ``param_space``.
- ``scheduler``: ``ASHAScheduler`` (``AsyncHyperBandScheduler``) and ``HyperBandScheduler``
  (run as ASHA, its asynchronous form): ``asha``; ``MedianStoppingRule``: ``median``;
  ``PopulationBasedTraining``: ``pbt`` (a function mutation by the range its draws span,
  :func:`drawn`); ``PB2``: ``pb2``; ``FIFOScheduler``: none. Their
  ``time_attr`` must be ``training_iteration``.
- ``RunConfig``: ``name``, ``storage_path`` (``storage``), ``stop`` (a dict, a ``Stopper`` or a
  function), ``FailureConfig(max_failures)``, ``CheckpointConfig(num_to_keep)``, and an
  ``MLflowLoggerCallback`` or ``WandbLoggerCallback`` as ``tracking``; any other callback as
  ``tracking.callbacks``, told of the study as Tune tells it (:mod:`tuner.tracking`).
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from ray.tune.search.sample import Domain

from tuner.backends.ray.tune._domains import convert_param_space, parameter
from tuner.config import by_value, folder_name
from tuner.errors import ConfigError, Problem
from tuner.space import Categorical, Constant, Space, parameter_spec, parameters_block, space_size


class _Plain(yaml.SafeDumper):
    """A value used twice is written twice: study files take no aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


@dataclass
class Script:
    """What a study needs from one ``Tuner(...)`` call: its file's keys and what to say."""

    data: dict[str, Any]
    notices: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def text(self) -> str:
        """The study file as YAML."""
        return yaml.dump(self.data, Dumper=_Plain, sort_keys=False)

    def refuse(self, where: str, message: str) -> None:
        self.problems.append(Problem(where, message))

    def note(self, where: str, message: str) -> None:
        self.notices.append(f"{where}: {message}")


def study_data(
    trainable: Any, param_space: Mapping[str, Any] | None, tune_config: Any = None, run_config: Any = None
) -> Script:
    """The study file's keys for ``Tuner(trainable, param_space=..., tune_config=..., run_config=...)``;
    raises :class:`ConfigError` with every problem."""
    script = Script({"trainable_api": "tune"})
    _trainable(script, trainable)
    space = _param_space(script, param_space or {})
    _tune_config(script, tune_config, space)
    _run_config(script, run_config, trainable)
    if not script.problems:
        try:
            script.text()
        except yaml.YAMLError as exc:  # a numpy number in points_to_evaluate, an object in stop=...
            script.refuse("Tuner", f"holds a value that is not plain data (numbers, strings, lists, dicts): {exc}")
    if script.problems:
        raise ConfigError(script.problems, source="Tuner")
    return script


def _trainable(script: Script, trainable: Any) -> None:
    if isinstance(trainable, str):
        script.refuse("trainable", f"a trainable registered by name ({trainable!r}): pass the function or class")
        return
    if not callable(trainable):
        script.refuse("trainable", f"must be a function or a ray.tune.Trainable class, got {type(trainable).__name__}")
        return
    if _is_train_trainer(trainable):
        script.refuse(
            "trainable",
            f"a Ray Train {type(trainable).__name__}: pass its train_loop_per_worker as the trainable and its "
            "ScalingConfig(num_workers) through tune.with_resources, or write resources: {workers: N}",
        )
        return
    script.data["trainable"] = by_value.give(trainable, _name_of(trainable) or None)


def _is_train_trainer(obj: Any) -> bool:
    return any(c.__name__ in ("BaseTrainer", "DataParallelTrainer") for c in type(obj).__mro__)


def _param_space(script: Script, param_space: Mapping[str, Any]) -> Space:
    if not isinstance(param_space, Mapping):
        script.refuse("param_space", f"must be a dict, got {type(param_space).__name__}")
        return Space({})
    param_space = _drawn_functions(script, param_space, "")
    try:
        space, constants = convert_param_space(param_space)
    except ConfigError as exc:
        script.problems += exc.problems
        return Space({})
    block = parameters_block(space, constants)
    for name, spec in _leaves(block):
        try:
            yaml.safe_dump(spec)
        except yaml.YAMLError:
            script.refuse(
                f"param_space.{name}",
                "must be plain data (numbers, strings, lists, dicts) to be recorded with the study; "
                "pass objects to the trainable through tune.with_parameters",
            )
    script.data["parameters"] = block
    return space


class _ReadsConfig(BaseException):  # not caught by a function's own `except Exception`
    pass


class _Guard(dict):
    """The config a ``sample_from`` function is given here: any read says it depends on it."""

    def _read(self, *args: Any, **kwargs: Any) -> Any:
        raise _ReadsConfig

    __getitem__ = get = __getattr__ = __contains__ = _read


def _drawn_functions(script: Script, block: Mapping[str, Any], prefix: str) -> Mapping[str, Any]:
    """``param_space`` with each ``tune.sample_from`` of nothing (``lambda _: 2 ** randint(2, 9)``)
    replaced by the domain its draws span, searched like any other (a notice says so); one that
    reads the config is refused."""
    from ray import tune
    from ray.tune.search import sample

    out: dict[str, Any] = {}
    for key, value in block.items():
        if isinstance(value, Mapping):
            out[key] = _drawn_functions(script, value, f"{prefix}{key}.")
            continue
        if not isinstance(value, sample.Function):
            out[key] = value
            continue
        func = value.func

        def call(func: Any = func, config: bool = value.pass_config) -> Any:
            return func(_Guard()) if config else func()

        try:
            spec = drawn(call)
        except _ReadsConfig:
            script.refuse(
                f"param_space.{prefix}{key}",
                "tune.sample_from reads the config (a value derived from other parameters); derive it in the "
                "trainable from config instead",
            )
            continue
        except Exception as exc:
            script.refuse(f"param_space.{prefix}{key}", f"tune.sample_from could not be drawn: {exc}")
            continue
        kind = spec.get("distribution")
        if kind is None:
            out[key] = tune.choice(spec["values"])
        elif kind == "int_uniform":
            out[key] = tune.randint(spec["min"], spec["max"] + 1)
        else:
            out[key] = (tune.loguniform if kind == "log_uniform_values" else tune.uniform)(spec["min"], spec["max"])
        script.note(
            f"param_space.{prefix}{key}",
            f"tune.sample_from is searched within what {DRAWS} draws of it gave: {spec}",
        )
    return out


def _leaves(block: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, spec in block.items():
        if isinstance(spec, Mapping) and "parameters" in spec:
            out += _leaves(spec["parameters"], f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", spec))
    return out


def _tune_config(script: Script, config: Any, space: Space) -> None:
    metric, mode = _field(config, "metric", None), _field(config, "mode", None)
    searcher = _field(config, "search_alg", None)
    scheduler = _field(config, "scheduler", None)
    for obj in (searcher, scheduler):  # Tune lets a searcher or scheduler say the metric instead
        metric = metric or _private(obj, "metric")
        mode = mode or _private(obj, "mode")
    if isinstance(metric, list | tuple):
        if not isinstance(mode, list | tuple) or len(mode) != len(metric):
            script.refuse("tune_config.mode", "needs one mode per metric, as a list")
        else:
            script.data["metric"] = [{"name": m, "goal": _goal(script, g)} for m, g in zip(metric, mode, strict=True)]
    elif metric is not None:
        script.data["metric"] = {"name": metric, "goal": _goal(script, mode)}
    elif mode is not None:
        script.refuse("tune_config.metric", "is required with mode")
    num_samples = _field(config, "num_samples", 1) if config is not None else 1
    cells = math.prod(len(p.values) for p in space.grid_axes.values() if isinstance(p, Categorical))
    if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples == 0 or num_samples < -1:
        script.refuse("tune_config.num_samples", f"must be a positive integer or -1 (no limit), got {num_samples!r}")
    elif num_samples > 0:
        script.data["run_cap"] = num_samples * cells
        size = space_size(space)
        if size is not None and num_samples * cells > size:
            script.note(
                "tune_config.num_samples",
                f"param_space has {size} configuration(s): each runs once, where Tune would repeat them "
                f"({num_samples * cells} trials); repeat a configuration with seeds by python -m tuner confirm",
            )
    concurrent = _field(config, "max_concurrent_trials", None)
    if concurrent:
        script.data["max_concurrent"] = int(concurrent)
    budget = _field(config, "time_budget_s", None)
    if isinstance(budget, datetime.timedelta):
        budget = budget.total_seconds()
    if budget:
        script.data["time_limit"] = float(budget)
    for key in ("trial_name_creator", "trial_dirname_creator"):
        if _field(config, key, None) is not None:
            script.note(f"tune_config.{key}", "not used: trials are named t0001, t0002... in the results")
    _searcher(script, searcher, space, num_samples)
    _scheduler(script, scheduler, space)


def _field(obj: Any, name: str, default: Any = None) -> Any:
    """``obj.name``; Ray's placeholders for a deprecated field (``ray.train.RunConfig``'s
    ``stop = "DEPRECATED"``) read as unset."""
    value = getattr(obj, name, default)
    return default if value == "DEPRECATED" or type(value).__name__ == "_DeprecatedValue" else value


def _goal(script: Script, mode: Any) -> str:
    if mode not in ("min", "max"):
        script.refuse("tune_config.mode", f"must be 'min' or 'max', got {mode!r}")
        return "minimize"
    return "maximize" if mode == "max" else "minimize"


def _private(obj: Any, name: str) -> Any:
    value = getattr(obj, f"_{name}", None)
    return None if value is None or type(value).__name__ == "_DeprecatedValue" else value


def _searcher(script: Script, searcher: Any, space: Space, num_samples: int) -> None:
    where = "tune_config.search_alg"
    kind = type(searcher).__name__
    if kind == "ConcurrencyLimiter":
        limit = getattr(searcher, "max_concurrent", None)
        if limit:
            script.data["max_concurrent"] = min(int(limit), script.data.get("max_concurrent", int(limit)))
        searcher, kind = searcher.searcher, type(searcher.searcher).__name__
    if searcher is None or kind == "BasicVariantGenerator":
        script.data["method"] = "random"
        seed = _seed_from(getattr(searcher, "_random_state", None))
        if seed is not None:
            script.data["seed"] = seed
        limit = getattr(searcher, "max_concurrent", 0)
        if limit:
            script.data["max_concurrent"] = min(int(limit), script.data.get("max_concurrent", int(limit)))
        _points(script, getattr(searcher, "_points_to_evaluate", None))
        return
    if kind == "ParamSpaceSearcher":  # tuner's own, in a Tune script: its method and options
        script.data["method"] = searcher.method
        script.data["searcher"] = dict(searcher.options)
        script.data["seed"] = searcher.seed
        _points(script, searcher.points)
        return
    if getattr(searcher, "_space", None) or getattr(searcher, "_config_space", None):
        script.refuse(where, f"{kind} with a space of its own: give the search space as param_space instead")
        return
    sampler = type(getattr(searcher, "_sampler", None)).__name__
    kinds = {"TPESampler": "tpe", "GPSampler": "gp", "RandomSampler": "random", "NSGAIISampler": "nsga2"}
    if kind == "OptunaSearch" and sampler in (*kinds, "NoneType"):  # tuner's own Optuna searcher, the same sampler
        script.data["method"] = "optuna"
        if sampler in kinds:
            script.data["searcher"] = {"sampler": kinds[sampler]}
        seed = getattr(searcher, "_seed", None)
        if isinstance(seed, int):
            script.data["seed"] = seed
        _points(script, getattr(searcher, "_points_to_evaluate", None))
        return
    if kind == "BayesOptSearch":
        script.data["method"] = "bayes"
        seed = getattr(searcher, "_random_state", None)
        if isinstance(seed, int):
            script.data["seed"] = seed
        _points(script, getattr(searcher, "_points_to_evaluate", None))
        script.note(where, "BayesOptSearch runs as tuner's bayes, a Gaussian-process searcher of its own")
        return
    if not hasattr(searcher, "suggest") or not hasattr(searcher, "on_trial_complete"):
        script.refuse(where, f"{kind} is not a ray.tune.search.Searcher")
        return
    # any other Tune searcher (HyperOptSearch, AxSearch, OptunaSearch with another sampler, your own):
    # asked as Tune asks it (method tune)
    script.data["method"] = "tune"
    script.data["searcher"] = {"search_alg": by_value.give(searcher, kind)}  # its points_to_evaluate its own


def _seed_from(state: Any) -> int | None:
    """A seed drawn from Tune's ``random_state`` (an int, or Tune's wrapped numpy generator):
    the same ``random_state`` gives the same study seed."""
    if isinstance(state, int):
        return state
    draw = getattr(state, "integers", None) or getattr(state, "randint", None)
    return None if draw is None else int(draw(0, 2**31 - 1))


def _points(script: Script, points: Any) -> None:
    if points:
        script.data["points_to_evaluate"] = [dict(p) for p in points]


_ASHA = ("AsyncHyperBandScheduler", "ASHAScheduler")


def _scheduler(script: Script, scheduler: Any, space: Space) -> None:
    where = "tune_config.scheduler"
    kind = type(scheduler).__name__
    if scheduler is None or kind == "FIFOScheduler":
        return
    time_attr = getattr(scheduler, "_time_attr", "training_iteration")
    if time_attr != "training_iteration":
        script.refuse(f"{where}.time_attr", f"must be training_iteration (a trial's reports), got {time_attr!r}")
        return
    if kind in _ASHA:
        brackets = getattr(scheduler, "_brackets", [])
        grace = brackets[0]._rungs[-1][0] if brackets and brackets[0]._rungs else 1
        script.data["early_terminate"] = {
            "type": "asha",
            "max_t": int(scheduler._max_t),
            "grace_period": int(grace),
            "reduction_factor": float(scheduler._reduction_factor),
            "brackets": len(brackets) or 1,
        }
    elif kind == "HyperBandScheduler":
        script.data["early_terminate"] = {
            "type": "asha",
            "max_t": int(scheduler._max_t_attr),
            "reduction_factor": float(scheduler._eta),
        }
        script.note(where, "HyperBandScheduler runs as ASHA (asynchronous successive halving) with its max_t and eta")
    elif kind == "MedianStoppingRule":
        script.data["early_terminate"] = {
            "type": "median",
            "grace_period": int(scheduler._grace_period),
            "min_samples_required": int(scheduler._min_samples_required),
        }
    elif kind in ("PopulationBasedTraining", "PB2"):
        _population(script, scheduler, space, "pb2" if kind == "PB2" else "pbt")
    else:
        script.refuse(
            where,
            f"{kind} is not one tuner runs; use ASHAScheduler, HyperBandScheduler, MedianStoppingRule, "
            "PopulationBasedTraining, PB2 or none, or keep ray.tune.Tuner",
        )


def _population(script: Script, pbt: Any, space: Space, kind: str) -> None:
    where = "tune_config.scheduler"
    if getattr(pbt, "_custom_explore_fn", None) is not None:
        script.refuse(f"{where}.custom_explore_fn", "is not run by tuner's PBT; give hyperparam_mutations instead")
        return
    if getattr(pbt, "_burn_in_period", 0):
        script.note(f"{where}.burn_in_period", "not used: members are compared from their first interval")
    block: dict[str, Any] = {"type": kind, "perturbation_interval": max(1, int(pbt._perturbation_interval))}
    block["quantile_fraction"] = float(pbt._quantile_fraction)
    if kind == "pbt":
        block["resample_probability"] = float(pbt._resample_probability)
        block["perturbation_factors"] = [float(f) for f in pbt._perturbation_factors]
        mutations = dict(pbt._hyperparam_mutations or {})
    else:
        mutations = {k: tune_bounds(v) for k, v in (pbt._hyperparam_bounds or {}).items()}
    specs: dict[str, Any] = {}
    for name, mutation in _flat(mutations).items():
        at = f"{where}.hyperparam_mutations.{name}"
        try:
            if isinstance(mutation, list | tuple):
                spec = {"values": list(mutation)}
            elif callable(mutation) and not isinstance(mutation, Domain):
                spec = drawn(mutation)
                script.note(at, f"a function: mutated within what {DRAWS} draws of it gave: {spec}")
            else:
                spec = parameter_spec(parameter(mutation))
        except Exception as exc:  # the user's function: whatever it raises is said in one line
            script.refuse(at, f"must be a list of values, a tune domain or a function of no arguments: {exc!r}")
            continue
        specs[name] = spec
        _mutable_parameter(script, name, spec, space)
    if specs:
        block["mutations"] = specs
    script.data["early_terminate"] = block


DRAWS = 200  # how many values a function mutation is asked for to see its range


def drawn(fn: Any) -> dict[str, Any]:
    """A function mutation (``lambda: random.uniform(1e-4, 1e-2)``, as Ray's PBT calls it to
    resample) as the parameter its values span: a few distinct values are a list; integers an
    int range; numbers a range, on a log scale when they crowd its low end, as log-uniform
    draws over a decade or more do. The caller's
    ``random`` and ``numpy.random`` states are left as they were."""
    import random

    import numpy as np

    states = random.getstate(), np.random.get_state()
    try:
        values = [fn() for _ in range(DRAWS)]
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
    values = [v.item() if isinstance(v, np.generic) else v for v in values]
    distinct = sorted(set(values), key=repr)
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values)
    if len(distinct) <= 8 or not numbers:
        if len(distinct) > 8:
            raise ValueError(f"it gave {len(distinct)} different values that are not numbers")
        return {"values": sorted(distinct) if numbers else distinct}
    low, high = min(values), max(values)
    if all(isinstance(v, int) for v in values):
        return {"distribution": "int_uniform", "min": int(low), "max": int(high)}
    # log-uniform draws crowd the low end: most of them below the range's midpoint
    log = low > 0 and high / low > 10 and sum(v < (low + high) / 2 for v in values) > 0.7 * len(values)
    return {"distribution": "log_uniform_values" if log else "uniform", "min": float(low), "max": float(high)}


def tune_bounds(bounds: Any) -> Any:
    """PB2's ``[low, high]`` as a domain of Tune's, so one path converts both."""
    from ray import tune

    low, high = bounds
    return tune.uniform(float(low), float(high))


def _flat(mutations: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mutations.items():
        if isinstance(value, Mapping) and not ("grid_search" in value and len(value) == 1):
            out |= _flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def _mutable_parameter(script: Script, name: str, spec: dict[str, Any], space: Space) -> None:
    """A mutation must be a searched parameter: where ``param_space`` holds a constant (or nothing)
    for it, the members draw their first value from the mutation, which a notice says."""
    param = space.params.get(name)
    if param is not None and not isinstance(param, Constant):
        return
    parts = name.split(".")
    block = script.data.setdefault("parameters", {})
    for part in parts[:-1]:
        block = block.setdefault(part, {"parameters": {}}).setdefault("parameters", {})
    held = block.get(parts[-1], {})
    block[parts[-1]] = dict(spec)
    if "value" in held:
        script.note(
            f"param_space.{name}",
            f"is {held['value']!r} and mutated by the population: its members start from draws of the mutation",
        )


def _run_config(script: Script, config: Any, trainable: Any) -> None:
    if config is None:  # Tune's defaults: results under ~/ray_results (or $TUNE_RESULT_DIR)
        from ray import tune

        config = tune.RunConfig()
    name = _field(config, "name", None)
    script.data["name"] = name or _default_name(trainable)
    storage = _field(config, "storage_path", None) or _field(config, "local_dir", None)
    if isinstance(storage, str):
        script.data["storage"] = storage
    if _field(config, "storage_filesystem", None) is not None:
        script.refuse("run_config.storage_filesystem", "is not used by tuner; give storage_path (a path or s3://...)")
    _stop(script, _field(config, "stop", None))
    failure = _field(config, "failure_config", None)
    if failure is not None:
        retries = _field(failure, "max_failures", 0)
        if retries == -1:
            script.data["max_failures"] = 1_000_000
        elif retries:
            script.data["max_failures"] = int(retries)
        if _field(failure, "fail_fast", False):
            script.data["max_failed_trials"] = 0
    checkpoints = _field(config, "checkpoint_config", None)
    if checkpoints is not None:
        keep = _field(checkpoints, "num_to_keep", None)
        if keep:
            script.data["checkpoints"] = {"keep": int(keep)}
        if _field(checkpoints, "checkpoint_frequency", 0) not in (0, 1):
            script.note(
                "run_config.checkpoint_config.checkpoint_frequency",
                "not used: a class trainable is saved after each step",
            )
    for i, callback in enumerate(_field(config, "callbacks", None) or []):
        _callback(script, f"run_config.callbacks[{i}]", callback)


def _name_of(trainable: Any) -> str:
    """The function's own name under ``tune.with_parameters`` / ``functools.wraps`` / ``partial``."""
    inner = getattr(trainable, "__wrapped__", None) or getattr(trainable, "func", None) or trainable
    return str(getattr(inner, "__name__", None) or getattr(trainable, "__name__", None) or "")


def _default_name(trainable: Any) -> str:
    return folder_name(_name_of(trainable)) or "study"


def _stop(script: Script, stop: Any) -> None:
    if stop is None:
        return
    if isinstance(stop, Mapping):
        script.data["stop"] = dict(stop)
    elif callable(stop):
        script.data["stopper"] = by_value.give(stop, "stopper")
    else:
        script.refuse("run_config.stop", f"must be a dict, a ray.tune.Stopper or a function, got {stop!r}")


def _callback(script: Script, where: str, callback: Any) -> None:
    kind = type(callback).__name__
    tracking = script.data.setdefault("tracking", {}) if kind in ("MLflowLoggerCallback", "WandbLoggerCallback") else {}
    if kind == "MLflowLoggerCallback":
        mlflow: dict[str, Any] = {}
        if getattr(callback, "tracking_uri", None):
            mlflow["tracking_uri"] = callback.tracking_uri
        if getattr(callback, "experiment_name", None):
            mlflow["experiment"] = callback.experiment_name
        tracking["mlflow"] = mlflow
    elif kind == "WandbLoggerCallback":
        wandb: dict[str, Any] = {"project": getattr(callback, "project", None) or script.data.get("name", "tuner")}
        kwargs = getattr(callback, "kwargs", {}) or {}
        for key in ("entity", "mode", "dir"):
            value = getattr(callback, key, None) or kwargs.get(key)
            if value:
                wandb[key] = value
        tracking["wandb"] = wandb
    elif kind in _RAYS_OWN_LOGGERS:
        script.note(where, f"{kind} not used: tuner writes its own results (trials.parquet, history.parquet)")
    else:  # a callback of the user's: told of the study as Tune tells it (tuner.tracking)
        script.data.setdefault("tracking", {}).setdefault("callbacks", []).append(by_value.give(callback, kind))


_RAYS_OWN_LOGGERS = ("CSVLoggerCallback", "JsonLoggerCallback", "TBXLoggerCallback", "LegacyLoggerCallback")
