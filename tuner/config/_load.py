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
from tuner.config._schema import IGNORED_KEYS, StudySpec, pydantic_problems
from tuner.config._trainable import allowed_modules, check_trainable, split
from tuner.config._yaml import parse_yaml, read_yaml
from tuner.errors import ConfigError, Problem
from tuner.space import Space, parse_parameters, space_size


@dataclass(frozen=True)
class Study:
    """A validated study: the parsed spec, its search space, and where it came from."""

    spec: StudySpec
    space: Space
    name: str
    trainable: str
    source: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    notices: tuple[str, ...] = ()
    allowed: tuple[str, ...] = ()  # module prefixes trusted to run (the trainable's among them)

    @property
    def metric(self) -> str:
        return self.spec.primary.name

    @property
    def maximize(self) -> bool:
        return self.spec.primary.goal == "maximize"

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
    def modules(self) -> list[str]:
        """What the workers import: the trainable's module and the modules trusted to run."""
        return [split(self.trainable)[0], *self.allowed]

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
            name=spec.name or self.name,
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
        (counted exactly, never enumerated); ``None`` when only ``time_limit`` ends it."""
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
    check_import: bool = True,
    allow_modules: Sequence[str] = (),
) -> Study:
    """Read, validate and freeze a study file (or ``text``); raise :class:`ConfigError`."""
    source = str(path) if path is not None else "<string>"
    raw = read_yaml(Path(path)) if text is None and path is not None else parse_yaml(text or "", source)
    data = dict(raw)
    notices = [f"{source}: ignoring W&B key '{k}'" for k in IGNORED_KEYS if data.pop(k, None) is not None]
    if isinstance(data.get("metric"), list) and data.get("early_terminate") and data["metric"]:
        first = data["metric"][0].get("name") if isinstance(data["metric"][0], dict) else None
        notices.append(f"{source}: several metrics: early_terminate prunes on the first, {first}, only")
    overrides = {"trainable": trainable, "run_cap": run_cap, "name": name, "storage": storage, "backend": backend}
    data.update({k: v for k, v in overrides.items() if v is not None})

    problems: list[Problem] = []
    spec: StudySpec | None = None
    try:
        spec = StudySpec.model_validate(data)
    except ValidationError as exc:
        problems += pydantic_problems(exc)
    space, space_problems = parse_parameters(data.get("parameters"))
    if isinstance(data.get("parameters"), dict):  # otherwise the schema has said so already
        problems += space_problems

    if spec is not None:
        if not space_problems:
            problems += check_method(spec.method, spec.searcher, space, len(spec.objectives))
        if spec.trainable is None:
            problems.append(Problem("trainable", "is required (in the YAML or as --trainable)"))
        elif check_import:
            for metric in spec.objectives:
                allowed = allowed_modules(allow_modules)
                problems += check_trainable(spec.trainable, metric.name, allowed, spec.backend, spec.trainable_api)
        if not space_problems:
            problems += _points(spec.points_to_evaluate, space)
            problems += population_problems(spec, space)
        for i, folder in enumerate(spec.warm_starts):
            where = "warm_start" if isinstance(spec.warm_start, str) else f"warm_start[{i}]"
            if not (Path(folder) / "trials.parquet").is_file():
                problems.append(Problem(where, f"no study results at {folder!r} (a results/<name> folder)"))
        finite = spec.method == "grid" or not space.searchable or set(space.searchable) == set(space.grid_axes)
        if spec.run_cap is None and spec.time_limit is None and not finite:
            problems.append(
                Problem("run_cap", f"is required for method {spec.method} (or set time_limit, or pass --run-cap N)")
            )
    if problems:
        raise ConfigError(problems, source=source)
    assert spec is not None and spec.trainable is not None
    if not spec.warm_starts:  # a warm start's trials count towards the start-up draws
        notices += [f"{source}: {n}" for n in method_notices(spec.method, spec.searcher, space, spec.run_cap)]
    if spec.backend == "simulated" and "resources" in data:
        notices.append(f"{source}: backend simulated: resources are not used (a trial is a function call)")
    study_name = spec.name or (Path(path).stem if path is not None else "study")
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


def _points(points: list[dict[str, Any]], space: Space) -> list[Problem]:
    """Each point of ``points_to_evaluate``: parameters of the study (nested blocks as in
    ``parameters``), values within their ranges, none inactive under the point's own values."""
    from tuner.space import flatten

    problems = []
    for i, point in enumerate(points):
        flat = flatten(point)
        problems += [Problem(f"points_to_evaluate[{i}].{name}", why) for name, why in space.problems(flat).items()]
    return problems
