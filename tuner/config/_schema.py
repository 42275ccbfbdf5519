"""The study file's schema: parsed once, validated once, then frozen."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    field_validator,
    model_validator,
)

from tuner.config._bands import wandb_bands
from tuner.config._population import Pb2, Pbt
from tuner.config._stop import Stop
from tuner.config._tracking import TrackingOptions
from tuner.errors import Problem

if TYPE_CHECKING:
    from tuner.status import Action


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class Metric(_Strict):
    name: str = Field(min_length=1)
    goal: Literal["minimize", "maximize"] = "minimize"
    target: float | None = None  # W&B: stop starting trials once a finished trial reaches it


class Select(_Strict):
    """With several objectives, which Pareto-optimal trial ``best`` picks: the best on ``metric``
    among those within ``limits`` (an upper bound for a minimised objective, a lower bound for a
    maximised one)."""

    metric: str = Field(min_length=1)
    limits: dict[str, float] = Field(default_factory=dict)


class Asha(_Strict):
    """Ray's ASHAScheduler over the trainable's report ``step``."""

    type: Literal["asha"]
    max_t: int | None = Field(default=None, ge=1)
    grace_period: int = Field(default=1, ge=1)
    reduction_factor: float = Field(default=4.0, gt=1)
    brackets: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _budget(self) -> Asha:
        if self.max_t is not None and self.max_t < self.grace_period:
            raise ValueError(f"max_t ({self.max_t}) must be >= grace_period ({self.grace_period})")
        return self


class Hyperband(_Strict):
    """W&B's hyperband stopping rule (see :func:`tuner.config.wandb_bands` for where its bands fall).

    A trial is judged by how many times it has reported the metric, as W&B counts ``wandb.log``
    calls; no trial is stopped at ``max_iter``. ``s`` without ``max_iter`` is not used, and
    ``min_iter`` with ``max_iter`` and ``s`` is not used either (W&B's rule); ``max_iter`` without
    ``s`` places bands down to ``min_iter``.
    """

    type: Literal["hyperband"]
    min_iter: int = Field(default=1, ge=1)
    max_iter: int | None = Field(default=None, ge=1)
    eta: float = Field(default=3.0, gt=1)
    s: int | None = Field(default=None, ge=1)
    strict: bool = True  # W&B's default: judge a trial by its value at the band, not its best so far

    @field_validator("s", "min_iter", "max_iter", mode="before")
    @classmethod
    def _whole(cls, v: Any) -> Any:
        """W&B types ``s`` as a number and checks ``min_iter``/``max_iter`` as JSON schema integers:
        a whole number written as a float (``2.0``) is read as the integer it is."""
        return int(v) if isinstance(v, float) and v.is_integer() else v

    def bands(self) -> list[int]:
        """The report counts at which a trial is judged (the first 100 when they go on forever)."""
        return wandb_bands(self.min_iter, self.max_iter, self.eta, self.s)

    @model_validator(mode="after")
    def _budget(self) -> Hyperband:
        if self.max_iter is not None and self.max_iter < self.min_iter:
            raise ValueError(f"max_iter ({self.max_iter}) must be >= min_iter ({self.min_iter})")
        return self


class Median(_Strict):
    """Ray's median stopping rule."""

    type: Literal["median"]
    grace_period: int = Field(default=1, ge=0)
    min_samples_required: int = Field(default=3, ge=1)


def _gpu_count(value: Any) -> float | Literal["auto"] | None:
    """A number of GPUs (0 or more) or ``auto``: one error naming both forms, not one per form."""
    if value is None or value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"must be a number of GPUs >= 0 or auto, got {value!r}")
    return float(value)


GpuCount = Annotated[float | Literal["auto"] | None, PlainValidator(_gpu_count)]


