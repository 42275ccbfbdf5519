"""Running a study: check what the cluster holds, make the folder, drive the engine, sum up."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuner.backends.ray._cluster import capacity
from tuner.backends.ray._engine import _Engine
from tuner.config import Study
from tuner.errors import UserError
from tuner.results import TrialRecord
from tuner.results._recorder import FAILED
from tuner.results._state import write_state
from tuner.results._store import SUMMARY, write_yaml


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


def plan_slots(study: Study) -> int:
    """How many trials run at once: what the cluster holds, capped by the study's limits."""
    res = study.spec.resources
    places = capacity(res.cpu, res.gpu)
    if places < res.workers:
        need = f"{res.cpu:g} CPU" + (f" and {res.gpu:g} GPU" if res.gpu else "")
        raise UserError(
            f"resources: a trial needs {res.workers} worker(s) of {need} each; "
            f"this Ray cluster can place at most {places}"
        )
    return study.concurrency(places)


def check_checkpoint_location(study: Study) -> None:
    """On a cluster, checkpoints must go where every node can read them: a local path is tried
    from each node (a marker file), and refused if some node cannot see it."""
    import uuid

    from tuner.backends.ray._cluster import nodes_not_seeing
    from tuner.storage import CheckpointStore, is_remote

    given = study.spec.checkpoints.path
    location = given or str(Path(study.spec.storage).resolve())
    if is_remote(location):
        return
    fresh = [p for p in [Path(location), *Path(location).parents] if not p.exists()]
    store = CheckpointStore(location)
    marker = store.write_marker(f".tuner-shared-{uuid.uuid4().hex}")
    try:
        blind = nodes_not_seeing(marker)
    finally:
        store.delete(marker)
        for made in fresh:  # leave no folder behind that was made for the test
            with contextlib.suppress(OSError):
                made.rmdir()
    if blind:
        field = "checkpoints.path" if given else "storage"
        raise UserError(
            f"{field}: {location} is local to this machine; node(s) {', '.join(blind)} cannot read it. "
            "Give checkpoints.path a folder every node shares (NFS) or an object store (s3://bucket/prefix)"
        )


def execute(
    study: Study,
    seed: int,
    folder_for: Callable[[], Path],
    say: Callable[[str], None],
    quiet: bool = False,
    journal: list[dict[str, Any]] | None = None,
    elapsed: float = 0.0,
    trial_seed: int | None = None,
    max_steps: int | None = None,
) -> Outcomes:
    """Run ``study`` on the connected Ray into ``folder_for()``; with ``journal``, continue that run.

    ``trial_seed`` and ``max_steps`` override every trial's seed and budget (``train``).
    """
    slots = plan_slots(study)  # before any file is written: a refusal leaves nothing behind
    check_checkpoint_location(study)
    folder = folder_for()
    engine = _Engine(study, seed, folder, quiet, elapsed, trial_seed, max_steps, say)
    if journal is None:
        engine.recorder.save_study({**study.raw, "name": study.name, "seed": seed})
    else:
        engine.resumable = engine.replay(journal)
        done = sum(1 for r in engine.recorder.trials.values() if r.status != "running")
        say(f"resuming {study.name}: {done} trial(s) done, {len(engine.resumable)} to continue")
    workers = study.spec.resources.workers
    shape = f"{workers} DDP workers" if workers > 1 else "1 process"
    say(f"running {study.name}: method {study.spec.method}, {slots} trial(s) at a time, {shape} each -> {folder}")
    interrupted = False
    info = {"study": study.name, "study_seed": seed}
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
        summary = engine.summary()
        engine.release()
        engine.progress.close()
        write_yaml(folder / SUMMARY, summary)
        best = engine.recorder.finish(info, engine.checkpoints.path_of)
        engine.recorder.journal.close()
        write_state(folder, "interrupted" if interrupted else "done", engine.elapsed)
    failures = [r for r in engine.recorder.trials.values() if r.status in FAILED]
    checkpoint = None if best is None else engine.checkpoints.last(best.trial_id)[1]
    location = engine.checkpoints.store.location
    return Outcomes(
        folder, best, engine.recorder.counts(), failures, interrupted, engine.stop_reason, summary, checkpoint, location
    )
