"""``python -m tuner plan``: what a study will do and cost, checked before any compute is spent."""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tuner.config import Asha, Hyperband, Median, Stop, Study, import_trainable, trainable_style, until_stopped
from tuner.errors import ConfigError, Problem, TrialPruned
from tuner.space import summary
from tuner.status import ERRORED, OOM
from tuner.trial import Trial


@dataclass
class Rung:
    step: float  # hyperband: a band, counted in reports of the metric
    trials: int | None  # expected to reach it (None: the number of trials is not known)


@dataclass
class Plan:
    trials: int | None  # None: until stopped (no run_cap)
    slots: int
    where: str
    rungs: list[Rung] = field(default_factory=list)
    finishers: int | None = None  # trials expected to train to max_t
    max_steps: int | None = None
    smoke: dict[str, Any] | None = None
    gpus: int | None = None  # GPUs where it runs (gpus: auto); None: not known (a remote cluster)

    def worst_steps(self) -> int | None:
        """Steps of training if nothing were pruned."""
        if self.trials is None or self.max_steps is None:
            return None
        return self.trials * self.max_steps

    def expected_steps(self) -> float | None:
        """Steps of training if ASHA prunes as designed (each rung keeps 1 in reduction_factor)."""
        if self.trials is None or self.max_steps is None or not self.rungs or self.finishers is None:
            return None
        reached = [r.trials or 0 for r in self.rungs] + [self.finishers]
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


def bands(spec: Hyperband, trials: int | None) -> list[Rung]:
    """W&B's hyperband bands (see :func:`tuner.config.wandb_bands`), each with the trials expected
    to reach it: about 1 in ``eta`` go on at each. Bands that go on forever (``min_iter`` alone)
    are listed while a trial is expected to reach them (4 of them when the trials are not known)."""
    out = []
    for k, band in enumerate(spec.bands()):
        expected = None if trials is None else max(1, math.ceil(trials / spec.eta**k))
        if spec.max_iter is None and (k >= 4 if trials is None else trials / spec.eta**k < 1):
            break
        out.append(Rung(band, expected))
    return out


def local_gpus() -> int:
    """GPUs on this machine (torch's count)."""
    import torch

    return int(torch.cuda.device_count())


def local_capacity(cpus: float, gpus: float) -> int:
    """What an embedded Ray on this machine would hold (no Ray started)."""
    from tuner.backends.ray import fits

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
    if isinstance(scheduler, Hyperband):
        plan = Plan(trials, slots, where, bands(scheduler, trials), max_steps=spec.step_budget)
        factor = scheduler.eta
    else:
        plan = Plan(
            trials,
            slots,
            where,
            rungs(scheduler if isinstance(scheduler, Asha | Median) else None, trials),
            max_steps=spec.step_budget,
        )
        factor = scheduler.reduction_factor if isinstance(scheduler, Asha) else 1.0
    last = plan.rungs[-1].trials if plan.rungs else None
    if last is not None and isinstance(scheduler, Asha | Hyperband):
        plan.finishers = max(1, math.ceil(last / factor))
    return plan


def smoke(study: Study) -> dict[str, Any]:
    """Run the first configuration in this process up to its first report (no Ray), then the
    largest one (see :func:`largest`) when it differs; each with its model's summary and the
    memory its step took. A configuration that fails is a :class:`ConfigError` with its cause."""
    from tuner.searchers import create

    params = create(study.spec.method, study.space, study.spec.seed or 0, study.spec.searcher, study.spec.run_cap)
    flat = study.space.complete(params.suggest("smoke") or {})
    out = _step(study, flat, "first")
    big = largest(study, flat)
    if big != flat:
        out["largest"] = _step(study, big, "largest")
    return out


def largest(study: Study, flat: dict[str, Any]) -> dict[str, Any]:
    """``flat`` with every integer parameter (``q_uniform`` over whole numbers included), and every
    choice among numbers, at its largest: what sets a model's size and a batch's (widths,
    depths, batch sizes); real numbers such as a learning rate keep their value."""
    from tuner.space import Categorical, Float, Int

    big = dict(flat)
    for name, p in study.space.searchable.items():
        if isinstance(p, Int):
            big[name] = p.high
        elif isinstance(p, Float) and p.integer:  # q_uniform over whole numbers: a width, a batch
            big[name] = int(p.high)
        elif isinstance(p, Categorical):
            numbers = [v for v in p.values if isinstance(v, int | float) and not isinstance(v, bool)]
            if numbers and len(numbers) == len(p.values):
                big[name] = max(numbers)
    return big


