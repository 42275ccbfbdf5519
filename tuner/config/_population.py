"""``early_terminate: {type: pbt}`` and ``{type: pb2}``: population-based training's options.

The mutations are a ``parameters:`` block of their own (the same vocabulary), checked against
the study's parameters once both are parsed (:func:`population_problems`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tuner.errors import Problem

if TYPE_CHECKING:
    from tuner.space import Parameter, Space


class _Population(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    perturbation_interval: int = Field(default=5, ge=1)  # in the trial's own steps
    quantile_fraction: float = Field(default=0.25, gt=0, le=0.5)
    mutations: dict[str, Any] | None = None  # a parameters: block; None: every numeric parameter
    max_t: int | None = Field(default=None, ge=1)  # the step at which a member is finished

    def mutable(self, space: Space) -> dict[str, Parameter]:
        """The parameters that change during training, with the distribution they are drawn from."""
        from tuner.space import Float, Int, Normal, parse_parameters

        if self.mutations is not None:
            parsed, _ = parse_parameters(self.mutations, "early_terminate.mutations")
            return dict(parsed.params)
        kinds = (Float, Int) if isinstance(self, Pb2) else (Float, Int, Normal)
        return {k: p for k, p in space.searchable.items() if isinstance(p, kinds)}


class Pbt(_Population):
    """Population-based training (Jaderberg et al. 2017), as Ray's ``PopulationBasedTraining``."""

    type: Literal["pbt"]
    resample_probability: float = Field(default=0.25, ge=0, le=1)
    perturbation_factors: tuple[float, ...] = (0.8, 1.2)

    @field_validator("perturbation_factors", mode="before")
    @classmethod
    def _factors(cls, v: Any) -> Any:
        if not isinstance(v, list | tuple) or not v:
            raise ValueError(f"must be a non-empty list of positive numbers such as [0.8, 1.2], got {v!r}")
        if not all(isinstance(x, int | float) and not isinstance(x, bool) and x > 0 for x in v):
            raise ValueError(f"must be positive numbers, got {v!r}")
        return tuple(float(x) for x in v)


class Pb2(_Population):
    """Population-based bandits (Parker-Holder et al. 2020): explore by a GP-bandit, as Ray's ``PB2``."""

    type: Literal["pb2"]


Population = Pbt | Pb2


def population_problems(spec: Any, space: Space) -> list[Problem]:
    """What is wrong with a population's mutations given the study's parameters (none for other schedulers)."""
    from tuner.space import Constant, Float, Int, parse_parameters

    et = spec.early_terminate
    if not isinstance(et, Pbt | Pb2):
        return []
    where = "early_terminate.mutations"
    problems: list[Problem] = []
    if et.mutations is not None:
        parsed, problems = parse_parameters(et.mutations, where)
        if problems:
            return problems
        params = dict(parsed.params)
        for name, param in params.items():
            if name not in space.params:
                known = ", ".join(space.params) or "none"
                problems.append(Problem(f"{where}.{name}", f"is not a parameter of the study (parameters: {known})"))
            elif isinstance(param, Constant):
                problems.append(Problem(f"{where}.{name}", "a constant cannot mutate: give a range or values"))
    else:
        params = et.mutable(space)
    if isinstance(et, Pb2):
        for name, param in params.items():
            if not isinstance(param, Float | Int):
                problems.append(
                    Problem(f"{where}.{name}", "pb2 mutates bounded numeric parameters only (a range with min and max)")
                )
    if not params and not problems:
        problems.append(
            Problem("early_terminate", f"{et.type} has no parameter to mutate: give mutations or a numeric parameter")
        )
    if spec.run_cap is not None and spec.run_cap < 2:
        problems.append(Problem("run_cap", f"{et.type} needs a population of at least 2 members, got {spec.run_cap}"))
    return problems
