"""A searcher for a user's own Ray Tune script: our method by name, its space from Tune's ``param_space``."""

from __future__ import annotations

import math
import re
import secrets
import warnings
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from tuner import searchers
from tuner.backends.ray.tune._domains import PATH, convert_param_space, functions
from tuner.backends.ray.tune._searcher import Mode, TuneSearcher
from tuner.config import minimised
from tuner.errors import ConfigError, Problem, UserError
from tuner.searchers import Outcome
from tuner.space import Space, space_size, summary

ARGS = "Searcher"  # how a problem names the constructor's arguments
_MISSING = object()


class ParamSpaceSearcher(TuneSearcher):
    """``Searcher(method="bayes", metric=None, mode=None, seed=None, points_to_evaluate=None,
    max_t=None, time_attr="training_iteration", **options)``: one of our methods (``grid``,
    ``random``, ``bayes``, ``optuna``) inside ``tune.Tuner``, over the ``param_space`` Tune passes
    it. ``options`` are those of the YAML's ``searcher:`` block for ``method``. ``metric`` and
    ``mode`` may come from ``tune.TuneConfig`` instead; given in both places, they must agree.
    ``grid_search`` values are grid axes: with ``grid`` the grid, with another method each of
    their combinations gets its own searcher over the other parameters, and they take turns.
    ``max_t`` is the step (``time_attr``) at which a trial has run its full budget, as ASHA's: a
    trial ending before it, stopped by the scheduler, is told to the searcher as pruned there.
    ``seed`` (drawn at random when not given) makes the suggestions reproducible.
    """

    def __init__(
        self,
        method: str = "bayes",
        metric: str | None = None,
        mode: Mode | None = None,
        seed: int | None = None,
        points_to_evaluate: list[dict[str, Any]] | None = None,
        *,
        evaluated_rewards: list[float] | None = None,
        max_t: float | None = None,
        time_attr: str = "training_iteration",
        **options: Any,
    ) -> None:
        _check_args(method, metric, mode, seed, points_to_evaluate, evaluated_rewards, max_t, time_attr, options)
        super(TuneSearcher, self).__init__(metric=metric, mode=mode)  # Ray's: this class binds its space later
        self.method, self.options = method, dict(options)
        self.seed = secrets.randbelow(2**31) if seed is None else seed
        self.points = [dict(p) for p in points_to_evaluate or []]
        self.rewards = list(evaluated_rewards) if evaluated_rewards is not None else None
        self.max_step, self.step_key = max_t, time_attr
        self.objectives: list[tuple[str, Mode]] = []  # one metric
        self.run_cap: int | None = None
        self._inner: searchers.Searcher | None = None  # type: ignore[assignment]
        self.space: Space | None = None  # type: ignore[assignment]
        self.constants: dict[str, Any] = {}
        self._reset()

    def __repr__(self) -> str:
        options = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return (
            f"Searcher(method={self.method!r}, metric={self.metric!r}, mode={self.mode!r}, seed={self.seed}{options})"
        )

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any) -> bool:
        """Tune's ``TuneConfig`` metric and mode and its ``param_space``: the space is built here."""
        problems = []
        for key, given, mine in (("metric", metric, self._metric), ("mode", mode, self._mode)):
            if given is not None and mine is not None and given != mine:
                problems.append(
                    Problem(f"{ARGS}.{key}", f"is {mine!r} and tune.TuneConfig({key}={given!r}) differs; give it once")
                )
        if metric is not None and not isinstance(metric, str):
            problems.append(Problem("tune.TuneConfig.metric", f"must be one metric's name, got {metric!r}"))
        self._metric, self._mode = self._metric or metric, self._mode or mode
        if self._metric is None or self._mode is None:
            problems.append(
                Problem(ARGS, "metric and mode are required; pass them to Searcher(...) or tune.TuneConfig")
            )
        if problems:
            raise ConfigError(problems)
        space, constants = convert_param_space(config)
        self.points = [_without_constants(p, constants) for p in self.points]
        problems = space_problems(self.method, space) + point_problems(
            self.points, space, full=self.rewards is not None
        )
        if problems:
            raise ConfigError(problems)
        samples = spec.get("num_samples")
        self.run_cap = samples if isinstance(samples, int) and samples > 0 else None
        self._bind(self._create(space), space, constants)
        self._reset()
        for name in functions(constants):
            warnings.warn(
                f"{name}: tune.sample_from is evaluated by Tune on each suggestion, not searched", stacklevel=2
            )
        for line in _notices(self.method, self.options, space, self.run_cap):
            warnings.warn(line, stacklevel=2)
        return True

    def _create(self, space: Space) -> searchers.Searcher:
        """The method's searcher: ``points_to_evaluate`` queued to run first, or, with
        ``evaluated_rewards``, told as complete trials (``e0001``, ...) that never run."""
        points = [flat_point(p, space) for p in self.points]
        if self.rewards is None:
            return searchers.create(self.method, space, self.seed, self.options, self.run_cap, points=points)
        searcher = searchers.create(self.method, space, self.seed, self.options, self.run_cap)
        for i, (point, reward) in enumerate(zip(points, self.rewards, strict=True)):
            searcher.tell(f"e{i + 1:04d}", point, Outcome(minimised(float(reward), self._mode == "max"), "complete"))
        return searcher

    def _searcher(self) -> searchers.Searcher:
        if self._inner is None or self.space is None:
            raise UserError(
                f"{ARGS}: no search space; pass param_space={{...}} to tune.Tuner (Tune hands it to the searcher)"
            )
        return self._inner

    def get_state(self) -> dict[str, Any]:
        settings = (
            "method",
            "options",
            "seed",
            "points",
            "rewards",
            "max_step",
            "step_key",
            "run_cap",
            "_metric",
            "_mode",
        )
        return {
            **super().get_state(),
            "settings": {k: getattr(self, k) for k in settings},
            "space": self.space,
            "constants": self.constants,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """The saved settings and space; constants from Tune's ``param_space`` when it gave them
        again (``Tuner.restore(..., param_space=...)`` refreshes object references), else saved."""
        for key, value in state["settings"].items():
            setattr(self, key, value)
        constants = self.constants if self.space is not None else state["constants"]
        self._bind(self._create(state["space"]), state["space"], constants)
        super().set_state(state)


def _notices(method: str, options: dict[str, Any], space: Space, trials: int | None) -> list[str]:
    """The study's notices (a model that never proposes within ``num_samples``), in Tune's words."""
    cells = space_size(space.subspace(list(space.grid_axes))) or 1
    if trials is None or method == "grid" or set(space.searchable) <= set(space.grid_axes):
        return []
    cls = searchers.searcher_class(method)
    per = f" per grid_search combination ({trials} over {cells})" if cells > 1 else ""
    lines = cls.notices(cls.Options.model_validate(options), -(-trials // cells), per)
    return [
        re.sub(r"set searcher: \{(\w+): N\}", r"pass \1=N", line)
        .replace("searcher.", "")
        .replace("run_cap", "num_samples")
        for line in lines
    ]


def _check_args(
    method: str,
    metric: Any,
    mode: Any,
    seed: Any,
    points: Any,
    rewards: Any,
    max_t: Any,
    time_attr: Any,
    options: dict[str, Any],
) -> None:
    """Every problem with the constructor's arguments, raised at once."""
    problems: list[Problem] = []
    if method not in searchers.OWN:  # tune (a Tune searcher) is already what a Tune script holds
        problems.append(Problem(f"{ARGS}.method", f"unknown method {method!r}; one of {', '.join(searchers.OWN)}"))
    else:
        try:
            searchers.searcher_class(method).Options.model_validate(options)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                where = ".".join(str(p) for p in err["loc"])
                why = "unknown option" if err["type"] == "extra_forbidden" else err["msg"]
                got = f", got {err['input']!r}" if err["type"] != "extra_forbidden" and "input" in err else ""
                problems.append(Problem(f"{ARGS}.{where}", f"{why} of method {method}{got}"))
    if metric is not None and not isinstance(metric, str):
        problems.append(Problem(f"{ARGS}.metric", f"must be one metric's name, got {metric!r}"))
    if mode is not None and mode not in ("min", "max"):
        problems.append(Problem(f"{ARGS}.mode", f"must be 'min' or 'max', got {mode!r}"))
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        problems.append(Problem(f"{ARGS}.seed", f"must be an integer >= 0, got {seed!r}"))
    if points is not None and (not isinstance(points, list) or not all(isinstance(p, Mapping) for p in points)):
        problems.append(Problem(f"{ARGS}.points_to_evaluate", "must be a list of configurations (dicts)"))
    if rewards is not None:
        if not isinstance(rewards, list) or not all(_finite(r) for r in rewards):
            problems.append(Problem(f"{ARGS}.evaluated_rewards", f"must be a list of finite numbers, got {rewards!r}"))
        elif not isinstance(points, list) or len(points) != len(rewards):
            n = len(points) if isinstance(points, list) else 0
            problems.append(
                Problem(
                    f"{ARGS}.evaluated_rewards",
                    f"has {len(rewards)} values and points_to_evaluate {n}; give one reward for each point",
                )
            )
    if max_t is not None and (not isinstance(max_t, int | float) or isinstance(max_t, bool) or not max_t > 0):
        problems.append(Problem(f"{ARGS}.max_t", f"must be a number > 0, got {max_t!r}"))
    if not isinstance(time_attr, str):
        problems.append(Problem(f"{ARGS}.time_attr", f"must be the name of a reported result, got {time_attr!r}"))
    if problems:
        raise ConfigError(problems)


def space_problems(method: str, space: Space) -> list[Problem]:
    """The parameters ``method`` cannot search, in Tune's words (grid axes are always finite)."""
    cls = searchers.searcher_class(method)
    rest = [k for k in space.searchable if method == "grid" or k not in space.grid_axes]
    problems = []
    for problem in cls.check_space(space.subspace(rest), PATH):
        param = space.params[problem.path.removeprefix(f"{PATH}.")]
        if method == "grid":
            why = (
                f"method grid needs a finite set of values, got {summary(param)}; use tune.choice, "
                "tune.grid_search, tune.randint or a q domain (tune.quniform), or another method"
            )
        else:
            why = problem.message
        problems.append(Problem(problem.path, why))
    return problems


def flat_point(point: Mapping[str, Any], space: Space, prefix: str = "") -> dict[str, Any]:
    """A (nested, possibly partial) configuration of ``points_to_evaluate`` by dotted name, the
    way the space nests; a key the space does not search is kept under its full name."""
    out: dict[str, Any] = {}
    for key, value in point.items():
        name = f"{prefix}{key}"
        nested = isinstance(value, Mapping) and any(p.startswith(f"{name}.") for p in space.params)
        out.update(flat_point(value, space, f"{name}.") if nested else {name: value})
    return out


def _without_constants(point: Mapping[str, Any], constants: Mapping[Any, Any]) -> dict[str, Any]:
    """``point`` less the values ``param_space`` fixes (a point may repeat them, as in Tune)."""
    out = {}
    for key, value in point.items():
        fixed = constants.get(key, _MISSING)
        if isinstance(value, Mapping) and isinstance(fixed, Mapping):
            inner = _without_constants(value, fixed)
            if inner:
                out[key] = inner
        elif fixed is _MISSING:
            out[key] = value
    return out


def point_problems(points: list[dict[str, Any]], space: Space, *, full: bool = False) -> list[Problem]:
    """Each point's parameters: searched by this space, values within their ranges; with ``full``
    (the point has its reward, so it never runs) every searched parameter given."""
    problems = []
    for i, point in enumerate(points):
        flat = flat_point(point, space)
        for name, why in space.problems(flat).items():
            problems.append(Problem(f"{ARGS}.points_to_evaluate[{i}].{name}", why))
        missing = [name for name in space.searchable if name not in flat]
        if full and missing:
            problems.append(
                Problem(
                    f"{ARGS}.points_to_evaluate[{i}]",
                    f"lacks {', '.join(missing)}; a point with an evaluated reward gives every searched parameter",
                )
            )
    return problems


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
