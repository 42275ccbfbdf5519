"""``stop:``: when a trial has done enough, as Ray Tune's ``RunConfig(stop={...})`` says it.

A mapping of criteria; a trial ends ``finished`` at the first report that meets any of them:

- ``training_iteration`` (or ``step``, the same): the step at which every trial is finished, as
  ``max_t`` is with a scheduler (the smaller of the two counts);
- ``time_total_s``: seconds (or a duration, ``10m``) the trial has trained: since its attempt
  started, or a Ray Tune trainable's own ``time_total_s`` (which a restored trial carries on);
- any reported metric: a number ``x`` is reached when the metric is ``>= x`` (Ray Tune's rule);
  ``{ge: x}`` says the same and ``{le: x}`` is reached at or below ``x`` (for a loss);
- ``done: true``: what a report with ``done`` does anyway (accepted as Ray Tune scripts write it).

Pure: no Ray; the engine's judge and backend tune's stopper both ask :meth:`Stop.reached`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, field_validator, model_validator

STEP_KEYS = ("training_iteration", "step")


def _limit(value: Any) -> tuple[str, float]:
    """A metric's criterion: ``("ge", x)`` or ``("le", x)``."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"must be a number (stop at or above it) or {{le: x}} / {{ge: x}}, got {value!r}")
    if isinstance(value, numbers.Real):
        op, x = "ge", value
    elif isinstance(value, Mapping) and len(value) == 1 and next(iter(value)) in ("ge", "le"):
        op, x = next(iter(value.items()))
        if isinstance(x, bool) or not isinstance(x, numbers.Real):
            raise ValueError(f"{op} must be a number, got {x!r}")
    else:
        raise ValueError(f"must be a number (stop at or above it) or {{le: x}} / {{ge: x}}, got {value!r}")
    if not math.isfinite(float(x)):
        raise ValueError(f"must be a finite number, got {x!r}")
    return str(op), float(x)


def _as_limit(value: Any) -> Any:  # a criterion already parsed (a saved spec read again) stays as it is
    if isinstance(value, tuple) and len(value) == 2 and value[0] in ("ge", "le"):
        return value
    return _limit(value)


Limit = Annotated[tuple[str, float], PlainValidator(_as_limit)]


class Stop(BaseModel):
    """A study's ``stop:`` block, parsed (see the module's docstring)."""

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)
    __pydantic_extra__: dict[str, Limit] = Field(init=False)

    training_iteration: int | None = Field(default=None, ge=1, strict=True)
    step: int | None = Field(default=None, ge=1, strict=True)
    time_total_s: float | None = None
    done: Literal[True] | None = None

    @field_validator("training_iteration", "step", mode="before")
    @classmethod
    def _whole(cls, v: Any) -> Any:
        return int(v) if isinstance(v, float) and v.is_integer() else v

    @field_validator("time_total_s", mode="before")
    @classmethod
    def _seconds(cls, v: Any) -> float | None:
        from tuner.config._schema import parse_duration

        return None if v is None else parse_duration(v)

    @model_validator(mode="after")
    def _one_step(self) -> Stop:
        if self.training_iteration is not None and self.step is not None:
            raise ValueError("give training_iteration or step, not both (they mean the same)")
        if not self.limits and self.steps is None and self.time_total_s is None and self.done is None:
            raise ValueError("needs at least one criterion (training_iteration, time_total_s or a metric)")
        return self

    @property
    def steps(self) -> int | None:
        """The step at which every trial is finished, if given."""
        return self.training_iteration if self.training_iteration is not None else self.step

    @property
    def limits(self) -> dict[str, tuple[str, float]]:
        """Metric -> ``(op, x)``."""
        return dict(self.__pydantic_extra__ or {})

    def reached(self, step: float, elapsed: float, metrics: Mapping[str, Any]) -> str | None:
        """Which criterion a report meets (``"val_loss <= 0.05"``), ``None`` when none does. The step
        budget is the backend's to end (a trial is launched with it); it is said here too."""
        if self.steps is not None and step >= self.steps:
            return f"step {self.steps}"
        seconds = metrics.get("time_total_s", elapsed)  # a Ray Tune trainable's own count wins
        if self.time_total_s is not None and isinstance(seconds, numbers.Real) and float(seconds) >= self.time_total_s:
            return f"time_total_s {self.time_total_s:g}"
        for name, (op, x) in self.limits.items():
            value = metrics.get(name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(float(value)):
                continue
            if (float(value) >= x) if op == "ge" else (float(value) <= x):
                return f"{name} {'>=' if op == 'ge' else '<='} {x:g}"
        return None

    def unreported(
        self, trial_id: str, step: float, metrics: Mapping[str, Any], said: set[str], shown: Iterable[str] | None = None
    ) -> list[str]:
        """A line for each criterion's metric this report lacks that ``said`` does not hold yet
        (then added to it): a misspelt name would never stop anything. ``shown``: the names the
        line lists as reported (default: the report's)."""
        lines = []
        for name in self.limits:
            if name in metrics or name in said:
                continue
            said.add(name)
            reported = ", ".join(sorted(metrics if shown is None else shown)) or "nothing"
            lines.append(
                f"stop.{name}: {trial_id} reported no {name} at step {step:g} (reported: {reported}); "
                "a trial stops on it only at reports that carry it"
            )
        return lines