class Resources(_Strict):
    """Per trial: ``workers`` processes, each with its CPUs and GPUs, and how the model is spread
    over them (``strategy``: ddp, fsdp or pipeline; see :mod:`tuner.strategies`).

    ``cpus``/``gpus`` are short for ``cpus_per_worker``/``gpus_per_worker``. ``gpus: auto`` packs
    as many single-worker trials onto each GPU as their measured memory allows (see
    :mod:`tuner.engine` and docs/gpus.md); :attr:`gpu` is then 0 and :attr:`auto_gpus` true.
    """

    workers: int = Field(default=1, ge=1)
    strategy: Literal["ddp", "fsdp", "pipeline"] = "ddp"
    stages: int | None = Field(default=None, ge=2)  # pipeline: one per worker
    microbatches: int = Field(default=4, ge=1)  # pipeline
    schedule: Literal["gpipe", "1f1b"] = "gpipe"  # pipeline
    mixed_precision: Literal["none", "bf16", "fp16"] = "none"  # fsdp
    cpu_offload: bool = False  # fsdp
    full_checkpoints: bool = False  # fsdp: gather the whole state on rank 0 rather than write shards
    cpus_per_worker: float | None = Field(default=None, gt=0)
    gpus_per_worker: GpuCount = None
    cpus: float | None = Field(default=None, gt=0)
    gpus: GpuCount = None

    @model_validator(mode="after")
    def _aliases(self) -> Resources:
        if self.cpus is not None and self.cpus_per_worker is not None:
            raise ValueError("give cpus or cpus_per_worker, not both (they mean the same)")
        if self.gpus is not None and self.gpus_per_worker is not None:
            raise ValueError("give gpus or gpus_per_worker, not both (they mean the same)")
        gpus = self.gpus_per_worker if self.gpus_per_worker is not None else self.gpus
        if gpus == "auto":
            key = "gpus_per_worker" if self.gpus_per_worker is not None else "gpus"
            if self.workers > 1:
                raise ValueError(
                    f"{key}: auto packs trials of one worker onto GPUs; with workers: {self.workers} "
                    "give a number of GPUs per worker"
                )
        elif gpus is not None and gpus > 1 and gpus != int(gpus):
            raise ValueError(f"more than one GPU per worker must be a whole number, got {gpus}")
        if self.strategy == "pipeline":
            stages = self.stages or self.workers
            if stages < 2:
                raise ValueError("a pipeline needs at least 2 stages: set workers (and stages) to 2 or more")
            if self.workers != stages:
                raise ValueError(
                    f"a pipeline runs one stage per worker: workers ({self.workers}) must equal stages ({stages}); "
                    "pipeline stages x data-parallel replicas is not supported yet"
                )
        else:
            if self.stages is not None:
                raise ValueError(f"stages is for strategy: pipeline, not {self.strategy}")
            if self.schedule != "gpipe" or self.microbatches != 4:
                raise ValueError(f"microbatches and schedule are for strategy: pipeline, not {self.strategy}")
        if self.strategy != "fsdp" and (self.mixed_precision != "none" or self.cpu_offload or self.full_checkpoints):
            raise ValueError(
                f"mixed_precision, cpu_offload and full_checkpoints are for strategy: fsdp, not {self.strategy}"
            )
        return self

    def strategy_options(self) -> Any:
        """What every rank needs to know of the strategy (tuner.strategies.StrategyOptions)."""
        from tuner.strategies import StrategyOptions

        return StrategyOptions(
            self.strategy,
            self.stages or self.workers,
            self.microbatches,
            self.schedule,
            self.mixed_precision,
            self.cpu_offload,
            self.full_checkpoints,
        )

    @property
    def cpu(self) -> float:
        """CPUs per worker."""
        return self.cpus_per_worker if self.cpus_per_worker is not None else self.cpus or 1.0

    @property
    def gpu(self) -> float:
        """GPUs per worker as given; 0 with ``auto`` (the backend decides each trial's share)."""
        gpus = self.gpus_per_worker if self.gpus_per_worker is not None else self.gpus
        return 0.0 if gpus is None or gpus == "auto" else gpus

    @property
    def auto_gpus(self) -> bool:
        """``gpus: auto``: trials share each GPU as their measured memory allows."""
        return "auto" in (self.gpus, self.gpus_per_worker)


