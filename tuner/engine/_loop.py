"""The study loop: ask the searcher, start trials on a backend's slots, judge reports, end trials.

The loop only reads events and keeps time; each decision is a plain function or small class of
this package (admission, scheduler, retries, goals), so any backend drives the same study: Ray's
worker groups or a simulated clock. Every decision is journaled; :func:`replay` feeds a journal
back through the same methods, so a resumed study has its searcher, scheduler and results exactly
where they were.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from tuner import searchers
from tuner.config import Pb2, Pbt, Study
from tuner.engine._admission import Admission
from tuner.engine._attempts import Attempts, Running
from tuner.engine._backend import Backend
from tuner.engine._checkpoints import Checkpoints
from tuner.engine._closing import Closing
from tuner.engine._judge import Judge
from tuner.engine._offload import SearcherThread, Writer
from tuner.engine._packing import Packing, memory_parameters
from tuner.engine._population import Population, Schedule, changes_for
from tuner.engine._schedulers import Pruner
from tuner.engine._timers import Timers
from tuner.engine._told import minimised_curve
from tuner.progress import Progress
from tuner.results import Recorder, TrialRecord, read_warm_start, write_state
from tuner.searchers import Outcome
from tuner.space import flatten
from tuner.status import Cause, Status
from tuner.storage import CheckpointStore
from tuner.tracking import open_tracking

CAPACITY_WAIT_S = 600.0  # with trials to run and no slot placed for this long, the study stops (resumable)
WAIT_S = 0.1  # the loop's longest wait for an event: how late a timer can fire


def _ends(time_limit: float | None) -> str:
    return f"no run cap: Ctrl-C {'or time_limit ' if time_limit is not None else ''}ends the study"


class Engine:
    """One study on one backend: ``run(slots)``, then ``release()`` (:func:`tuner.engine.execute` does both)."""

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
        schedule: dict[str, list[list[Any]]] | None = None,
    ) -> None:
        spec = study.spec
        self.study, self.seed, self.backend = study, seed, backend
        self.metric = study.metric
        self.say = say or (lambda message: None)
        pruning = None if isinstance(spec.scheduler, Pbt | Pb2) else spec.scheduler
        self.pruner = Pruner(pruning, study.metric, study.maximize, seed)
        self.max_steps = max_steps if max_steps is not None else spec.step_budget
        self.trial_seed = trial_seed  # fixed for every trial (``train`` reproducing a trial)
        points = [flatten(p) for p in spec.points_to_evaluate]
        searcher = searchers.create(
            spec.method, study.space, seed, spec.searcher, spec.run_cap, points=points, objectives=len(spec.objectives)
        )
        self.searcher = SearcherThread(searcher)
        self.writer = Writer()
        tracking = open_tracking(study, folder, seed, self.say)
        self.recorder = Recorder(
            folder, study.metric, study.maximize, objectives=study.objectives, select=spec.select, tracking=tracking
        )
        policy = spec.checkpoints
        self.checkpoints = Checkpoints(
            CheckpointStore(policy.path or str(folder / "checkpoints")),
            keep=policy.keep,
            keep_best=policy.keep_best,
            submit=self.writer.submit,
            journal=self.recorder.checkpoint,
            files=backend.writes_checkpoints,
        )
        self.changes = (
            Schedule(schedule, self.recorder, self.checkpoints)
            if schedule
            else changes_for(study, seed, self.recorder, self.checkpoints, self.say)
        )
        if isinstance(self.changes, Population):  # the population's decisions see every report
            self.pruner.scheduler = self.changes.scheduler
            self.pruner.max_t = self.changes.max_t
        self.progress = Progress(
            self.recorder,
            quiet=quiet,
            time_limit=spec.time_limit,
            run_cap=study.trial_count(),
            until_stopped=None if study.trial_count() is not None else _ends(spec.time_limit),
            searched=list(study.space.searchable),
        )
        self.progress.started -= elapsed  # a resumed run shows (and spends) its whole time budget
        self.admission = Admission(spec.run_cap)
        self.judge = Judge(study, self.recorder, self.pruner, self.max_steps, self.say)
        self.closing = Closing(
            study, self.recorder, self.pruner, self.searcher, self.checkpoints, self.admission, self.judge
        )
        self.attempts = Attempts(
            study,
            backend,
            self.recorder,
            self.checkpoints,
            self.judge,
            self.closing,
            self.writer,
            self.say,
            self.max_steps,
        )
        self.attempts.changes = self.changes
        self.asking: tuple[str, int, Any, float] | None = None  # (trial, slot, future, since): the suggestion in flight
        self.held: tuple[str, dict[str, Any]] | None = None  # (trial, params) suggested, and no slot fits it yet
        self.searcher_wait_s = 0.0  # slot time spent waiting for a suggestion
        self.slots = self.placed = 0
        self.short_since: float | None = None  # since when trials wait and no slot is placed
        self.elapsed_before = elapsed
        self.began = backend.now()
        self.deadline = None if spec.time_limit is None else self.began + spec.time_limit - elapsed
        self.timers = Timers(backend.now)
        self._warm_start()

    @property
    def stop_reason(self) -> str | None:
        return self.admission.stop_reason

    @property
    def end_reason(self) -> str | None:
        """Why no more trials started, as the user is told: a stop, or a searcher that ran out
        short of the study's end (a grid's end is its own)."""
        if self.admission.stop_reason is None and self.admission.exhausted and not self.study.exhaustive:
            return f"the searcher ran out: all {self.admission.launched} configurations of the space were proposed"
        return self.admission.stop_reason

    @property
    def elapsed(self) -> float:
        return self.elapsed_before + self.backend.now() - self.began

    @property
    def trials(self) -> dict[str, Running]:
        return self.attempts.trials

    def _warm_start(self) -> None:
        """Tell the searcher the trials of the studies ``warm_start`` names (before any of its own,
        on every start, so a resumed study's searcher knows them too)."""
        for k, folder in enumerate(self.study.spec.warm_starts):
            assert self.metric is not None  # a warm start needs a metric (load_study)
            warm = read_warm_start(folder, self.study.space, self.metric)
            for i, (params, value, state, step, curve) in enumerate(warm.observations):
                signed = None if curve is None else minimised_curve(self.study, curve)
                told = Outcome(self.study.minimised(value), state, step, curve=signed)  # type: ignore[arg-type]
                self.searcher.tell(f"w{k}.{i:04d}", params, told)
            self.say(warm.line())

    # -- the loop --------------------------------------------------------------------------
    def run(self, slots: int) -> None:
        self.slots = self.placed = slots  # as planned: a change is reported, not the start
        self.backend.open(slots, self.recorder.folder, self.checkpoints.store)
        if self.study.spec.resources.auto_gpus and self.backend.gpus() is not None:
            self.attempts.packing = Packing(memory_parameters(self.study.space))
        now = self.backend.now()
        self.attempts.idle_since = dict.fromkeys(range(slots), now)
        if self.backend.realtime:  # on simulated time a suggestion takes no time: asked inline
            self.searcher.start()
        self._save_state("running")
        while True:
            self._watch()
            while self._resuming() and (slot := self._take(self._params(self.attempts.resumable[0]))) is not None:
                self.attempts.resume(slot, self.attempts.resumable.pop(0))
            self._ask()
            waiting = (bool(self.attempts.resumable) and self.stop_reason is None) or self.admission.can_launch()
            if not self.trials and self.asking is None and self.held is None and not waiting:
                break
            for event in self.backend.poll(0.01 if self.asking is not None else WAIT_S):
                self.attempts.on_event(event)
            self._tick()

    def _resuming(self) -> bool:
        """Whether an unfinished trial goes on next (a population starts its new members first)."""
        if not self.attempts.resumable or self.stop_reason is not None:
            return False
        return not (self.changes.new_first and self.admission.can_launch())

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
        return min(finished, key=self.study.minimised) if finished else None

    def _take(self, params: dict[str, Any] | None = None) -> int | None:
        """A free slot that can take a trial of ``params`` (``None``: of some configuration) now:
        with ``gpus: auto``, one whose GPU has room for it (:class:`tuner.engine.Packing`)."""
        packing = self.attempts.packing
        if packing is None:
            return self.backend.free()
        gpus = self.backend.gpus() or {}
        workers = Counter(gpu.key for gpu in gpus.values())  # each slot's worker holds a CUDA context
        return self.backend.free(
            lambda slot: slot in gpus and packing.admits(gpus[slot], params, workers[gpus[slot].key])
        )

    def _params(self, trial_id: str) -> dict[str, Any]:
        return self.recorder.trials[trial_id].params

    def _watch(self) -> None:
        """Notice the cluster shrinking or growing: say so in one line, use new room, and stop
        (resumably) when nothing can run for ``CAPACITY_WAIT_S``."""
        if not self.timers.due("watch", 2.0, first=False):
            return
        now = self.backend.now()
        wanted = self.study.concurrency(self.backend.capacity()) if self.stop_reason is None else 0
        placed = self.backend.watch(wanted)
        for slot in range(self.slots, max(wanted, self.slots)):
            self.attempts.idle_since[slot] = now
        self.slots = max(self.slots, wanted)
        if placed != self.placed:
            change = "shrank" if placed < self.placed else "grew"
            self.say(f"the cluster {change}: {placed} of {self.slots} slot(s) can run trials now")
            self.placed = placed
        if placed == 0 and (self.attempts.resumable or self.admission.can_launch()):
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
        if self._resuming():
            return  # an unfinished trial waits for room (gpus: auto): it goes first
        while True:
            if self.asking is not None and self.asking[2].done():
                (trial_id, slot, future, since), self.asking = self.asking, None
                params = future.result()
                if params is None:
                    self.admission.exhausted = True
                else:  # the slot's idle time until now was spent waiting for the searcher
                    now = self.backend.now()
                    self.searcher_wait_s += now - self.attempts.idle_since.get(slot, since)
                    self.attempts.idle_since[slot] = now
                    self.held = (trial_id, params)
            if self.held is not None and not self._place():
                return
            if self.asking is not None or not self.admission.can_launch() or (free := self._take()) is None:
                return
            trial_id = self.admission.next_id()
            self.asking = (trial_id, free, self.searcher.suggest(trial_id), self.backend.now())
            if self.backend.realtime:
                return

    def _place(self) -> bool:
        """Start the suggested trial on a free slot that can take its configuration (with
        ``gpus: auto``, it may wait for room on a GPU); ``False``: none can yet."""
        assert self.held is not None
        trial_id, params = self.held
        if self.stop_reason is not None:  # the study stopped meanwhile: no new trial
            self.held = None
            return True
        slot = self._take(self.study.space.complete(params))
        if slot is None:
            return False
        self.held = None
        self.attempts.idle_since.pop(slot, None)
        record = self._open(trial_id, params, self.backend.wall())
        record.suggest_s = round(self.searcher.suggest_s[-1], 4) if self.searcher.suggest_s else None
        self.recorder.start(record)
        self.attempts.start(Running(record, slot, self.attempts.launch(record)))
        return True

    def _open(self, trial_id: str, params: dict[str, Any], started: float) -> TrialRecord:
        self.admission.launched += 1
        flat = self.study.space.complete(params)
        n = self.admission.launched
        trial_seed = self.trial_seed if self.trial_seed is not None else (self.seed * 1_000_003 + n) % 2**31
        record = TrialRecord(
            trial_id=trial_id, params=flat, config=self.study.space.nest(flat), seed=trial_seed, started=started
        )
        self.pruner.add(trial_id)
        return record

    def _enforce_limits(self) -> None:
        now = self.backend.now()
        if self.deadline is not None and now >= self.deadline:
            self.admission.halt("time_limit reached")
            self.attempts.stop_all("stopped at the time limit")
        self.attempts.halt_if_asked()
        self.attempts.check_stalls(now)

    def finish(self, trial_id: str, status: Status, error: str | None, **details: Any) -> None:
        self.attempts.finish(trial_id, status, error, **details)

    def rewind(self, trial_id: str, step: float | None, error: str | None, cause: Cause | None = None) -> None:
        self.closing.rewind(trial_id, step, error, cause)

    # -- the end ---------------------------------------------------------------------------
    def interrupt(self) -> None:
        """Stop now, leaving running trials open in the journal so that ``resume`` continues them."""
        self.attempts.trials.clear()
        self.asking = None

    def release(self) -> None:
        """Free the backend's slots now; let the searcher go and write out everything still
        waiting for the disk."""
        self.backend.close()
        self.searcher.close()
        self.writer.close()
