"""The study loop: ask the searcher, start trials on reused worker groups, prune, record.

This is the one place where a trial starts (:meth:`_Engine._launch`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuner import searchers
from tuner.config import Study
from tuner.errors import UserError
from tuner.execution._checkpoints import Checkpoints
from tuner.execution._cluster import capacity, path_entries
from tuner.execution._group import WorkerGroup
from tuner.execution._schedulers import Pruner
from tuner.execution._worker import TrialTask
from tuner.progress import Progress
from tuner.results import Recorder, TrialRecord
from tuner.searchers import Outcome
from tuner.space import nest

STOP_GRACE_S = 2.0  # ranks of a stopped trial still running by then are killed and respawned
FAIL_FAST = 3  # stop starting trials when this many failed and none reported a value


@dataclass
class _Running:
    record: TrialRecord
    group: WorkerGroup
    task: TrialTask
    streams: dict[Any, int] = field(default_factory=dict)  # event stream -> rank
    ended: dict[int, dict[str, Any]] = field(default_factory=dict)
    decided: str | None = None  # status the driver chose before the trial ended
    error: str | None = None
    stop_sent: float | None = None
    attempt: int = 0


@dataclass
class Outcomes:
    folder: Path
    best: TrialRecord | None
    counts: dict[str, int]
    failures: list[TrialRecord] = field(default_factory=list)
    interrupted: bool = False
    stop_reason: str | None = None


class _Engine:
    def __init__(self, study: Study, seed: int, folder: Path, quiet: bool) -> None:
        import ray

        spec = study.spec
        self.study = study
        self.seed = seed
        self.ray = ray
        self.metric = study.metric
        self.sign = -1.0 if study.maximize else 1.0
        self.pruner = Pruner(spec.scheduler, study.metric, study.maximize)
        self.searcher = searchers.create(spec.method, study.space, seed, spec.searcher, spec.run_cap)
        self.recorder = Recorder(folder, study.metric, study.maximize)
        self.checkpoints = Checkpoints(folder / "checkpoints")
        self.progress = Progress(self.recorder, quiet=quiet, time_limit=spec.time_limit)
        self.groups: list[WorkerGroup] = []
        self.idle: list[WorkerGroup] = []
        self.trials: dict[str, _Running] = {}
        self.streams: dict[Any, _Running] = {}
        self.launched = 0
        self.exhausted = False
        self.stop_reason: str | None = None
        self.deadline = None if spec.time_limit is None else time.monotonic() + spec.time_limit

    # -- the loop --------------------------------------------------------------------------
    def run(self, slots: int) -> None:
        res = self.study.spec.resources
        paths = path_entries()
        self.groups = [WorkerGroup(res.workers, res.cpu, res.gpu, paths, self.study.trainable) for _ in range(slots)]
        self.idle = list(self.groups)
        while True:
            while self.idle and self._can_launch():
                self._launch(self.idle.pop())
            if not self.trials:
                break
            ready, _ = self.ray.wait(list(self.streams), num_returns=1, timeout=0.25)
            for stream in ready:
                if stream in self.streams:
                    self._next_event(stream)
            self._enforce_limits()
            self.recorder.flush()
            self.progress.update()

    def _can_launch(self) -> bool:
        cap = self.study.spec.run_cap
        return not self.exhausted and self.stop_reason is None and (cap is None or self.launched < cap)

    def _launch(self, group: WorkerGroup) -> None:
        """Start one trial: the only place trials begin."""
        trial_id = f"t{self.launched + 1:04d}"
        params = self.searcher.suggest(trial_id)
        if params is None:
            self.exhausted = True
            self.idle.append(group)
            return
        self.launched += 1
        flat = self.study.space.complete(params)
        config = nest(flat)
        trial_seed = (self.seed * 1_000_003 + self.launched) % 2**31
        record = TrialRecord(trial_id=trial_id, params=flat, config=config, seed=trial_seed)
        self.recorder.start(record)
        self.pruner.add(trial_id)
        res = self.study.spec.resources
        task = TrialTask(trial_id, self.study.trainable, config, trial_seed, self.pruner.max_t, res.gpu)
        self._start(_Running(record, group, task))

    def _start(self, run: _Running) -> None:
        self.trials[run.record.trial_id] = run
        for rank, stream in enumerate(run.group.launch(run.task)):
            run.streams[stream] = rank
            self.streams[stream] = run

    def _next_event(self, stream: Any) -> None:
        run = self.streams[stream]
        rank = run.streams[stream]
        try:
            event = self.ray.get(next(stream))
        except StopIteration:
            event = {"kind": "done"}
        except self.ray.exceptions.RayError as exc:
            event = {
                "kind": "error",
                "error": f"rank {rank} process died ({type(exc).__name__})",
                "traceback": str(exc),
                "dead": True,
            }
        if event["kind"] == "report":
            self._on_report(run, event)
            return
        del self.streams[stream], run.streams[stream]
        run.ended[rank] = event
        failed = event["kind"] == "error"
        if failed and (run.group.size > 1 or event.get("dead")):
            self._end(run, event, rebuild=True)  # the other ranks may wait in a collective forever
        elif len(run.ended) == run.group.size:
            self._end(run, run.ended.get(0, event), rebuild=False)

    def _on_report(self, run: _Running, event: dict[str, Any]) -> None:
        if run.decided is not None:
            return  # the trial was already stopped; late reports do not count
        rec, step, metrics = run.record, event["step"], event["metrics"]
        if "checkpoint" in event:
            self.checkpoints.save(rec.trial_id, step, event["checkpoint"])
        if self.metric not in metrics:
            reported = ", ".join(sorted(metrics)) or "nothing"
            self._stop(run, "errored", f"metric {self.metric!r} was not reported at step {step} (reported: {reported})")
            return
        self.recorder.report(rec.trial_id, step, event["time"], metrics)
        value = metrics[self.metric]
        if not math.isfinite(value):
            self._stop(run, "nan", f"{self.metric} is {value} at step {step}")
        elif self.pruner.reached_budget(step):
            self._stop(run, "finished")
        elif self.pruner.should_stop(rec.trial_id, step, value):
            self._stop(run, "pruned")

    def _stop(self, run: _Running, status: str, error: str | None = None) -> None:
        run.decided, run.error, run.stop_sent = status, error, time.monotonic()
        run.group.stop(run.record.trial_id)

    def _end(self, run: _Running, event: dict[str, Any], rebuild: bool) -> None:
        """A trial's ranks have all ended (or one failed): retry it, or record how it ended."""
        for stream in list(run.streams):
            del self.streams[stream]
        run.streams.clear()
        del self.trials[run.record.trial_id]
        if rebuild:
            run.group.rebuild()
        rec = run.record
        if run.stop_sent is not None:
            rec.stop_s = round(time.monotonic() - run.stop_sent, 3)
        status, error, tb = run.decided, run.error, None
        if status is None:
            if event["kind"] == "error":
                status, error, tb = "errored", event["error"], event.get("traceback")
            elif rec.iterations == 0:
                status, error = "errored", f"returned without reporting {self.metric!r}"
            else:
                status = "finished"
        if tb:
            self._write_log(rec.trial_id, run.attempt, tb)
        if status == "errored" and run.decided is None and run.attempt < self.study.spec.max_failures:
            self._retry(run, error)
            return
        self.recorder.end(rec.trial_id, status, error, tb)
        last = {"step": rec.step, self.metric: rec.value} if status in ("finished", "pruned", "stopped") else None
        self.pruner.remove(rec.trial_id, last if rec.value is not None else None)
        value = None if rec.value is None or status in ("errored", "nan") else self.sign * rec.value
        state = "complete" if status == "finished" else "failed" if value is None else "pruned"
        self.searcher.tell(rec.trial_id, Outcome(value, state, rec.step))  # type: ignore[arg-type]
        self.idle.append(run.group)
        self._check_goals(rec)

    def _retry(self, run: _Running, error: str | None) -> None:
        """Run a failed trial again on the same group, from its last checkpoint."""
        step, state = self.checkpoints.load(run.record.trial_id)
        self.recorder.rewind(run.record.trial_id, step)
        run.record.attempts += 1
        retry = _Running(
            run.record, run.group, TrialTask(**{**run.task.__dict__, "checkpoint": state}), attempt=run.attempt + 1
        )
        self._start(retry)

    def _write_log(self, trial_id: str, attempt: int, text: str) -> None:
        logs = self.recorder.folder / "logs"
        logs.mkdir(exist_ok=True)
        name = f"{trial_id}.log" if attempt == 0 else f"{trial_id}.attempt{attempt}.log"
        (logs / name).write_text(text, encoding="utf-8")

    def _check_goals(self, rec: TrialRecord) -> None:
        target = self.study.spec.metric.target
        hit = (
            rec.value is not None
            and target is not None
            and (rec.value >= target if self.study.maximize else rec.value <= target)
        )
        if rec.status == "finished" and hit:
            self._halt(f"{self.metric} reached its target {target} in {rec.trial_id}")
        counts = self.recorder.counts()
        failed = counts["errored"] + counts["nan"]
        if failed >= FAIL_FAST and not any(
            r.value is not None and math.isfinite(r.value) for r in self.recorder.trials.values()
        ):
            self._halt(f"the first {failed} trials all failed")

    def _halt(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason

    def _enforce_limits(self) -> None:
        now = time.monotonic()
        if self.deadline is not None and now >= self.deadline:
            self._halt("time_limit reached")
            for run in self.trials.values():
                if run.decided is None:
                    self._stop(run, "stopped", "stopped at the time limit")
        for run in list(self.trials.values()):
            if run.stop_sent is not None and now - run.stop_sent > STOP_GRACE_S:
                self._end(run, {"kind": "done"}, rebuild=True)  # it ignored the stop: kill its ranks

    def interrupt(self) -> None:
        """End every running trial as ``stopped``."""
        for run in list(self.trials.values()):
            if run.decided is None:
                run.decided, run.error = "stopped", "interrupted"
            self._end(run, {"kind": "done"}, rebuild=False)

    def release(self) -> None:
        """Free the workers and their placement groups now, not when handles are collected."""
        for group in self.groups:
            group.close()
        self.groups, self.idle = [], []


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
    limits = [places // res.workers, study.spec.max_concurrent, study.spec.run_cap]
    return min(x for x in limits if x is not None)


def execute(
    study: Study, seed: int, folder_for: Callable[[], Path], say: Callable[[str], None], quiet: bool = False
) -> Outcomes:
    """Run ``study`` on the connected Ray; results go to the folder ``folder_for()`` makes."""
    slots = plan_slots(study)
    folder = folder_for()
    engine = _Engine(study, seed, folder, quiet)
    engine.recorder.save_study({**study.raw, "name": study.name, "seed": seed})
    workers = study.spec.resources.workers
    shape = f"{workers} DDP workers" if workers > 1 else "1 process"
    say(f"running {study.name}: method {study.spec.method}, {slots} trial(s) at a time, {shape} each -> {folder}")
    interrupted = False
    try:
        engine.run(slots)
    except KeyboardInterrupt:
        interrupted = True
        engine.interrupt()
    except BaseException:
        engine.interrupt()  # a fault of ours: keep every finished trial, then report it
        engine.recorder.finish({"study": study.name, "study_seed": seed})
        raise
    finally:
        engine.release()
        engine.progress.close()
    best = engine.recorder.finish({"study": study.name, "study_seed": seed}, engine.checkpoints.path_of)
    failures = [r for r in engine.recorder.trials.values() if r.status in ("errored", "nan")]
    return Outcomes(folder, best, engine.recorder.counts(), failures, interrupted, engine.stop_reason)