class CheckpointPolicy(_Strict):
    """Where rank 0 writes checkpoints, and which are kept.

    ``path``: a local path, a path every node shares, or an object-store URI (``s3://...``);
    default ``<results folder>/checkpoints``. ``keep``: the last N of each trial;
    ``keep_best``: also the one at each trial's best value of the metric.
    """

    path: str | None = Field(default=None, min_length=1)
    keep: int = Field(default=1, ge=1)
    keep_best: bool = True


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")


def parse_duration(value: Any) -> float:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"2h"`` or ``"1d"``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2) or "s"]
    else:
        raise ValueError(f"must be seconds or a duration such as '90s', '15m', '2h'; got {value!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"must be a positive duration, got {value!r}")
    return seconds


class StudySpec(_Strict):
    """Everything in a study file but ``parameters``, which :mod:`tuner.space` parses."""

    name: str | None = Field(default=None, min_length=1)  # W&B's display name; the folder is derived from it
    description: str | None = None
    trainable: str | None = None
    # auto: told by the signature, one argument (config) or none for Ray Tune's API, (config, trial) for ours
    trainable_api: Literal["auto", "tuner", "tune"] = "auto"
    # ray: tuner's engine on Ray; tune: Ray Tune's own Tuner; simulated: f(config, step) on a virtual clock, no Ray
    backend: Literal["ray", "tune", "simulated"] = "ray"
    metric: Metric | list[Metric] | None = (
        None  # several: a multi-objective study; none: grid or random, nothing ranked
    )
    select: Select | None = None
    method: str
    searcher: dict[str, Any] = Field(default_factory=dict)
    parameters: dict[str, Any]
    early_terminate: Annotated[Asha | Hyperband | Median | Pbt | Pb2, Field(discriminator="type")] | None = None
    stop: Stop | None = None  # when a trial has done enough (Ray Tune's RunConfig(stop=...)), see _stop.py
    stopper: str | None = None  # a Ray Tune stopper or stop function, pkg.module:name (see _stopper.py)
    run_cap: int | None = Field(default=None, ge=1)
    max_concurrent: int | None = Field(default=None, ge=1)
    time_limit: float | None = None
    stall_timeout: float = 600.0  # a trial silent this long is stopped as stalled; 0: never
    seed: int | None = Field(default=None, ge=0)
    storage: str = "results"
    resources: Resources = Field(default_factory=Resources)
    max_failures: int = Field(default=0, ge=0)  # retries of a failed trial, from its last checkpoint
    max_failed_trials: int | None = Field(default=None, ge=0)  # run-wide: stop starting trials past it
    on_oom: Literal["halve_batch", "infeasible"] = "infeasible"
    on_failure: dict[str, Literal["retry", "fail", "infeasible", "stop", "halve_batch"]] = Field(
        default_factory=dict
    )  # by cause (tuner.diagnose.POLICY_CAUSES); the rest keep their defaults
    on_leak: Literal["warn", "stop"] = "warn"  # a trial whose memory grows steadily: said, or stopped
    checkpoints: CheckpointPolicy = Field(default_factory=CheckpointPolicy)
    final: bool = False  # trials are final runs (train, confirm): trial.final is true
    warm_start: str | list[str] | None = None  # results folders whose trials the searcher starts from
    points_to_evaluate: list[dict[str, Any]] = Field(default_factory=list)  # configurations run first
    tracking: TrackingOptions = Field(default_factory=TrackingOptions)  # MLflow, W&B, TensorBoard (tuner.tracking)

    @property
    def warm_starts(self) -> list[str]:
        return (
            []
            if self.warm_start is None
            else [self.warm_start]
            if isinstance(self.warm_start, str)
            else list(self.warm_start)
        )

    @field_validator("time_limit", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float | None:
        return None if v is None else parse_duration(v)

    @field_validator("stall_timeout", mode="before")
    @classmethod
    def _stall(cls, v: Any) -> float:
        return 0.0 if v in (0, 0.0, "0", "off") else parse_duration(v)

    @field_validator("metric")
    @classmethod
    def _objectives(cls, v: Metric | list[Metric] | None) -> Metric | list[Metric] | None:
        if isinstance(v, list):
            names = [m.name for m in v]
            if len(v) < 2:
                raise ValueError("a list of metrics needs at least two (one metric is written as a mapping)")
            if len(set(names)) < len(names):
                raise ValueError(f"each metric once, got {', '.join(names)}")
            if any(m.target is not None for m in v):
                raise ValueError("target stops a study with one metric; with several it is not supported")
        return v

    @model_validator(mode="after")
    def _select(self) -> StudySpec:
        if self.select is None:
            return self
        names = [m.name for m in self.objectives]
        if len(names) < 2:
            raise ValueError("select: picks among the Pareto-optimal trials of several metrics; this study has one")
        for name in [self.select.metric, *self.select.limits]:
            if name not in names:
                raise ValueError(f"select: {name!r} is not one of the study's metrics ({', '.join(names)})")
        return self

    @model_validator(mode="after")
    def _step_budget(self) -> StudySpec:
        """A simulated trial runs until the scheduler's budget: there must be one."""
        et = self.early_terminate
        need = "backend simulated needs the number of steps each trial runs"
        if self.backend != "simulated" or self.step_budget is not None:
            return self
        if isinstance(et, Asha | Hyperband | Pbt | Pb2):
            raise ValueError(f"early_terminate.{'max_iter' if isinstance(et, Hyperband) else 'max_t'}: {need}")
        raise ValueError(
            f"early_terminate: {need} (type asha with max_t, hyperband with max_iter, or stop.training_iteration)"
        )

    @model_validator(mode="after")
    def _tune_can(self) -> StudySpec:
        """What Ray Tune cannot do is refused, never dropped: the first key it cannot honour."""
        if self.backend != "tune":
            return self
        for key, why in _tune_cannot(self):
            raise ValueError(f"{key}: backend tune {why}")
        return self

    @property
    def objectives(self) -> list[Metric]:
        """Every metric the study optimises, the first also the one ASHA prunes on; none without ``metric``."""
        return list(self.metric) if isinstance(self.metric, list) else [] if self.metric is None else [self.metric]

    @property
    def primary(self) -> Metric | None:
        return self.objectives[0] if self.objectives else None

    @field_validator("on_failure")
    @classmethod
    def _causes(cls, v: dict[str, str]) -> dict[str, str]:
        from tuner.diagnose import POLICY_CAUSES

        for cause, action in v.items():
            if cause not in POLICY_CAUSES:
                extra = " (node_lost is always continued on a live node)" if cause == "node_lost" else ""
                extra = " (use on_leak: warn | stop)" if cause == "leak" else extra
                raise ValueError(f"unknown cause {cause!r}{extra}; causes: {', '.join(POLICY_CAUSES)}")
            if action == "halve_batch" and cause != "oom":
                raise ValueError(f"{cause}: halve_batch is for oom only")
        return v

    @model_validator(mode="after")
    def _oom_once(self) -> StudySpec:
        if "oom" in self.on_failure and "on_oom" in self.model_fields_set:
            raise ValueError("give on_oom or on_failure.oom, not both (they mean the same)")
        return self

    def failure_action(self, cause: str | None) -> Action:
        """What to do with a trial that failed with ``cause``: one of tuner.status.ACTIONS."""
        from tuner.status import default_action

        cause = cause or "user_exception"
        return cast("Action | None", self.on_failure.get(cause)) or default_action(cause, self.on_oom)

    @field_validator("trainable", "stopper")
    @classmethod
    def _dotted(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z_][\w.]*[:.][A-Za-z_]\w*", v):
            raise ValueError(f"must be a dotted path 'package.module:name', got {v!r}")
        return v

    @property
    def scheduler(self) -> Asha | Hyperband | Median | Pbt | Pb2 | None:
        return self.early_terminate

    @property
    def step_budget(self) -> int | None:
        """The step at which every trial is finished: ASHA's ``max_t``; on backend simulated, whose
        trials need an end, hyperband's ``max_iter``; ``stop.training_iteration`` when it is
        smaller (or there is none of those). Otherwise a trial runs to its own end (W&B's
        hyperband does not stop a run at ``max_iter``)."""
        et, budget = self.early_terminate, None
        if isinstance(et, Asha | Pbt | Pb2):  # a population's members are finished at max_t
            budget = et.max_t
        elif isinstance(et, Hyperband) and self.backend == "simulated":
            budget = et.max_iter
        steps = None if self.stop is None else self.stop.steps
        return steps if budget is None or (steps is not None and steps < budget) else budget


def _tune_cannot(spec: StudySpec) -> list[tuple[str, str]]:
    """``(key, why)`` for each key of ``spec`` that a study on Ray Tune's Tuner cannot honour."""
    given = spec.model_fields_set
    out = []
    if isinstance(spec.metric, list) or spec.select is not None:
        out.append(("metric", "optimises one metric (Tune's schedulers and searchers take one)"))
    if "stall_timeout" in given and spec.stall_timeout:
        out.append(("stall_timeout", "cannot stop a trial that stops reporting (leave it out, or use backend ray)"))
    if spec.on_failure or "on_oom" in given:
        key = "on_failure" if spec.on_failure else "on_oom"
        out.append((key, "retries every failure alike, up to max_failures (Tune's FailureConfig); use backend ray"))
    if spec.resources.auto_gpus:
        key = "resources.gpus" if spec.resources.gpus == "auto" else "resources.gpus_per_worker"
        out.append((key, "takes a number of GPUs a trial (Ray Tune cannot pack by measured memory); use backend ray"))
    if spec.on_leak == "stop":
        out.append(("on_leak", "does not watch a trial's memory; use backend ray"))
    if "keep_best" in spec.checkpoints.model_fields_set and spec.checkpoints.keep_best:
        out.append(("checkpoints.keep_best", "keeps each trial's last `keep` checkpoints only (Tune's num_to_keep)"))
    return out


# Keys of W&B sweep files that tuner reads and ignores (with a notice).
IGNORED_KEYS = ("program", "command", "entity", "project")


_SCHEDULERS = ("asha", "hyperband", "median", "pbt", "pb2")  # early_terminate's types, as pydantic tags them
_BRANCHES = ("Metric", "list[Metric]")  # the two forms of ``metric``, as pydantic names them in a path


def _other_branch(tag: str, err: Any) -> bool:
    """Whether this error says only that the value is not of ``tag``'s form."""
    if tag == "list[Metric]":
        return bool(err["type"] == "list_type")
    return err["type"] in ("model_type", "dict_type") and isinstance(err.get("input"), list)


def pydantic_problems(exc: ValidationError, prefix: str = "") -> list[Problem]:
    """One :class:`Problem` per pydantic error, its path in YAML dotted form."""
    problems = []
    for err in exc.errors(include_url=False):
        tags = [str(p) for p in err["loc"] if str(p) in _BRANCHES]
        if tags and _other_branch(tags[0], err):
            continue  # the value is of the other form (one metric, or a list): say what is wrong with that
        loc = [str(p) for p in err["loc"] if not (isinstance(p, str) and p in _SCHEDULERS)]
        loc = [p for p in loc if p not in _BRANCHES]
        path = ".".join([prefix, *loc] if prefix else loc)
        path = re.sub(r"\.(\d+)(?=\.|$)", r"[\1]", path)  # metric.0.goal -> metric[0].goal
        kind = err["type"]
        if kind == "extra_forbidden":
            msg = "unknown key"
        elif kind == "missing":
            msg = "is required"
        elif kind == "union_tag_invalid":
            msg = f"type must be one of asha, hyperband, median, pbt, pb2; got {err.get('input', {}).get('type')!r}"
            path = f"{path}.type" if not path.endswith("type") else path
        else:
            msg = err["msg"].removeprefix("Value error, ")
            if "input" in err and kind not in ("value_error",):
                msg = f"{msg}, got {err['input']!r}"
        problems.append(Problem(path, msg))
    return problems
