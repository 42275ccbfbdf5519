"""A trial's attempts on the backend's slots: started, judged report by report, stopped, ended,
retried from a checkpoint or continued elsewhere."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tuner.config import Study
from tuner.diagnose import diagnose
from tuner.engine import _retries as retries
from tuner.engine._backend import Backend, End, Event, Launch, Memory, Report
from tuner.engine._checkpoints import Checkpoints
from tuner.engine._closing import Closing
from tuner.engine._judge import Judge
from tuner.engine._offload import Writer
from tuner.engine._packing import Packing
from tuner.engine._population import Changes
from tuner.engine._stacks import innermost
from tuner.results import Recorder, TrialRecord
from tuner.status import FAILED, Cause, Status

START_S = 30.0  # the least start-up a trial is given before its first report, beyond stall_timeout


@dataclass
class Running:
    """A trial between its start on a slot and its end."""

    record: TrialRecord
    slot: int
    launch: Launch
    failures: int = 0  # retries that counted against max_failures
    decided: Status | None = None  # the status the engine chose before the trial ended
    error: str | None = None
    stop_sent: float | None = None
    last_seen: float = 0.0  # its start or its last report (the stall timer)
    reported: bool = False  # this attempt has reported: its start-up is over
    rss_mb: list[float] = field(default_factory=list)  # rank 0's resident memory at each report
    gpu_mb: list[float] = field(default_factory=list)  # and its GPU memory allocated, on CUDA
    restart: bool = False  # stopped to go on later from its checkpoint (new values, or its slot given up)


class Attempts:
    """The running trials, each on its slot; every attempt of a trial begins in :meth:`start`."""

    def __init__(
        self,
        study: Study,
        backend: Backend,
        recorder: Recorder,
        checkpoints: Checkpoints,
        judge: Judge,
        closing: Closing,
        writer: Writer,
        say: Callable[[str], None],
        max_steps: int | None,
    ) -> None:
        self.study, self.backend, self.recorder, self.checkpoints = study, backend, recorder, checkpoints
        self.judge, self.closing, self.writer, self.say, self.max_steps = judge, closing, writer, say, max_steps
        self.metric = study.metric
        self.trials: dict[str, Running] = {}
        self.resumable: list[str] = []  # unfinished trials (an earlier session's, a lost node's), started first
        self._requeued: set[str] = set()  # of them, those whose node was lost (already rewound)
        self.idle_since: dict[int, float] = {}  # slot -> when it became free for a new trial
        self.changes = Changes()  # values changed during training (a population's exploits, a schedule)
        self.packing: Packing | None = None  # gpus: auto on GPUs: which slot may take a trial

    def launch(self, record: TrialRecord, checkpoint: str | None = None, accumulation: int = 1) -> Launch:
        return Launch(
            record.trial_id,
            record.config,
            record.seed,
            self.max_steps,
            checkpoint=checkpoint,
            accumulation=accumulation,
            final=self.study.spec.final,
        )

    def start(self, run: Running) -> None:
        """Start (or restart) a trial on its slot: the one place trials begin."""
        self.trials[run.record.trial_id] = run
        run.last_seen = self.backend.now()
        gpu = None if self.packing is None else (self.backend.gpus() or {}).get(run.slot)
        if self.packing is not None and gpu is not None:
            self.packing.started(run.record.trial_id, gpu, run.record.params)
        nodes = self.backend.start(run.slot, run.launch)
        self.recorder.placed(run.record.trial_id, nodes)

    def resume(self, slot: int, trial_id: str) -> None:
        """Continue an unfinished trial from its last checkpoint: one an earlier session left, or
        one whose node was lost."""
        self.idle_since.pop(slot, None)
        record = self.recorder.trials[trial_id]
        step, path = self.checkpoints.last(trial_id)
        if trial_id not in self._requeued:
            self.closing.rewind(trial_id, step, "resumed")
        self._requeued.discard(trial_id)
        self.start(Running(record, slot, self.launch(record, path)))

    # -- events ----------------------------------------------------------------------------
    def on_event(self, event: Event) -> None:
        run = self.trials.get(event.trial_id)
        if run is None:
            return  # a late event of a trial already ended (an interrupt, an abort)
        if isinstance(event, Memory):  # a settled appetite, before or between reports
            if self.packing is not None:
                self.packing.settled(event.trial_id, event.gpu_reserved_mb)
        elif isinstance(event, Report):
            self._on_report(run, event)
        else:
            self._on_end(run, event)

    def _on_report(self, run: Running, event: Report) -> None:
        run.last_seen, run.reported = self.backend.now(), True
        if self.packing is not None and (event.gpu_mb is not None or event.gpu_reserved_mb is not None):
            self.packing.measured(event.trial_id, float(max(event.gpu_mb or 0.0, event.gpu_reserved_mb or 0.0)))
        if run.decided is not None:
            return  # the trial was already stopped; late reports do not count
        trial_id, step = run.record.trial_id, event.step
        status, error = self.judge.report(trial_id, step, event.time, event.metrics)
        self.halt_if_asked()
        if event.checkpoint is not None:  # journaled after its report, so that a replay knows its value
            value = None if self.metric is None else event.metrics.get(self.metric)
            self.checkpoints.saved(
                trial_id, step, event.checkpoint, None if value is None else self.study.minimised(value)
            )
        if status is None and event.rss_mb is not None:
            run.rss_mb.append(event.rss_mb)
            if event.gpu_mb is not None:
                run.gpu_mb.append(float(event.gpu_mb))
            status, error = self.judge.memory(run.record, run.rss_mb, run.gpu_mb)
        if status is None:
            waiting = self.closing.admission.can_launch() or bool(self.resumable)
            if self.changes.decide(run.record, step, waiting):
                run.restart = True
                self._stop(run, "stopped")
        elif status is not None:
            self._stop(run, status, error)

    def _stop(self, run: Running, status: Status, error: str | None = None) -> None:
        run.decided, run.error, run.stop_sent = status, error, self.backend.now()
        self.backend.stop(run.record.trial_id)

    def _on_end(self, run: Running, event: End) -> None:
        """A trial's processes have all ended: retry it, continue it elsewhere, or record how it ended."""
        rec = run.record
        del self.trials[rec.trial_id]
        neighbours = 0
        if self.packing is not None:
            peak = event.usage.get("peak_gpu_reserved_mb") or event.usage.get("peak_gpu_mb")
            neighbours = self.packing.ended(rec.trial_id, peak, oom=event.oom and run.decided is None)
        if run.restart:  # it goes on from its checkpoint, with its new values, when a slot is free
            self.resumable.append(rec.trial_id)
            self.idle_since[run.slot] = self.backend.now()
            return
        stop_s = None if run.stop_sent is None else round(self.backend.now() - run.stop_sent, 3)
        status, error = run.decided, run.error
        if status is None:
            if event.error is not None:
                status, error = ("oom" if event.oom else "errored"), event.error
            elif rec.iterations == 0:
                what = "anything" if self.metric is None else repr(self.metric)
                status, error = "errored", f"returned without reporting {what}"
            else:
                status = "finished"
        if event.traceback:
            self._write_log(rec.trial_id, rec.attempts, event.traceback)
        if retries.requeue(event.lost, run.decided is not None, rec.infra_retries):
            self._requeue(run, error)
            return
        if neighbours and status == "oom" and rec.infra_retries < retries.INFRA_RETRIES:
            self._repack(run, error, neighbours)
            return
        own = run.decided is None  # the trial's own end, not one the engine decided
        detail, given = (event.traceback, event.cause) if own else (None, None)
        found = diagnose(status, error, rec.config, detail, cause=given)  # the one diagnosis of this attempt
        cause = found.cause if found else None
        if run.decided is None and status in FAILED:
            action = self.study.spec.failure_action(cause)
            again = retries.retry(status, action, run.failures, self.study.spec.max_failures, run.launch.accumulation)
            if again is not None:
                step, path = self.checkpoints.last(rec.trial_id)
                self.closing.rewind(rec.trial_id, step, error)
                rec.attempts += 1
                launch = self.launch(rec, path, again.accumulation)
                self.start(Running(rec, run.slot, launch, failures=run.failures + again.counted))
                return
        hint = found.hint if found else None
        self.finish(rec.trial_id, status, error, stop_s=stop_s, usage=event.usage, cause=cause, hint=hint)
        self.idle_since[run.slot] = self.backend.now()

    def _requeue(self, run: Running, error: str | None) -> None:
        """A trial whose node was lost: continued from its last checkpoint on the next slot that
        is placed on live nodes; not counted against ``max_failures``."""
        trial_id = run.record.trial_id
        step = self._again(run, error, cause="node_lost")
        self.say(f"{trial_id}: its node was lost; it continues from step {step or 0} on a live node")

    def _again(self, run: Running, error: str | None, cause: Cause) -> float | None:
        """Queue the trial to continue, first, from its last checkpoint (returned: its step), the
        attempt not charged to ``max_failures``; its slot is idle from now."""
        trial_id = run.record.trial_id
        step, _ = self.checkpoints.last(trial_id)
        self.closing.rewind(trial_id, step, error, cause=cause)
        run.record.attempts += 1
        run.record.infra_retries += 1
        self.resumable.insert(0, trial_id)
        self._requeued.add(trial_id)
        self.idle_since[run.slot] = self.backend.now()
        return step

    def _repack(self, run: Running, error: str | None, neighbours: int) -> None:
        """Out of memory next to other trials on its GPU (``gpus: auto``): not the configuration's
        fault; it goes on from its last checkpoint on a GPU with fewer neighbours, not charged to
        ``max_failures`` (:class:`tuner.engine.Packing` has backed that GPU's limit off)."""
        assert self.packing is not None
        trial_id = run.record.trial_id
        step = self._again(run, error, cause="oom")
        gpu = (self.backend.gpus() or {}).get(run.slot)
        where = f" on {gpu.key}" if gpu is not None else ""
        limit = self.packing.limit(gpu) if gpu is not None else None
        then = (
            f"; that GPU and any other of its {gpu.total_mb:.0f} MB run at most {limit} trial(s) at once from now on"
            if gpu is not None and limit is not None
            else ""
        )
        self.say(
            f"{trial_id}: out of memory next to {neighbours} other trial(s){where}; it continues from step "
            f"{step or 0} with fewer neighbours{then}"
        )

    def finish(self, trial_id: str, status: Status, error: str | None, **details: Any) -> None:
        """Record a trial's end (live and in replay); ``on_failure: stop`` stops the trials still running."""
        details.setdefault("at", None)
        if details["at"] is None:
            details["at"] = self.backend.wall()
        running = self.closing.admission.stop_reason is None
        if self.closing.finish(trial_id, status, error, **details) == "stop" and running:
            self.stop_all(f"stopped: {trial_id} failed with {self.recorder.trials[trial_id].cause}")

    def _write_log(self, trial_id: str, attempt: int, text: str) -> None:
        logs = self.recorder.folder / "logs"
        name = f"{trial_id}.log" if attempt == 0 else f"{trial_id}.attempt{attempt}.log"

        def write() -> None:
            logs.mkdir(exist_ok=True)
            (logs / name).write_text(text, encoding="utf-8")

        self.writer.submit(f"log:{name}", write)

    def _stalled(self, run: Running, silent_s: float) -> None:
        """A trial that stopped reporting: where each rank is, then its processes ended and its slot freed."""
        stacks = self.backend.abort(run.record.trial_id)
        rec = run.record
        after = f"after step {rec.step:g}" if rec.step is not None else "before its first report"
        where = innermost(stacks[0]) if stacks else "an unknown place"
        event = End(
            rec.trial_id,
            error=f"stalled: no report for {silent_s:.0f} s {after}; rank 0 was at {where}",
            traceback="\n\n".join(f"--- rank {rank} ---\n{text}" for rank, text in enumerate(stacks)) or None,
            cause="stalled",
        )
        self._on_end(run, event)

    def halt_if_asked(self) -> None:
        """The study's ``stopper`` ends the study (``stop_all()``): no more trials start and the
        running ones are stopped, as at the time limit."""
        why = self.judge.halt()
        if why is not None and self.closing.admission.stop_reason is None:
            self.closing.admission.halt(why)
            self.stop_all(f"stopped: {why}")

    def stop_all(self, error: str) -> None:
        for run in self.trials.values():
            if run.decided is None:
                self._stop(run, "stopped", error)

    def check_stalls(self, now: float) -> None:
        """A trial silent for ``stall_timeout`` is stalled; before its first report it is also
        given its start-up (imports, data, the process group on a loaded node): as long again,
        and at least START_S."""
        stall = self.study.spec.stall_timeout
        for run in list(self.trials.values()) if stall else []:
            limit = stall if run.reported else stall + max(stall, START_S)
            if run.decided is None and now - run.last_seen > limit:
                self._stalled(run, now - run.last_seen)
