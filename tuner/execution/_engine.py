"""The study loop: ask the searcher, start trials on reused workers, prune, record.

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
from tuner.execution._cluster import capacity, path_entries
from tuner.execution._schedulers import Pruner
from tuner.progress import Progress
from tuner.results import Recorder, TrialRecord
from tuner.searchers import Outcome
from tuner.space import nest

STOP_GRACE_S = 5.0  # a stopped trial that does not reach its next report by then is killed
FAIL_FAST = 3  # stop starting trials when this many failed and none reported a value


@dataclass
class _Running:
    record: TrialRecord
    worker: Any
    decided: str | None = None  # status the driver chose before the trial ended
    error: str | None = None
    stop_sent: float | None = None


@dataclass
class Outcomes:
    folder: Path
    best: TrialRecord | None
    counts: dict[str, int]
    failures: list[TrialRecord] = field(default_factory=list)
    interrupted: bool = False
    stop_reason: str | None = None


class _Engine:
    def __init__(self, study: Study, seed: int, folder: Path, say: Callable[[str], None], quiet: bool) -> None:
        import ray

        from tuner.execution._worker import TrialWorker

        spec = study.spec
        self.study = study
        self.seed = seed
        self.say = say
        self.ray = ray
        self.metric = study.metric
        self.sign = -1.0 if study.maximize else 1.0
        self.pruner = Pruner(spec.scheduler, study.metric, study.maximize)
        self.searcher = searchers.create(spec.method, study.space, seed, spec.searcher, spec.run_cap)
        self.recorder = Recorder(folder, study.metric, study.maximize)
        self.progress = Progress(self.recorder, quiet=quiet, time_limit=spec.time_limit)
        res = spec.resources
        self._actor: Any = ray.remote(TrialWorker).options(
            num_cpus=res.cpus,
            num_gpus=res.gpus,
            max_concurrency=2,
        )
        self._paths = path_entries()
        self.running: dict[Any, _Running] = {}
        self.idle: list[Any] = []
        self.launched = 0
        self.exhausted = False
        self.stop_reason: str | None = None
        self.deadline = None if spec.time_limit is None else time.monotonic() + spec.time_limit

    # -- workers ---------------------------------------------------------------------------
    def _new_worker(self) -> Any:
        worker = self._actor.remote(self._paths)
        worker.warm.remote(self.study.trainable)
        return worker

    def _replace(self, worker: Any) -> None:
        self.ray.kill(worker, no_restart=True)
        self.idle.append(self._new_worker())

    # -- the loop --------------------------------------------------------------------------
    def run(self, slots: int) -> None:
        self.idle = [self._new_worker() for _ in range(slots)]
        while True:
            self._launch_ready()
            if not self.running:
                break
            ready, _ = self.ray.wait(list(self.running), num_returns=1, timeout=0.25)
            for gen in ready:
                self._next_event(gen)
            self._enforce_limits()
            self.recorder.flush()
            self.progress.update()

    def _can_launch(self) -> bool:
        spec = self.study.spec
        if self.exhausted or self.stop_reason is not None:
            return False
        return not (spec.run_cap is not None and self.launched >= spec.run_cap)

    def _launch_ready(self) -> None:
        while self.idle and self._can_launch():
            self._launch(self.idle.pop())

    def _launch(self, worker: Any) -> None:
        """Start one trial: the only place trials begin."""
        trial_id = f"t{self.launched + 1:04d}"
        params = self.searcher.suggest(trial_id)
        if params is None:
            self.exhausted = True
            self.idle.append(worker)
            return
        self.launched += 1
        flat = self.study.space.complete(params)
        config = nest(flat)
        trial_seed = (self.seed * 1_000_003 + self.launched) % 2**31
        record = TrialRecord(trial_id=trial_id, params=flat, config=config, seed=trial_seed)
        self.recorder.start(record)
        self.pruner.add(trial_id)
        gen = worker.run.options(num_returns="streaming").remote(
            trial_id,
            self.study.trainable,
            config,
            trial_seed,
            self.pruner.max_t,
            self.study.spec.resources.gpus,
        )
        self.running[gen] = _Running(record, worker)

    def _next_event(self, gen: Any) -> None:
        run = self.running[gen]
        try:
            event = self.ray.get(next(gen))
        except StopIteration:
            self._end(gen, {"kind": "done"})
            return
        except self.ray.exceptions.RayError as exc:
            self._end(
                gen,
                {"kind": "error", "error": f"worker process died: {type(exc).__name__}", "traceback": str(exc)},
                dead=True,
            )
            return
        if event["kind"] == "report":
            self._on_report(run, event)
        else:
            self._end(gen, event)

    def _on_report(self, run: _Running, event: dict[str, Any]) -> None:
        if run.decided is not None:
            return  # the trial was already stopped; late reports do not count
        rec, step, metrics = run.record, event["step"], event["metrics"]
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
        run.worker.stop.remote(run.record.trial_id)

    def _end(self, gen: Any, event: dict[str, Any], dead: bool = False) -> None:
        run = self.running.pop(gen)
        rec = run.record
        kind = event["kind"]
        status, error, tb = run.decided, run.error, None
        if status is None:
            if kind == "error":
                status, error, tb = "errored", event["error"], event.get("traceback")
            elif rec.iterations == 0:
                status, error = "errored", f"returned without reporting {self.metric!r}"
            else:
                status = "finished"
        self.recorder.end(rec.trial_id, status, error, tb)
        if tb:
            self._write_log(rec.trial_id, tb)
        last: dict[str, Any] | None = (
            {"step": rec.step, self.metric: rec.value} if status in ("finished", "pruned", "stopped") else None
        )
        self.pruner.remove(rec.trial_id, last if rec.value is not None else None)
        value = None if rec.value is None or status in ("errored", "nan") else self.sign * rec.value
        state = "complete" if status == "finished" else "failed" if value is None else "pruned"
        self.searcher.tell(rec.trial_id, Outcome(value, state, rec.step))  # type: ignore[arg-type]
        if dead:
            self._replace(run.worker)
        else:
            self.idle.append(run.worker)
        self._check_goals(rec)

    def _write_log(self, trial_id: str, text: str) -> None:
        logs = self.recorder.folder / "logs"
        logs.mkdir(exist_ok=True)
        (logs / f"{trial_id}.log").write_text(text, encoding="utf-8")

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
            for run in self.running.values():
                if run.decided is None:
                    self._stop(run, "stopped", "stopped at the time limit")
        for gen, run in list(self.running.items()):
            if run.stop_sent is not None and now - run.stop_sent > STOP_GRACE_S:
                self._end(gen, {"kind": "done"}, dead=True)  # killed: it ignored the stop

    def interrupt(self) -> None:
        """End every running trial as ``stopped``."""
        for gen, run in list(self.running.items()):
            if run.decided is None:
                run.decided, run.error = "stopped", "interrupted"
            self._end(gen, {"kind": "done"}, dead=False)

    def release(self) -> None:
        """Free the workers' resources now, not whenever their handles are collected."""
        for worker in self.idle:
            self.ray.kill(worker, no_restart=True)
        self.idle = []


def execute(
    study: Study, seed: int, folder_for: Callable[[], Path], say: Callable[[str], None], quiet: bool = False
) -> Outcomes:
    """Run ``study`` on the connected Ray; results go to the folder ``folder_for()`` makes."""
    res = study.spec.resources
    slots = capacity(res.cpus, res.gpus)
    if slots == 0:
        need = f"{res.cpus:g} CPU" + (f" and {res.gpus:g} GPU" if res.gpus else "")
        raise UserError(f"resources: a trial needs {need}, which no node of this Ray cluster has")
    limits = [slots, study.spec.max_concurrent, study.spec.run_cap]
    slots = min(x for x in limits if x is not None)
    folder = folder_for()
    engine = _Engine(study, seed, folder, say, quiet)
    engine.recorder.save_study({**study.raw, "name": study.name, "seed": seed})
    say(f"running {study.name}: method {study.spec.method}, {slots} trial(s) at a time -> {folder}")
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
    best = engine.recorder.finish({"study": study.name, "study_seed": seed})
    failures = [r for r in engine.recorder.trials.values() if r.status in ("errored", "nan")]
    return Outcomes(folder, best, engine.recorder.counts(), failures, interrupted, engine.stop_reason)
