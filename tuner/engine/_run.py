"""Running a study on a backend: check what it can hold, make the folder, drive the engine, sum up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuner.config import Study
from tuner.engine._admission import slots_for
from tuner.engine._backend import Backend
from tuner.engine._loop import Engine
from tuner.engine._replay import replay
from tuner.results import FAILED, NO_METRIC, SUMMARY, TrialRecord, write_state, write_yaml


@dataclass
class Outcomes:
    folder: Path
    best: TrialRecord | None
    counts: dict[str, int]
    failures: list[TrialRecord] = field(default_factory=list)
    interrupted: bool = False
    stop_reason: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None  # the best trial's last checkpoint, a path in its store
    checkpoint_location: str = ""  # the store's location


def execute(
    study: Study,
    seed: int,
    backend: Backend,
    folder_for: Callable[[], Path],
    say: Callable[[str], None],
    quiet: bool = False,
    journal: list[dict[str, Any]] | None = None,
    elapsed: float = 0.0,
    trial_seed: int | None = None,
    max_steps: int | None = None,
    schedule: dict[str, list[list[Any]]] | None = None,
) -> Outcomes:
    """Run ``study`` on ``backend`` into ``folder_for()``; with ``journal``, continue that run.

    ``trial_seed`` and ``max_steps`` override every trial's seed and budget, and ``schedule``
    changes its values at the steps it names (``train``).
    """
    slots = slots_for(study, backend.capacity())  # before any file is written: a refusal leaves nothing
    backend.check(study.spec.checkpoints.path or str(Path(study.spec.storage).resolve()))
    folder = folder_for()
    engine = Engine(
        study,
        seed,
        folder,
        backend,
        quiet=quiet,
        elapsed=elapsed,
        trial_seed=trial_seed,
        max_steps=max_steps,
        say=say,
        schedule=schedule,
    )
    if journal is None:
        engine.recorder.save_study({**study.raw, "name": study.title, "seed": seed})
    else:
        engine.attempts.resumable = replay(engine, journal)
        done = sum(1 for r in engine.recorder.trials.values() if r.status != "running")
        say(f"resuming {study.name}: {done} trial(s) done, {len(engine.attempts.resumable)} to continue")
    say(f"running {study.name}: method {study.spec.method}, {slots} trial(s) at a time, {_shape(study)} -> {folder}")
    if study.spec.resources.auto_gpus:
        say(
            f"resources.gpus: auto found no GPU on {backend.where}; trials run on CPU, {slots} at a time"
            if backend.gpus() is None
            else f"resources.gpus: auto: up to {slots} trial(s) share the GPUs as their measured memory allows; "
            "the first on each GPU runs alone until its memory is known"
        )
    interrupted = False
    try:
        engine.run(slots)
    except KeyboardInterrupt:
        interrupted = True
        engine.interrupt()
    except BaseException:
        interrupted = True
        engine.interrupt()  # a fault of ours: keep every finished trial, then report it
        raise
    finally:
        summary = summarise(engine)
        engine.release()
        engine.progress.close()
        write_yaml(folder / SUMMARY, summary)
        best = engine.recorder.finish({"study": study.name, "study_seed": seed}, engine.checkpoints.path_of)
        engine.recorder.journal.close()
        write_state(folder, "interrupted" if interrupted else "done", engine.elapsed)
    failures = [r for r in engine.recorder.trials.values() if r.status in FAILED]
    checkpoint = None if best is None else engine.checkpoints.last(best.trial_id)[1]
    location = engine.checkpoints.store.location
    counts = engine.recorder.counts()
    return Outcomes(folder, best, counts, failures, interrupted, engine.end_reason, summary, checkpoint, location)


def summarise(engine: Engine) -> dict[str, Any]:
    """How the run went as a whole: what ``summary.yaml`` records."""
    import numpy as np

    times = engine.searcher.suggest_s
    slot_s = max(engine.slots, 1) * max(engine.backend.now() - engine.began, 1e-9)
    recs = list(engine.recorder.trials.values())
    rss = [(r.usage["peak_rss_mb"], r.trial_id) for r in recs if r.usage.get("peak_rss_mb")]
    gpu = [(r.usage["peak_gpu_reserved_mb"], r.trial_id) for r in recs if r.usage.get("peak_gpu_reserved_mb")]
    steps = [r.s_per_step for r in recs if r.s_per_step is not None]
    resources = {
        "peak_rss_mb": max(rss)[0] if rss else None,
        "peak_rss_trial": max(rss)[1] if rss else None,
        "peak_gpu_reserved_mb": max(gpu)[0] if gpu else None,
        "peak_gpu_trial": max(gpu)[1] if gpu else None,
        "s_per_step_median": round(float(np.median(steps)), 4) if steps else None,
        "cpu_s": round(sum(r.usage.get("cpu_s", 0.0) for r in recs), 1),
    }
    return {
        "elapsed_s": round(engine.elapsed, 3),
        "resources": resources,
        "respawns": 0,
        "infra_retries": sum(r.infra_retries for r in recs),
        "stop_reason": engine.end_reason,
        **({"best": NO_METRIC} if engine.metric is None else {}),
        "searcher": {
            "suggestions": len(times),
            "suggest_s_median": round(float(np.median(times)), 4) if times else None,
            "suggest_s_p95": round(float(np.percentile(times, 95)), 4) if times else None,
            "wait_s": round(engine.searcher_wait_s, 3),
            "wait_fraction": round(engine.searcher_wait_s / slot_s, 4),
        },
        **engine.backend.summary(),
    }


def _shape(study: Study) -> str:
    """How each trial runs, for the run's first line: its processes, or none on a virtual clock."""
    if study.spec.backend == "simulated":
        return "simulated (no processes)"
    resources = study.spec.resources
    return f"{resources.workers} ranks each ({resources.strategy})" if resources.workers > 1 else "1 process each"
