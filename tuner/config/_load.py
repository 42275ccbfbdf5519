"""Study file -> :class:`Study`: every problem found at once, before anything runs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from tuner.config._direction import better, minimised, sign
from tuner.config._method import check_method, method_notices
from tuner.config._population import population_problems
from tuner.config._program import (
    PROGRAM_KEYS,
    RUNNER,
    program_problems,
    program_settings,
    resolve_program,
    runs_program,
)
from tuner.config._schema import IGNORED_KEYS, Hyperband, Metric, Resources, StudySpec, pydantic_problems
from tuner.config._stopper import check_stopper
from tuner.config._trainable import (
    allowed_modules,
    check_trainable,
    checked_import,
    declared_resources,
    import_named,
    import_trainable,
    split,
)
from tuner.config._wandb import folder_name, wandb_keys
from tuner.config._yaml import parse_yaml, read_yaml
from tuner.errors import ConfigError, Problem
from tuner.space import Space, parse_parameters, space_size


@dataclass(frozen=True)
class Study:
    """A validated study: the parsed spec, its search space, and where it came from."""

    spec: StudySpec
    space: Space
    name: str  # the results folder's name (a sweep's display name is spec.name: see title)
    trainable: str
    source: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    notices: tuple[str, ...] = ()
    allowed: tuple[str, ...] = ()  # module prefixes trusted to run (the trainable's among them)

    @property
    def title(self) -> str:
        """The study's name as the file gives it (W&B's display name), or its folder name."""
        return self.spec.name or self.name

    @property
    def metric(self) -> str | None:
        """The metric the study ranks trials by; ``None`` for a study with no ``metric`` (grid or
        random: every reported metric is recorded, no trial is best)."""
        primary = self.spec.primary
        return None if primary is None else primary.name

    @property
    def maximize(self) -> bool:
        primary = self.spec.primary
        return primary is not None and primary.goal == "maximize"

    @property
    def objectives(self) -> list[tuple[str, bool]]:
        """``(name, maximize)`` of every metric; one for most studies, several for a multi-objective one."""
        return [(m.name, m.goal == "maximize") for m in self.spec.objectives]

    @property
    def sign(self) -> float:
        """What turns the metric into the value searchers minimise: ``-1`` for ``goal: maximize``."""
        return sign(self.maximize)

    def minimised(self, value: float) -> float:
        return minimised(value, self.maximize)

    def better(self, a: float, b: float) -> bool:
        """Whether metric value ``a`` is strictly better than ``b``."""
        return better(a, b, self.maximize)

    @property
    def env(self) -> dict[str, str]:
        """Environment variables every trial process gets: a W&B program's settings when the
        study's trial is the file's ``program`` (:mod:`tuner.integrations.wandb`), else none."""
        return program_settings(self.raw, self.name) if self.trainable == RUNNER else {}

    @property
    def modules(self) -> list[str]:
        """What the workers import: the trainable's module and the modules trusted to run."""
        return [m for m in (split(self.trainable)[0], *self.allowed) if m != "__main__"]

    def derive(self, **changes: Any) -> Study:
        """This study with some keys of its file replaced (``name=``, ``run_cap=``, ``method=``,
        ``parameters=``...; ``None`` puts a key back to its default): the studies tuner makes from
        one already validated (``train``'s, ``confirm``'s), not validated again. ``raw`` follows,
        so the results folder records what ran."""
        raw = dict(self.raw)
        update: dict[str, Any] = {}
        for key, value in changes.items():
            field = StudySpec.model_fields.get(key)
            if field is None:
                raise TypeError(f"derive: {key!r} is not a key of a study file")
            if value is None:
                raw.pop(key, None)
                update[key] = field.get_default(call_default_factory=True)
            else:
                raw[key] = value.model_dump(exclude_none=True) if isinstance(value, BaseModel) else value
                update[key] = value
        space = self.space
        if "parameters" in changes:
            space, problems = parse_parameters(changes["parameters"])
            if problems:
                raise ConfigError(problems)
        spec = self.spec.model_copy(update=update)
        return Study(
            spec=spec,
            space=space,
            name=folder_name(spec.name) if "name" in changes and spec.name else self.name,
            trainable=spec.trainable or self.trainable,
            source=self.source,
            raw=raw,
            allowed=self.allowed,
        )

    @property
    def exhaustive(self) -> bool:
        """Whether the study runs a finite grid: method grid, or nothing searched but grid axes."""
        searchable = self.space.searchable
        return self.spec.method == "grid" or not searchable or set(searchable) == set(self.space.grid_axes)

    def trial_count(self) -> int | None:
        """Trials the study starts at most: ``run_cap``, capped by the grid's size when exhaustive
        (counted exactly, never enumerated); ``None`` when only a stop ends it (Ctrl-C, ``time_limit``...)."""
        if not self.exhaustive:
            return self.spec.run_cap
        size = space_size(self.space.subspace(list(self.space.searchable))) or 1
        return size if self.spec.run_cap is None else min(size, self.spec.run_cap)

    def concurrency(self, places: int) -> int:
        """Trials at once, given how many workers of this study's size the cluster can place:
        the same rule for ``plan`` and ``run``."""
        limits = [places // self.spec.resources.workers, self.spec.max_concurrent, self.trial_count()]
        return max(1, min(x for x in limits if x is not None))


def load_study(
    path: str | os.PathLike[str] | None = None,
    *,
    text: str | None = None,
    trainable: str | None = None,
    run_cap: int | None = None,
    name: str | None = None,
    storage: str | None = None,
    backend: str | None = None,
    time_limit: str | None = None,
    max_concurrent: int | None = None,
    check_import: bool = True,
    allow_modules: Sequence[str] = (),
    source: str | None = None,
) -> Study:
    """Read, validate and freeze a study file (or ``text``; ``source`` names it in messages);
    raise :class:`ConfigError`."""
    source = source or (str(path) if path is not None else "<string>")
    raw = read_yaml(Path(path)) if text is None and path is not None else parse_yaml(text or "", source)
    data = dict(raw)
    program = runs_program(data, trainable)  # the file's W&B program is the trial
    used = PROGRAM_KEYS if program else ()
    notices = [
        f"{source}: ignoring W&B key '{k}'" for k in IGNORED_KEYS if k not in used and data.pop(k, None) is not None
    ]
    more, problems = wandb_keys(data, source)
    notices += more
    if isinstance(data.get("metric"), list) and data.get("early_terminate") and data["metric"]:
        first = data["metric"][0].get("name") if isinstance(data["metric"][0], dict) else None
        notices.append(f"{source}: several metrics: early_terminate prunes on the first, {first}, only")
    overrides = {"trainable": trainable, "run_cap": run_cap, "name": name, "storage": storage, "backend": backend}
    overrides |= {"time_limit": time_limit, "max_concurrent": max_concurrent}
    data.update({k: v for k, v in overrides.items() if v is not None})

    if program:
        problems += resolve_program(data, Path(path) if path is not None else None, check=check_import)
    spec: StudySpec | None = None
    try:
        spec = StudySpec.model_validate(
            {**{k: v for k, v in data.items() if k not in PROGRAM_KEYS}, **({"trainable": RUNNER} if program else {})},
            context={"check_import": check_import},  # the environment's checks: not for a study read for results
        )
    except ValidationError as exc:
        said = {p.path for p in problems}  # a W&B key's own reason for a missing field says it better
        problems += [p for p in pydantic_problems(exc) if not (p.path in said and p.message == "is required")]
    space_problems: list[Problem]
    if data.get("parameters") == {} and data.get("trainable_api") == "tune":
        space, space_problems = Space({}), []  # as Ray Tune runs a trainable with an empty param_space
    else:
        space, space_problems = parse_parameters(data.get("parameters"))
    if isinstance(data.get("parameters"), dict):  # otherwise the schema has said so already
        problems += space_problems

    if spec is not None:
        if not space_problems:
            problems += check_method(spec.method, spec.searcher, space, len(spec.objectives))
        if spec.trainable is None:
            problems.append(Problem("trainable", "is required (in the YAML or as --trainable), or a W&B program"))
        elif program:
            problems += program_problems(spec)
        elif check_import:
            names: list[str | None] = [m.name for m in spec.objectives]
            for name in names or [None]:  # no metric: the trainable alone
                allowed = allowed_modules(allow_modules)
                problems += check_trainable(spec.trainable, name, allowed, spec.backend, spec.trainable_api)
        if check_import and spec.stopper is not None:
            problems += check_stopper(spec.stopper, allowed_modules(allow_modules))
        if check_import and spec.method == "tune" and isinstance(spec.searcher.get("search_alg"), str):
            allowed = allowed_modules(allow_modules)
            problems += checked_import("searcher.search_alg", spec.searcher["search_alg"], allowed, import_named)[1]
        if check_import:
            for i, callback in enumerate(spec.tracking.callbacks):
                where = f"tracking.callbacks[{i}]"
                problems += checked_import(where, callback, allowed_modules(allow_modules), import_named)[1]
        if not space_problems:
            problems += _points(spec.points_to_evaluate, space)
            problems += population_problems(spec, space)
        for i, folder in enumerate(spec.warm_starts):
            where = "warm_start" if isinstance(spec.warm_start, str) else f"warm_start[{i}]"
            if not (Path(folder) / "trials.parquet").is_file():
                problems.append(Problem(where, f"no study results at {folder!r} (a results/<name> folder)"))
        problems += _endless(spec, space)
        problems += _needs_metric(spec)
        if spec.name is not None and not folder_name(spec.name):
            problems.append(Problem("name", f"needs a letter or digit to name the results folder, got {spec.name!r}"))
    if problems:
        raise ConfigError(problems, source=source)
    assert spec is not None and spec.trainable is not None
    if not spec.warm_starts:  # a warm start's trials count towards the start-up draws
        notices += [f"{source}: {n}" for n in method_notices(spec.method, spec.searcher, space, spec.run_cap)]
    if _uncapped(spec, space):
        notices.append(f"{source}: {until_stopped(spec)}")
    et = spec.early_terminate
    if isinstance(et, Hyperband) and not et.bands():  # W&B runs such a block too, stopping nothing
        notices.append(
            f"{source}: early_terminate: max_iter ({et.max_iter}) with eta: {et.eta:g}, s: {et.s} places no band "
            "(max_iter / eta < 1): no trial is stopped early"
        )
    if check_import and not program and spec.backend != "simulated":
        spec = _with_declared_resources(spec, data, source, notices)
    if spec.backend == "simulated" and "resources" in data:
        notices.append(f"{source}: backend simulated: resources are not used (a trial is a function call)")
    study_name = folder_name(spec.name or (Path(path).stem if path is not None else "")) or "study"
    if spec.name and study_name != spec.name:
        notices.append(f"{source}: name {spec.name!r} is kept as the study's title; its results folder is {study_name}")
    assert spec.trainable is not None
    return Study(
        spec=spec,
        space=space,
        name=study_name,
        trainable=spec.trainable,
        source=Path(path) if path is not None else None,
        raw=data,
        notices=tuple(notices),
        allowed=allowed_modules(allow_modules),
    )


def _uncapped(spec: StudySpec, space: Space) -> bool:
    """Whether nothing but a stop ends the study: no ``run_cap`` and a space it does not enumerate."""
    finite = spec.method == "grid" or not space.searchable or set(space.searchable) == set(space.grid_axes)
    return spec.run_cap is None and not finite


def until_stopped(spec: StudySpec) -> str:
    """What ends a study with no ``run_cap`` (as W&B runs a sweep without one: until it is stopped)."""
    ends = ["Ctrl-C", *(["time_limit"] if spec.time_limit is not None else [])]
    ends += ["metric.target"] if isinstance(spec.metric, Metric) and spec.metric.target is not None else []
    return f"no run_cap: the study runs until stopped ({', '.join(ends)}; or the searcher running out)"


def _with_declared_resources(spec: StudySpec, data: dict[str, Any], source: str, notices: list[str]) -> StudySpec:
    """``spec`` with the resources its trainable declares through Ray Tune's ``tune.with_resources``
    where the study gives none (said in a notice, and written into ``data``, the study as saved,
    so that a resume runs with the same); a notice where they are not used."""
    assert spec.trainable is not None
    declared = declared_resources(import_trainable(spec.trainable))
    if declared is None:
        return spec
    where = f"{source}: trainable: its tune.with_resources"
    if isinstance(declared, str):
        notices.append(f"{where} is not used ({declared}); a trial's resources are the study's resources block")
        return spec
    if "resources" in data:
        if (spec.resources.cpu, spec.resources.gpu) != (declared["cpus"], declared["gpus"]):
            notices.append(f"{where} ({_shown(declared)}) is not used: the study's resources block says a trial's")
        return spec
    try:
        resources = Resources(cpus=declared["cpus"], gpus=declared["gpus"])
    except ValidationError as exc:
        why = str(exc.errors()[0].get("msg", exc)).removeprefix("Value error, ")
        notices.append(f"{where} ({_shown(declared)}) is not used: {why}")
        return spec
    notices.append(f"{where}: {_shown(declared)} a trial (no resources block in the study)")
    data["resources"] = {"cpus": declared["cpus"], "gpus": declared["gpus"]}
    return spec.model_copy(update={"resources": resources})


def _shown(resources: dict[str, float]) -> str:
    return f"{resources['cpus']:g} CPU, {resources['gpus']:g} GPU"


def _endless(spec: StudySpec, space: Space) -> list[Problem]:
    """On a virtual clock nobody presses Ctrl-C: an uncapped simulated study needs an end and a width."""
    if spec.backend != "simulated" or not _uncapped(spec, space) or (spec.time_limit and spec.max_concurrent):
        return []
    return [
        Problem(
            "run_cap",
            "backend simulated needs run_cap, or time_limit and max_concurrent: on its virtual clock "
            "an uncapped study would never end",
        )
    ]


def _needs_metric(spec: StudySpec) -> list[Problem]:
    """Without ``metric`` (as W&B allows for grid and random), what ranks or prunes trials is refused."""
    if spec.metric is not None:
        return []
    rule = "is required for {} (as in W&B: only grid and random run without one)"
    needs = [(spec.method not in ("grid", "random"), f"method {spec.method}")]
    needs += [(spec.early_terminate is not None, "early_terminate"), (spec.select is not None, "select")]
    needs += [(bool(spec.warm_starts), "warm_start")]
    return [Problem("metric", rule.format(what)) for need, what in needs if need][:1]


def _points(points: list[dict[str, Any]], space: Space) -> list[Problem]:
    """Each point of ``points_to_evaluate``: parameters of the study (nested blocks as in
    ``parameters``), values within their ranges, none inactive under the point's own values."""
    from tuner.space import flatten

    problems = []
    for i, point in enumerate(points):
        flat = flatten(point)
        problems += [Problem(f"points_to_evaluate[{i}].{name}", why) for name, why in space.problems(flat).items()]
    return problems