class _Inspecting(Trial):
    """A trial that keeps the model it prepares and the first input that model sees."""

    model: Any = None
    inputs: Any = None

    def prepare(self, model: Any, **options: Any) -> Any:
        model = super().prepare(model, **options)
        self.model = model
        module = Trial.unwrap(model)  # a pipeline's stage: its module

        def first_input(module: Any, args: Any, kwargs: Any) -> None:
            if self.inputs is None:
                self.inputs = (args, kwargs)

        module.register_forward_pre_hook(first_input, with_kwargs=True)
        return model


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """``env`` in this process's environment for a while, as a trial's workers have it."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _step(study: Study, flat: dict[str, Any], which: str) -> dict[str, Any]:
    from tuner.backends.ray import Usage, rss_mb, run_tune_trainable
    from tuner.diagnose import diagnose

    seen: list[dict[str, Any]] = []
    fn = import_trainable(study.trainable)
    before = rss_mb() or 0.0
    usage = Usage()

    def first(record: dict[str, Any]) -> None:
        seen.append(record)
        usage.sample()
        raise TrialPruned("smoke")

    trial = _Inspecting("smoke", 0, max_steps=None, emit=first, strategy=study.spec.resources.strategy_options())
    start = time.perf_counter()
    try:
        with contextlib.suppress(TrialPruned), _environment(study.env):  # a W&B program's settings
            if trainable_style(fn, study.spec.trainable_api) == "tune":
                run_tune_trainable(fn, study.space.nest(flat), trial, first)
            else:
                fn(study.space.nest(flat), trial)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}".strip()
        oom = isinstance(exc, MemoryError) or "out of memory" in error.lower()
        found = diagnose(OOM if oom else ERRORED, error, flat)
        shown = ", ".join(f"{k}={v}" for k, v in flat.items())
        why = f"{found.cause}: {found.hint}" if found else error
        raise ConfigError(
            [
                Problem(
                    "parameters",
                    f"the {which} configuration ({shown}) fails at its first step: {error.splitlines()[-1]} ({why})",
                )
            ]
        ) from exc
    seconds = time.perf_counter() - start
    used = usage.stop()
    if not seen:
        raise ConfigError([Problem("trainable", f"{study.trainable} returned without calling trial.report")])
    metrics = seen[0]["metrics"]
    if study.metric is not None and study.metric not in metrics:
        raise ConfigError(
            [
                Problem(
                    "metric.name",
                    f"{study.metric!r} was not reported by {study.trainable} "
                    f"(its first report has: {', '.join(sorted(metrics))})",
                )
            ]
        )
    out = {"config": flat, "metrics": metrics, "seconds": seconds, "which": which}
    out["memory_mb"] = round(max(used.get("peak_rss_mb", before) - before, 0.0), 1)
    if "peak_gpu_mb" in used:
        out["gpu_mb"] = used["peak_gpu_mb"]
    out["model"] = _summary(trial)
    return out


def _summary(trial: _Inspecting) -> dict[str, Any] | None:
    """torchinfo's summary of the trial's model on the first input it saw: parameters, each
    layer's output shape, the activations' size; ``None`` without a prepared model."""
    if trial.model is None or trial.inputs is None:
        return None
    try:
        import torchinfo
    except ImportError:
        return None
    args, kwargs = trial.inputs
    try:
        stats = torchinfo.summary(
            Trial.unwrap(trial.model),
            input_data=list(args),
            depth=3,
            verbose=0,
            col_names=("output_size", "num_params"),
            **kwargs,
        )
    except Exception as exc:  # a model torchinfo cannot trace: say so, the step itself ran
        return {"table": f"(no summary: torchinfo failed with {type(exc).__name__}: {exc})"}
    return {
        "params": int(stats.total_params),
        "activations_mb": round(stats.to_megabytes(stats.total_output_bytes), 2),
        "params_mb": round(stats.to_megabytes(stats.total_param_bytes), 2),
        "table": str(stats),
    }


def _when(condition: Any) -> str:
    """``, only when opt = sgd``: the condition a parameter exists under (``when:``), or nothing."""
    parts = [f"{parent} = {values[0]}" if len(values) == 1 else f"{parent} in {', '.join(map(str, values))}"
             for parent, values in condition]  # fmt: skip
    return f"; only when {' and '.join(parts)}" if parts else ""


def describe(study: Study, plan: Plan) -> str:
    spec = study.spec
    lines = [f"note: {n}" for n in study.notices]
    lines.append(
        f"study {study.name}: {spec.method} over {len(study.space.searchable)} parameter(s), "
        + (
            ", ".join(f"{m.goal} {m.name}" for m in spec.objectives)
            or "no metric: every reported metric recorded, none ranked"
        )
    )
    for name, p in study.space.params.items():
        lines.append(f"  {name}: {summary(p)}{_when(study.space.conditions.get(name, ()))}")
    trials = f"{plan.trials}" if plan.trials is not None else until_stopped(spec).replace("the study runs ", "")
    lines.append(f"trials: {trials}; {plan.slots} at a time on {plan.where}, {spec.resources.workers} worker(s) each")
    if spec.resources.auto_gpus:
        lines.append(_auto_line(plan))
    if spec.time_limit:
        lines.append(f"time limit: {spec.time_limit:g} s")
    if spec.stop is not None:
        lines.append(_stop_line(spec.stop))
    if spec.stopper is not None:
        lines.append(
            f"stopper: {spec.stopper} is asked at each report (true: the trial is finished) and may end the study"
        )
    if isinstance(spec.scheduler, Hyperband):
        lines += _band_lines(study, spec.scheduler, plan)
    elif plan.rungs:
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
            kind = "hyperband" if isinstance(spec.scheduler, Hyperband) else "ASHA"
            text += f" (about {expected:.0f} with {kind} pruning)"
        if plan.smoke is not None:
            per = plan.smoke["seconds"] * spec.resources.workers
            text += f"; about {worst * plan.smoke['seconds'] / max(plan.slots, 1) / 60:.1f} min at worst"
            text += f" from the smoke step's {plan.smoke['seconds']:.2f} s ({per:.2f} worker-s a step)"
        lines.append(text)
    if plan.smoke is not None:
        for step in (plan.smoke, plan.smoke.get("largest")):
            if step is not None:
                lines += _smoke_lines(step)
    return "\n".join(lines)


def _stop_line(stop: Stop) -> str:
    """What ``stop:`` finishes a trial at."""
    said = [f"at step {stop.steps}"] if stop.steps is not None else []
    said += [f"after {stop.time_total_s:g} s of training"] if stop.time_total_s is not None else []
    said += [f"when {name} {'>=' if op == 'ge' else '<='} {x:g}" for name, (op, x) in stop.limits.items()]
    said += ["when a report says done"] if stop.done else []
    return "stop: a trial is finished " + (", ".join(said[:-1]) + " or " + said[-1] if len(said) > 1 else said[0])


def _auto_line(plan: Plan) -> str:
    """What ``gpus: auto`` will do where the study runs."""
    from tuner.engine import CONTEXT_MB, HEADROOM

    if plan.gpus == 0:
        return f"gpus: auto: no GPU on {plan.where}; trials run on CPU, {plan.slots} at a time"
    where = f"each of the {plan.gpus} GPU(s)" if plan.gpus else "each GPU"
    return (
        f"gpus: auto: trials share {where} as their measured memory allows ({HEADROOM:.0%} of it kept free, "
        f"{CONTEXT_MB:.0f} MB for each worker's CUDA context), within the CPUs; the first on a GPU runs alone until "
        "its memory is known (its first report, or settled while it computes), and an out-of-memory next to other "
        "trials is retried with fewer"
    )


def _band_lines(study: Study, hb: Hyperband, plan: Plan) -> list[str]:
    """Where hyperband judges trials, what it counts, and where trials end."""
    metric, known = study.metric, plan.trials is not None
    head = f"hyperband bands (W&B's rule; reports of {metric}"
    lines = [head + (": trials expected to reach it):" if known else "):")]
    lines += [f"  {r.step:g}" + (f": {r.trials}" if known else "") for r in plan.rungs]
    more = hb.bands()[len(plan.rungs) :]
    if more:
        lines.append(f"  then {', '.join(str(b) for b in more[:2])}, ... (x{hb.eta:g} each)")
    rule = "its value at the band" if hb.strict else "its best value so far"
    lines.append(
        f"  a trial is stopped when {rule} is worse than the value ranked int(n / {hb.eta:g}) + 1 "
        "of the n trials at that band"
    )
    lines.append(
        f"  a band counts the reports that carry {metric} (as W&B counts wandb.log calls), not the step: "
        "a trial reporting steps 0, 1, 2 reaches band 3 at step 2"
    )
    if plan.max_steps is not None:
        lines.append(f"  backend simulated: each trial runs max_iter ({plan.max_steps}) steps at most")
    else:
        at = "no trial is stopped at max_iter: " if hb.max_iter is not None else ""
        lines.append(f"  {at}each trial runs until its trainable returns")
    return lines


def _smoke_lines(step: dict[str, Any]) -> list[str]:
    shown = ", ".join(f"{k}={v:.4g}" for k, v in step["metrics"].items())
    label = "smoke trial" if step["which"] == "first" else "largest configuration"
    config = ", ".join(f"{k}={v}" for k, v in step["config"].items())
    memory = f"{step['memory_mb']:.0f} MB more host memory"
    if step.get("gpu_mb") is not None:
        memory += f", {step['gpu_mb']:.0f} MB GPU memory at its peak"
    lines = [f"{label} ({config}): first report in {step['seconds']:.2f} s, {memory}: {shown}"]
    model = step.get("model")
    if model and "params" in model:
        lines.append(
            f"  model: {model['params']:,} parameters ({model['params_mb']:.1f} MB), "
            f"activations of one batch {model['activations_mb']:.1f} MB (torchinfo)"
        )
    if model:
        lines += ["  " + line for line in model["table"].splitlines()]
    return lines
