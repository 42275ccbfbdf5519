"""The study loop: ask the searcher, start trials on a backend's slots, judge reports, end trials.

The loop only reads events and keeps time; each decision is a plain function or small class of
this package (admission, scheduler, retries, goals), so any backend drives the same study: Ray's
worker groups or a simulated clock. Every decision is journaled; :func:`replay` feeds a journal
back through the same methods, so a resumed study has its searcher, scheduler and results exactly
where they were.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuner import searchers
from tuner.config import Study
from tuner.diagnose import LEAK_HINT, diagnose, leak_per_step
from tuner.engine import _goals as goals
from tuner.engine import _retries as retries
from tuner.engine._admission import Admission
from tuner.engine._backend import Backend, End, Event, Launch, Report
from tuner.engine._checkpoints import Checkpoints
from tuner.engine._direction import minimised, minimised_curve, outcome
from tuner.engine._offload import SearcherThread, Writer
from tuner.engine._schedulers import Pruner
from tuner.engine._timers import Timers
from tuner.progress import Progress
from tuner.results import FAILED, Recorder, TrialRecord, read_warm_start, write_state
from tuner.searchers import Outcome
from tuner.space import flatten, nest
from tuner.storage import CheckpointStore

CAPACITY_WAIT_S = 600.0  # with trials to run and no slot placed for this long, the study stops (resumable)
WAIT_S = 0.1  # the loop's longest wait for an event: how late a timer can fire


@dataclass
class Running:
    """A trial between its start on a slot and its end."""

    record: TrialRecord
    slot: int
    launch: Launch
    failures: int = 0  # retries that counted against max_failures
    decided: str | None = None  # the status the engine chose before the trial ended
    error: str | None = None
    stop_sent: float | None = None
    last_seen: float = 0.0  # its start or its last report (the stall timer)
    rss_mb: list[float] = field(default_factory=list)  # rank 0's resident memory at each report
    gpu_mb: list[float] = field(default_factory=list)  # and its GPU memory allocated, on CUDA


class Engine:
    """One study on one backend: ``run(slots)``, then ``summary()`` and ``release()``."""

    def __init__(
        self,
        study: Study,
        seed: int,
        folder: Path,
        backend: Backend,
        *,
        quiet: bool = True,
        elapsed: float = 0.0,
        trial_seed: int | None = None,
        max_steps: int | None = None,
        say: Any = None,
    ) -> None:
        spec = study.spec
        self.study, self.seed, self.backend = study, seed, backend
        self.metric = study.metric
        self.say = say or (lambda message: None)
        self.pruner = Pruner(spec.scheduler, study.metric, study.maximize, seed)
        self.max_steps = max_steps if max_steps is not None else self.pruner.max_t
        self.trial_seed = trial_seed  # fixed for every trial (``train`` reproducing a trial)
        points = [flatten(p) for p in spec.points_to_evaluate]
        searcher = searchers.create(
            spec.method, study.space, seed, spec.searcher, spec.run_cap, points=points, objectives=len(spec.objectives)
        )
        self.searcher = SearcherThread(searcher)
        self.writer = Writer()
        self.recorder = Recorder(folder, study.metric, study.maximize, objectives=study.objectives, select=spec.select)
        policy = spec.checkpoints
        self.checkpoints = Checkpoints(
            CheckpointStore(policy.path or str(folder / "checkpoints")),
            keep=policy.keep,
            keep_best=policy.keep_best,
            submit=self.writer.submit,
            journal=self.recorder.checkpoint,
        )
        self.progress = Progress(
            self.recorder,
            quiet=quiet,
            time_limit=spec.time_limit,
            run_cap=spec.run_cap,
            searched=list(study.space.searchable),
        )
        self.progress.started -= elapsed  # a resumed run shows (and spends) its whole time budget
        self.admission = Admission(spec.run_cap)
        self.trials: dict[str, Running] = {}
        self.resumable: list[str] = []  # unfinished trials (an earlier session's, a lost node's), started first
        self._requeued: set[str] = set()  # of them, those whose node was lost (already rewound)
        self.idle_since: dict[int, float] = {}  # slot -> when it became free for a new trial
        self.asking: tuple[str, int, Any, float] | None = None  # (trial, slot, future, since): the suggestion in flight
        self.searcher_wait_s = 0.0  # slot time spent waiting for a suggestion
        self.slots = self.placed = 0
        self.short_since: float | None = None  # since when trials wait and no slot is placed
        self._valued = False  # whether any trial has reported a finite value (fail-fast rule)
        self.elapsed_before = elapsed
        self.began = backend.now()
        self.deadline = None if spec.time_limit is None else self.began + spec.time_limit - elapsed
        self.timers = Timers(backend.now)
        self._warm_start()

    @property
    def stop_reason(self) -> str | None:
        return self.admission.stop_reason

    @property
    def elapsed(self) -> float:
        return self.elapsed_before + self.backend.now() - self.began

    def _warm_start(self) -> None:
        """Tell the searcher the trials of the studies ``warm_start`` names (before any of its own,
        on every start, so a resumed study's searcher knows them too)."""
        for k, folder in enumerate(self.study.spec.warm_starts):
            warm = read_warm_start(folder, self.study.space, self.metric)
            for i, (params, value, state, step, curve) in enumerate(warm.observations):
                signed = None if curve is None else minimised_curve(self.study, curve)
                told = Outcome(minimised(self.study, value), state, step, curve=signed)  # type: ignore[arg-type]
                self.searcher.tell(f"w{k}.{i:04d}", params, told)
            self.say(warm.line())

    # -- the loop --------------------------------------------------------------------------
    def run(self, slots: int) -> None:
        self.slots = self.placed = slots  # as planned: a change is reported, not the start
        self.backend.open(slots, self.recorder.folder, self.checkpoints.store)
        now = self.backend.now()
        self.idle_since = dict.fromkeys(range(slots), now)
        if self.backend.realtime:  # on simulated time a suggestion takes no time: asked inline
            self.searcher.start()
        self._save_state("running")
        while True:
            self._watch()
            while self.resumable and self.stop_reason is None and (slot := self._take()) is not None:
                self._continue(slot, self.resumable.pop(0))
            self._ask()
            waiting = (bool(self.resumable) and self.stop_reason is None) or self.admission.can_launch()
            if not self.trials and self.asking is None and not waiting:
                break
            for event in self.backend.poll(0.01 if self.asking is not None else WAIT_S):
                self._on_event(event)
            self._tick()

    def _tick(self) -> None:
        """What runs every pass but need not run on every event: limits, files, the live view."""
        if self.timers.due("limits", 0.25):
            self._enforce_limits()
        self.searcher.check()
        snapshot = self.recorder.snapshot()
        if snapshot is not None:
            self.writer.submit("snapshot", snapshot)
        if self.timers.due("state", 2.0):  # the elapsed time resume counts on
            self._save_state("running")
        self.progress.update()
        if self.timers.due("observe", 1.0, real=True):
            self.backend.observe(self.recorder.counts(), self._best_finished())

    def _save_state(self, state: str) -> None:
        folder, elapsed = self.recorder.folder, self.elapsed
        self.writer.submit("state", lambda: write_state(folder, state, elapsed))

    def _best_finished(self) -> float | None:
        finished = [r.value for r in self.recorder.trials.values() if r.status == "finished" and r.value is not None]
        return (max if self.study.maximize else min)(finished) if finished else None

    def _take(self) -> int | None:
        free = self.backend.free()
        return None if not free else free[0]

    def _watch(self) -> None:
        """Notice the cluster shrinking or growing: say so in one line, use new room, and stop
        (resumably) when nothing can run for ``CAPACITY_WAIT_S``."""
        if not self.timers.due("watch", 2.0, first=False):
            return
        now = self.backend.now()
        wanted = self.study.concurrency(self.backend.capacity()) if self.stop_reason is None else 0
        placed = self.backend.watch(wanted)
        for slot in range(self.slots, max(wanted, self.slots)):
            self.idle_since[slot] = now
        self.slots = max(self.slots, wanted)
        if placed != self.placed:
            change = "shrank" if placed < self.placed else "grew"
            self.say(f"the cluster {change}: {placed} of {self.slots} slot(s) can run trials now")
            self.placed = placed
        if placed == 0 and (self.resumable or self.admission.can_launch()):
            self.short_since = self.short_since if self.short_since is not None else now
            if now - self.short_since > CAPACITY_WAIT_S:
                self.admission.halt(
                    f"no node could take a trial for {CAPACITY_WAIT_S:.0f} s (resume when the cluster has room)"
                )
        else:
            self.short_since = None

    def _ask(self) -> None:
        """Keep one suggestion in flight while a slot is free; start its trial when it comes. On
        simulated time suggestions come at once, so every free slot is filled in one pass."""
        while True:
            if self.asking is not None and self.asking[2].done():
                (trial_id, slot, future, since), self.asking = self.asking, None
                params = future.result()
                if params is None:
                    self.admission.exhausted = True
                elif self.stop_reason is None:  # else the study stopped meanwhile: no new trial
                    self.searcher_wait_s += self.backend.now() - self.idle_since.pop(slot, since)
                    record = self._open(trial_id, params, self.backend.wall())
                    record.suggest_s = round(self.searcher.suggest_s[-1], 4) if self.searcher.suggest_s else None
                    self.recorder.start(record)
                    self._start(Running(record, slot, self._launch(record)))
            if self.asking is not None or not self.admission.can_launch() or (free := self._take()) is None:
                return
            trial_id = self.admission.next_id()
            self.asking = (trial_id, free, self.searcher.suggest(trial_id), self.backend.now())
            if self.backend.realtime:
                return

    def _open(self, trial_id: str, params: dict[str, Any], started: float) -> TrialRecord:
        self.admission.launched += 1
        flat = self.study.space.complete(params)
        n = self.admission.launched
        trial_seed = self.trial_seed if self.trial_seed is not None else (self.seed * 1_000_003 + n) % 2**31
        record = TrialRecord(trial_id=trial_id, params=flat, config=nest(flat), seed=trial_seed, started=started)
        self.pruner.add(trial_id)
        return record

    def _launch(self, record: TrialRecord, checkpoint: str | None = None, accumulation: int = 1) -> Launch:
        return Launch(
            record.trial_id,
            record.config,
            record.seed,
            self.max_steps,
            checkpoint=checkpoint,
            accumulation=accumulation,
            final=self.study.spec.final,
        )

    def _start(self, run: Running) -> None:
        """Start (or restart) a trial on its slot: the one place trials begin."""
        self.trials[run.record.trial_id] = run
        run.last_seen = self.backend.now()
        nodes = self.backend.start(run.slot, run.launch)
        self.recorder.placed(run.record.trial_id, nodes)

    def _continue(self, slot: int, trial_id: str) -> None:
        """Continue an unfinished trial from its last checkpoint: one an earlier session left, or
        one whose node was lost."""
        self.idle_since.pop(slot, None)
        record = self.recorder.trials[trial_id]
        step, path = self.checkpoints.last(trial_id)
        if trial_id not in self._requeued:
            self.rewind(trial_id, step, "resumed")
        self._requeued.discard(trial_id)
        self._start(Running(record, slot, self._launch(record, path)))

    # -- events ----------------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        run = self.trials.get(event.trial_id)
        if run is None:
            return  # a late event of a trial already ended (an interrupt, an abort)
        if isinstance(event, Report):
            self._on_report(run, event)
        else:
            self._on_end(run, event)

    def _on_report(self, run: Running, event: Report) -> None:
        run.last_seen = self.backend.now()
        if run.decided is not None:
            return  # the trial was already stopped; late reports do not count
        trial_id, step = run.record.trial_id, event.step
        status, error = self.judge(trial_id, step, event.time, event.metrics)
        if event.checkpoint is not None:  # journaled after its report, so that a replay knows its value
            value = event.metrics.get(self.metric)
            self.checkpoints.saved(
                trial_id, step, event.checkpoint, None if value is None else minimised(self.study, value)
            )
        if status is None and event.rss_mb is not None:
            status, error = self._leaking(run, event.rss_mb, event.gpu_mb)
        if status is not None:
            self._stop(run, status, error)

    def judge(self, trial_id: str, step: float, elapsed: float, metrics: dict[str, float]) -> tuple[Any, Any]:
        """Record a report and decide whether the trial ends here: ``(status, error)``."""
        if self.metric not in metrics:
            reported = ", ".join(sorted(metrics)) or "nothing"
            return "errored", f"metric {self.metric!r} was not reported at step {step} (reported: {reported})"
        self.recorder.report(trial_id, step, elapsed, metrics)
        value = metrics[self.metric]
        if not math.isfinite(value):
            return "nan", f"{self.metric} is {value} at step {step}"
        self._valued = True
        if self.max_steps is not None and step >= self.max_steps:
            return "finished", None
        if self.pruner.should_stop(trial_id, step, value):
            return "pruned", None
        return None, None

    def _leaking(self, run: Running, rss_mb: float, gpu_mb: float | None) -> tuple[str | None, str | None]:
        """Watch rank 0's memory (resident, and GPU memory allocated on CUDA); a steady growth of
        either is flagged once. ``("errored", why)`` when ``on_leak: stop`` ends the trial for it."""
        run.rss_mb.append(rss_mb)
        if gpu_mb is not None:
            run.gpu_mb.append(float(gpu_mb))
        rec = run.record
        rec.usage["peak_rss_mb"] = round(max(rss_mb, rec.usage.get("peak_rss_mb", 0.0)), 1)  # live, until its end
        if rec.leak_mb_per_step is not None:
            return None, None
        which, mb = "", leak_per_step(run.rss_mb)
        if mb is None and run.gpu_mb:
            which, mb = "GPU ", leak_per_step(run.gpu_mb)
        if mb is None:
            return None, None
        self.recorder.leak(rec.trial_id, round(mb, 1))
        found = which + LEAK_HINT.format(mb=mb)
        if self.study.spec.on_leak == "stop":
            self.say(f"{rec.trial_id}: {found}; stopped (on_leak: stop)")
            return "errored", f"{which}memory grows by {mb:.1f} MB a step"
        self.say(f"{rec.trial_id}: {found} (on_leak: stop ends such trials)")
        return None, None

    def _stop(self, run: Running, status: str, error: str | None = None) -> None:
        run.decided, run.error, run.stop_sent = status, error, self.backend.now()
        self.backend.stop(run.record.trial_id)

    def _on_end(self, run: Running, event: End) -> None:
        """A trial's processes have all ended: retry it, continue it elsewhere, or record how it ended."""
        rec = run.record
        del self.trials[rec.trial_id]
        stop_s = None if run.stop_sent is None else round(self.backend.now() - run.stop_sent, 3)
        status, error = run.decided, run.error
        if status is None:
            if event.error is not None:
                status, error = ("oom" if event.oom else "errored"), event.error
            elif rec.iterations == 0:
                status, error = "errored", f"returned without reporting {self.metric!r}"
            else:
                status = "finished"
        if event.traceback:
            self._write_log(rec.trial_id, rec.attempts, event.traceback)
        if retries.requeue(event.lost, run.decided is not None, rec.infra_retries):
            self._requeue(run, error)
            return
        found = diagnose(status, error, rec.config)
        cause = event.cause or (found.cause if found else None)
        if run.decided is None and status in FAILED:
            action = self.study.spec.failure_action(cause)
            again = retries.retry(status, action, run.failures, self.study.spec.max_failures, run.launch.accumulation)
            if again is not None:
                step, path = self.checkpoints.last(rec.trial_id)
                self.rewind(rec.trial_id, step, error)
                rec.attempts += 1
                launch = self._launch(rec, path, again.accumulation)
                self._start(Running(rec, run.slot, launch, failures=run.failures + again.counted))
                return
        self.finish(rec.trial_id, status, error, stop_s=stop_s, usage=event.usage, cause=event.cause, hint=event.hint)
        self.idle_since[run.slot] = self.backend.now()

    def _requeue(self, run: Running, error: str | None) -> None:
        """A trial whose node was lost: continued from its last checkpoint on the next slot that
        is placed on live nodes; not counted against ``max_failures``."""
        trial_id = run.record.trial_id
        step, _ = self.checkpoints.last(trial_id)
        self.rewind(trial_id, step, error, cause="node_lost")
        run.record.attempts += 1
        run.record.infra_retries += 1
        self.resumable.insert(0, trial_id)
        self._requeued.add(trial_id)
        self.idle_since[run.slot] = self.backend.now()
        self.say(f"{trial_id}: its node was lost; it continues from step {step or 0} on a live node")

    def rewind(self, trial_id: str, step: float | None, error: str | None, cause: str | None = None) -> None:
        """The trial goes on from its checkpoint at ``step``: reports and checkpoints after it are forgotten."""
        self.recorder.rewind(trial_id, step, error, cause=cause)
        self.checkpoints.rewind(trial_id, step)

    def finish(
        self,
        trial_id: str,
        status: str,
        error: str | None,
        *,
        at: float | None = None,
        stop_s: float | None = None,
        usage: dict[str, float] | None = None,
        cause: str | None = None,
        hint: str | None = None,
    ) -> None:
        """Record the end of a trial and tell the searcher and the scheduler (live and in replay)."""
        at = at if at is not None else self.backend.wall()
        self.recorder.end(trial_id, status, error, at=at, stop_s=stop_s, usage=usage, cause=cause, hint=hint)
        rec = self.recorder.trials[trial_id]
        last = {"step": rec.step, self.metric: rec.value} if status in ("finished", "pruned", "stopped") else None
        self.pruner.remove(trial_id, last if rec.value is not None else None)
        action = rec.action = self.study.spec.failure_action(rec.cause) if status in FAILED else None
        if action == "stop" and not self.recorder.replaying and self.stop_reason is None:
            self.admission.halt(f"{trial_id} failed with {rec.cause} (on_failure: {{{rec.cause}: stop}})")
            for run in self.trials.values():
                if run.decided is None:
                    self._stop(run, "stopped", f"stopped: {trial_id} failed with {rec.cause}")
        curve = minimised_curve(self.study, self.recorder.curve(trial_id)) if self.pruner.prunes else None
        self.searcher.tell(trial_id, self._searched(rec), outcome(self.study, rec, action, curve))
        self._check_goals(rec)

    def _searched(self, rec: TrialRecord) -> dict[str, Any]:
        return {k: v for k, v in rec.params.items() if k in self.study.space.searchable}

    def _check_goals(self, rec: TrialRecord) -> None:
        reason = goals.reached(self.study, rec.trial_id, rec.status, rec.value)
        if reason is not None:
            self.admission.halt(reason)
        counts = self.recorder.counts()
        failed = sum(counts[s] for s in FAILED)
        if failed >= goals.FAIL_FAST and not self._valued:  # a value reported before a resume counts too
            self._valued = any(r.value is not None and math.isfinite(r.value) for r in self.recorder.trials.values())
        reason = goals.too_many_failures(self.study, failed, self._valued)
        if reason is not None:
            self.admission.halt(reason)

    def _write_log(self, trial_id: str, attempt: int, text: str) -> None:
        logs = self.recorder.folder / "logs"
        name = f"{trial_id}.log" if attempt == 0 else f"{trial_id}.attempt{attempt}.log"

        def write() -> None:
            logs.mkdir(exist_ok=True)
            (logs / name).write_text(text, encoding="utf-8")

        self.writer.submit(f"log:{name}", write)

    def _enforce_limits(self) -> None:
        now = self.backend.now()
        stall = self.study.spec.stall_timeout
        if self.deadline is not None and now >= self.deadline:
            self.admission.halt("time_limit reached")
            for run in self.trials.values():
                if run.decided is None:
                    self._stop(run, "stopped", "stopped at the time limit")
        if stall:
            for run in list(self.trials.values()):
                if run.decided is None and now - run.last_seen > stall:
                    self._stalled(run, now - run.last_seen)

    def _stalled(self, run: Running, silent_s: float) -> None:
        """A trial that stopped reporting: where each rank is, then its processes ended and its slot freed."""
        from tuner.engine._stacks import innermost

        stacks = self.backend.abort(run.record.trial_id)
        rec = run.record
        after = f"after step {rec.step:g}" if rec.step is not None else "before its first report"
        where = innermost(stacks[0]) if stacks else "an unknown place"
        event = End(
            rec.trial_id,
            error=f"stalled: no report for {silent_s:.0f} s {after}; rank 0 was at {where}",
            traceback="\n\n".join(f"--- rank {rank} ---\n{text}" for rank, text in enumerate(stacks)) or None,
            cause="stalled",
            hint=f"it stopped reporting (stall_timeout {self.study.spec.stall_timeout:g} s): a deadlock, a "
            "blocking read, or a step longer than the timeout; the ranks' stacks are in its log",
        )
        self._on_end(run, event)

    # -- the end ---------------------------------------------------------------------------
    def interrupt(self) -> None:
        """Stop now, leaving running trials open in the journal so that ``resume`` continues them."""
        self.trials.clear()
        self.asking = None

    def release(self) -> None:
        """Free the backend's slots now; let the searcher go and write out everything still
        waiting for the disk."""
        self.backend.close()
        self.searcher.close()
        self.writer.close()
