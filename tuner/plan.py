"""``python -m tuner plan``: what a study will do and cost, checked before any compute is spent."""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

from tuner.config import Asha, Median, Study, import_trainable
from tuner.errors import ConfigError, Problem, TrialPruned
from tuner.space import summary
from tuner.trial import Trial


@dataclass
class Rung:
    step: float
    trials: int  # expected to reach it


@dataclass
class Plan:
    trials: int | None  # None: until the time limit
    slots: int
    where: str
    rungs: list[Rung] = field(default_factory=list)
    finishers: int | None = None  # trials expected to train to max_t
    max_steps: int | None = None
    smoke: dict[str, Any] | None = None

    def worst_steps(self) -> int | None:
        """Steps of training if nothing were pruned."""
        if self.trials is None or self.max_steps is None:
            return None
        return self.trials * self.max_steps

    def expected_steps(self) -> float | None:
        """Steps of training if ASHA prunes as designed (each rung keeps 1 in reduction_factor)."""
        if self.trials is None or self.max_steps is None or not self.rungs or self.finishers is None:
            return None
        reached = [r.trials for r in self.rungs] + [self.finishers]
        pruned = sum((reached[i] - reached[i + 1]) * rung.step for i, rung in enumerate(self.rungs))
        return pruned + self.finishers * self.max_steps


def rungs(spec: Asha | Median | None, trials: int | None) -> list[Rung]:
    """ASHA's milestones (Ray's rule: grace_period * reduction_factor^k up to max_t)."""
    if not isinstance(spec, Asha) or spec.max_t is None or trials is None:
        return []
    count = int(math.log(spec.max_t / spec.grace_period) / math.log(spec.reduction_factor) + 1)
    steps = [spec.grace_period * spec.reduction_factor**k for k in range(count)]
    # A rung at max_t prunes nothing: a trial that gets there has finished.
    return [
        Rung(step, max(1, math.ceil(trials / spec.reduction_factor**k)))
        for k, step in enumerate(steps)
        if step < spec.max_t
    ]


def local_capacity(cpus: float, gpus: float) -> int:
    """What an embedded Ray on this machine would hold (no Ray started)."""
    from tuner.execution._cluster import fits

    n_gpus = 0
    if gpus > 0:
        import torch

        n_gpus = torch.cuda.device_count()
    return fits({"CPU": os.cpu_count() or 1, "GPU": n_gpus}, cpus, gpus)


def make_plan(study: Study, places: int, where: str) -> Plan:
    spec = study.spec
    res = spec.resources
    if places < res.workers:
        need = f"{res.cpu:g} CPU" + (f" and {res.gpu:g} GPU" if res.gpu else "")
        raise ConfigError(
            [
                Problem(
                    "resources",
                    f"a trial needs {res.workers} worker(s) of {need} each; {where} can place at most {places}",
                )
            ]
        )
    trials = study.trial_count()
    slots = study.concurrency(places)
    scheduler = spec.scheduler
    max_steps = scheduler.max_t if isinstance(scheduler, Asha) else None
    plan = Plan(trials, slots, where, rungs(scheduler, trials), max_steps=max_steps)
    if plan.rungs and isinstance(scheduler, Asha):
        plan.finishers = max(1, math.ceil(plan.rungs[-1].trials / scheduler.reduction_factor))
    return plan


def smoke(study: Study) -> dict[str, Any]:
    """Run the first configuration in this process up to its first report (no Ray)."""
    from tuner.searchers import create
    from tuner.space import nest

    params = create(study.spec.method, study.space, study.spec.seed or 0, study.spec.searcher, study.spec.run_cap)
    flat = study.space.complete(params.suggest("smoke") or {})
    seen: list[dict[str, Any]] = []

    def first(record: dict[str, Any]) -> None:
        seen.append(record)
        raise TrialPruned("smoke")

    fn = import_trainable(study.trainable)
    start = time.perf_counter()
    with contextlib.suppress(TrialPruned):
        fn(nest(flat), Trial("smoke", 0, max_steps=None, emit=first))
    seconds = time.perf_counter() - start
    if not seen:
        raise ConfigError([Problem("trainable", f"{study.trainable} returned without calling trial.report")])
    metrics = seen[0]["metrics"]
    if study.metric not in metrics:
        raise ConfigError(
            [
                Problem(
                    "metric.name",
                    f"{study.metric!r} was not reported by {study.trainable} "
                    f"(its first report has: {', '.join(sorted(metrics))})",
                )
            ]
        )
    return {"config": flat, "metrics": metrics, "seconds": seconds}


def describe(study: Study, plan: Plan) -> str:
    spec = study.spec
    lines = [
        f"study {study.name}: {spec.method} over {len(study.space.searchable)} parameter(s), "
        f"{spec.metric.goal} {study.metric}"
    ]
    for name, p in study.space.params.items():
        lines.append(f"  {name}: {summary(p)}")
    trials = f"{plan.trials}" if plan.trials is not None else "until the time limit"
    lines.append(f"trials: {trials}; {plan.slots} at a time on {plan.where}, {spec.resources.workers} worker(s) each")
    if spec.time_limit:
        lines.append(f"time limit: {spec.time_limit:g} s")
    if plan.rungs:
        lines.append("ASHA rungs (step: trials expected to reach it):")
        lines += [f"  {r.step:g}: {r.trials}" for r in plan.rungs]
        if plan.finishers is not None:
            lines.append(f"  {plan.max_steps} (max_t): {plan.finishers}")
    elif spec.scheduler is None:
        lines.append("no pruning: every trial runs to its end")
    worst, expected = plan.worst_steps(), plan.expected_steps()
    if worst is not None:
        text = f"compute: at most {worst} trial-steps"
        if expected is not None:
            text += f" (about {expected:.0f} with ASHA pruning)"
        if plan.smoke is not None:
            per = plan.smoke["seconds"] * spec.resources.workers
            text += f"; about {worst * plan.smoke['seconds'] / max(plan.slots, 1) / 60:.1f} min at worst"
            text += f" from the smoke step's {plan.smoke['seconds']:.2f} s ({per:.2f} worker-s a step)"
        lines.append(text)
    if plan.smoke is not None:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in plan.smoke["metrics"].items())
        lines.append(f"smoke trial: first report in {plan.smoke['seconds']:.2f} s: {shown}")
    return "\n".join(lines)
