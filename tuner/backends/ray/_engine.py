"""The study loop: ask the searcher, start trials on reused worker groups, prune, record.

This is the one place where a trial starts (:meth:`_Engine._start`). The loop itself only
reads trial events and keeps time: the searcher runs on a thread of its own and disk writes
on another (:mod:`tuner.engine._offload`), so neither can delay a stop or a kill.

Every decision is journaled; :meth:`_Engine.replay` feeds a journal back through the same
code paths (the searcher is told the recorded history), so a resumed study has the searcher,
ASHA's rungs and the results exactly where they were.
"""

from __future__ import annotations

import math
import os
import re
import time
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tuner import searchers
from tuner.backends.ray import _last_words as last_words
from tuner.backends.ray._cluster import ClusterView, path_entries, route_ray_messages
from tuner.backends.ray._group import WorkerGroup
from tuner.backends.ray._metrics import study_metrics
from tuner.backends.ray._usage import combine
from tuner.backends.ray._worker import TrialTask
from tuner.config import Study
from tuner.diagnose import LEAK_HINT, diagnose, leak_per_step
from tuner.engine._checkpoints import Checkpoints
from tuner.engine._offload import SearcherThread, Writer
from tuner.engine._schedulers import Pruner
from tuner.progress import Progress
from tuner.results import Recorder, TrialRecord
from tuner.results._recorder import FAILED
from tuner.results._state import write_state
from tuner.results._warm import read_warm_start
from tuner.searchers import Outcome
from tuner.space import flatten, nest
from tuner.storage import CheckpointStore, credentials, is_remote

STACKS_WAIT_S = 5.0  # how long a stalled trial's ranks get to say where they are
LAST_WORDS_WAIT_S = 5.0  # how long the dead rank's node gets to say how its process ended
STOP_GRACE_S = 2.0  # ranks of a stopped trial still running by then are killed and respawned
INFRA_RETRIES = 5  # a trial whose node is lost more often than this ends as errored
CAPACITY_WAIT_S = 600.0  # with trials to run and no slot placed for this long, the study stops (resumable)
WATCH_EVERY_S = 2.0  # how often the cluster's size is checked
FAIL_FAST = 3  # stop starting trials when this many failed and none reported a value
MAX_HALVINGS = 4  # on_oom: halve_batch retries at most this many times
ROOT_CAUSE_WAIT_S = 1.0
STATE_EVERY_S = 2.0
WAIT_S = 0.1  # the loop's longest sleep: how late a timer can fire
GET_TIMEOUT_S = 30.0  # reading an event that Ray says is ready
_PEER_FAILURE = ("gloo", "nccl", "connection reset", "connection closed", "broken pipe", "timed out")


def _secondary(event: dict[str, Any]) -> bool:
    """An error a rank gets because a peer failed (a collective's connection broke)."""
    text = f"{event.get('error', '')}".lower()
    return not event.get("dead") and any(mark in text for mark in _PEER_FAILURE)


def _root_cause(ended: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Of the ranks' end events, the one that explains the failure: a death, else a rank's own error."""
    errors = [e for _, e in sorted(ended.items()) if e["kind"] == "error"]
    for event in errors:
        if event.get("dead"):
            return event
    return next((e for e in errors if not _secondary(e)), errors[0] if errors else {"kind": "done"})


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
    failures: int = 0
    failing_since: float | None = None  # a rank failed from a peer's failure: waiting for the cause
    last_seen: float = field(default_factory=time.monotonic)  # its start or its last report
    rss_mb: list[float] = field(default_factory=list)  # rank 0's resident memory at each report
    gpu_mb: list[float] = field(default_factory=list)  # and its GPU memory allocated, on CUDA


@dataclass
class _Asking:
    """The one suggestion in flight: for which trial, on which group, since when."""

    trial_id: str
    group: WorkerGroup
    future: Future[dict[str, Any] | None]
    since: float


class _Engine:
    def __init__(
        self,
        study: Study,
        seed: int,
        folder: Path,
        quiet: bool,
        elapsed: float = 0.0,
        trial_seed: int | None = None,
        max_steps: int | None = None,
        say: Any = None,
    ) -> None:
        import ray

        spec = study.spec
        self.study = study
        self.seed = seed
        self.ray = ray
        self.metric = study.metric
        self.sign = -1.0 if study.maximize else 1.0
        self.pruner = Pruner(spec.scheduler, study.metric, study.maximize, seed)
        self.max_steps = max_steps if max_steps is not None else self.pruner.max_t
        points = [flatten(p) for p in spec.points_to_evaluate]
        self.searcher = SearcherThread(
            searchers.create(
                spec.method,
                study.space,
                seed,
                spec.searcher,
                spec.run_cap,
                points=points,
                objectives=len(spec.objectives),
            )
        )
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
        self.groups: list[WorkerGroup] = []
        self.idle: list[WorkerGroup] = []
        self.idle_since: dict[int, float] = {}  # id(group) -> when it became free for a new trial
        self.trials: dict[str, _Running] = {}
        self.streams: dict[Any, _Running] = {}
        self.resumable: list[str] = []  # unfinished trials (of an earlier session, or of a lost node), started first
        self._requeued: set[str] = set()  # of them, those whose node was lost (already rewound)
        self._split: set[int] = set()  # groups whose pipeline stages were placed on several nodes
        self.asking: _Asking | None = None
        self.launched = 0
        self.exhausted = False
        self.stop_reason: str | None = None
        self.respawns = 0  # groups killed and started again (a dead, failed or hung rank)
        self.searcher_wait_s = 0.0  # slot time spent waiting for a suggestion
        self.elapsed_before = elapsed
        self.slots = 0
        self.metrics: Any = None
        self._exported = -math.inf
        self.say = say or (lambda message: None)
        self.view = ClusterView()
        self.placed = 0  # groups placed on live nodes at the last look
        self.watched = -math.inf
        self.short_since: float | None = None  # since when trials wait and no group is placed
        self.trial_seed = trial_seed  # fixed for every trial (``train`` reproducing a trial)
        self.began = time.monotonic()
        self.deadline = None if spec.time_limit is None else self.began + spec.time_limit - elapsed
        self._warm_start()

    def _warm_start(self) -> None:
        """Tell the searcher the trials of the studies ``warm_start`` names (before any of its own,
        on every start, so a resumed study's searcher knows them too)."""
        for k, folder in enumerate(self.study.spec.warm_starts):
            warm = read_warm_start(folder, self.study.space, self.metric)
            for i, (params, value, state, step, curve) in enumerate(warm.observations):
                signed = None if curve is None else self._minimised_curve(curve)
                self.searcher.tell(f"w{k}.{i:04d}", params, Outcome(self.sign * value, state, step, curve=signed))  # type: ignore[arg-type]
            self.say(warm.line())

    @property
    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.began

    # -- the loop --------------------------------------------------------------------------
    def run(self, slots: int) -> None:
        self.slots = slots
        self.groups = []
        self._grow(slots)
        self.placed = slots  # as planned: a change is reported, not the start
        self.searcher.start()
        route_ray_messages(self._ray_log, self.say)
        self.metrics = study_metrics(self.study.name, self.metric)
        self._save_state("running")
        self._state_written = time.monotonic()
        while True:
            self._watch()
            while self.resumable and self.stop_reason is None and (group := self._take()) is not None:
                self._continue(group, self.resumable.pop(0))
            self._ask()
            waiting = (bool(self.resumable) and self.stop_reason is None) or self._can_launch()
            if not self.trials and self.asking is None and not waiting:
                break
            self._read_events()
            self._enforce_limits()
            self.searcher.check()
            snapshot = self.recorder.snapshot()
            if snapshot is not None:
                self.writer.submit("snapshot", snapshot)
            if time.monotonic() - self._state_written > STATE_EVERY_S:  # the elapsed time resume counts on
                self._save_state("running")
                self._state_written = time.monotonic()
            self.progress.update()
            self._export()

    def _export(self) -> None:
        """The study's state as Ray metrics, at most once a second."""
        now = time.monotonic()
        if self.metrics is None or now - self._exported < 1.0:
            return
        self._exported = now
        finished = [r.value for r in self.recorder.trials.values() if r.status == "finished" and r.value is not None]
        best = (max if self.study.maximize else min)(finished) if finished else None
        self.metrics.update(self.recorder.counts(), best)

    def _grow(self, slots: int) -> None:
        """Worker groups up to ``slots``, named after the study."""
        res = self.study.spec.resources
        paths = path_entries()
        env = credentials() if is_remote(self.checkpoints.store.location) else {}  # for the ranks' writes
        while len(self.groups) < slots:
            name = f"tuner:{self.study.name}:slot{len(self.groups)}"
            group = WorkerGroup(res.workers, res.cpu, res.gpu, paths, self.study.trainable, name, env)
            self.groups.append(group)
            self._free(group)

    def _take(self) -> WorkerGroup | None:
        """A free group whose ranks are placed on live nodes, or ``None``."""
        self.view.refresh()
        for group in self.idle:
            if self.view.placed(group.pg_id) is not None:
                self.idle.remove(group)
                return group
        return None

    def _watch(self) -> None:
        """Notice the cluster shrinking or growing: say so in one line, use new room, and stop
        waiting (resumably) when nothing can run for ``CAPACITY_WAIT_S``."""
        now = time.monotonic()
        if now - self.watched < WATCH_EVERY_S:
            return
        self.watched = now
        self.view.refresh(force=True)
        res = self.study.spec.resources
        wanted = self.study.concurrency(self.view.capacity(res.cpu, res.gpu))
        if wanted > len(self.groups) and self.stop_reason is None:
            self._grow(wanted)
        placed = sum(self.view.placed(g.pg_id) is not None for g in self.groups)
        if placed != self.placed:
            change = "shrank" if placed < self.placed else "grew"
            self.say(f"the cluster {change}: {placed} of {len(self.groups)} slot(s) can run trials now")
            self.placed = placed
        if placed == 0 and (self.resumable or self._can_launch()):
            self.short_since = self.short_since or now
            if now - self.short_since > CAPACITY_WAIT_S:
                self._halt(f"no node could take a trial for {CAPACITY_WAIT_S:.0f} s (resume when the cluster has room)")
        else:
            self.short_since = None

    def _read_events(self) -> None:
        """Every event that has arrived, from every rank: none waits for a later pass."""
        streams = list(self.streams)
        if not streams:
            time.sleep(0.01 if self.asking is not None else WAIT_S)
            return
        ready, _ = self.ray.wait(streams, num_returns=1, timeout=0.01 if self.asking is not None else WAIT_S)
        if not ready:
            return
        ready, _ = self.ray.wait(streams, num_returns=len(streams), timeout=0)
        stream: Any
        for stream in ready:
            while stream in self.streams and (stream.next_ready() or stream.is_finished()):
                self._next_event(stream)

    def _free(self, group: WorkerGroup) -> None:
        self.idle.append(group)
        self.idle_since[id(group)] = time.monotonic()

    def _can_launch(self) -> bool:
        cap = self.study.spec.run_cap
        return not self.exhausted and self.stop_reason is None and (cap is None or self.launched < cap)

    def _ask(self) -> None:
        """Keep one suggestion in flight while a group is free; start its trial when it comes."""
        if self.asking is not None and self.asking.future.done():
            asking, self.asking = self.asking, None
            params = asking.future.result()
            if params is None:
                self.exhausted = True
                self._free(asking.group)
            elif self.stop_reason is not None:  # the study stopped meanwhile: no new trial
                self._free(asking.group)
            else:
                self.searcher_wait_s += time.monotonic() - self.idle_since.pop(id(asking.group), asking.since)
                record = self._open(asking.trial_id, params, time.time())
                record.suggest_s = round(self.searcher.suggest_s[-1], 4) if self.searcher.suggest_s else None
                self.recorder.start(record)
                self._start(_Running(record, asking.group, self._task(record)))
        if self.asking is None and self.idle and self._can_launch() and (group := self._take()) is not None:
            trial_id = f"t{self.launched + 1:04d}"
            self.asking = _Asking(trial_id, group, self.searcher.suggest(trial_id), time.monotonic())

    def _open(self, trial_id: str, params: dict[str, Any], started: float) -> TrialRecord:
        self.launched += 1
        flat = self.study.space.complete(params)
        trial_seed = self.trial_seed if self.trial_seed is not None else (self.seed * 1_000_003 + self.launched) % 2**31
        record = TrialRecord(trial_id=trial_id, params=flat, config=nest(flat), seed=trial_seed, started=started)
        self.pruner.add(trial_id)
        return record

    def _task(self, record: TrialRecord, checkpoint: str | None = None, accumulation: int = 1) -> TrialTask:
        res = self.study.spec.resources
        return TrialTask(
            record.trial_id,
            self.study.trainable,
            record.config,
            record.seed,
            self.max_steps,
            res.gpu,
            store=self.checkpoints.store,
            checkpoint=checkpoint,
            accumulation=accumulation,
            final=self.study.spec.final,
            strategy=res.strategy_options(),
        )

    def _start(self, run: _Running) -> None:
        """Start (or restart) a trial on its group's ranks: the one place trials begin."""
        self.trials[run.record.trial_id] = run
        nodes = self.view.placed(run.group.pg_id) or []
        self.recorder.placed(run.record.trial_id, nodes)
        if (
            len(set(nodes)) > 1
            and self.study.spec.resources.strategy == "pipeline"
            and id(run.group) not in self._split
        ):
            self._split.add(id(run.group))  # PACK keeps a pipeline on one node when one has room: said once
            self.say(
                f"{run.group.name}: its {len(nodes)} pipeline stages span {len(set(nodes))} nodes (no node had room "
                "for all); activations cross the network between them"
            )
        for rank, stream in enumerate(run.group.launch(run.task)):
            run.streams[stream] = rank
            self.streams[stream] = run

    def _continue(self, group: WorkerGroup, trial_id: str) -> None:
        """Continue an unfinished trial from its last checkpoint: one an earlier session left, or
        one whose node was lost."""
        self.idle_since.pop(id(group), None)
        record = self.recorder.trials[trial_id]
        step, path = self.checkpoints.last(trial_id)
        if trial_id not in self._requeued:
            self._rewind(trial_id, step, "resumed")
        self._requeued.discard(trial_id)
        self._start(_Running(record, group, self._task(record, path)))

    # -- events ----------------------------------------------------------------------------
    def _next_event(self, stream: Any) -> None:
        run = self.streams[stream]
        rank = run.streams[stream]
        try:
            event = self.ray.get(next(stream), timeout=GET_TIMEOUT_S)
        except StopIteration:
            event = {"kind": "done"}
        except self.ray.exceptions.RayError as exc:
            oom = isinstance(exc, self.ray.exceptions.OutOfMemoryError)
            lost = not oom and self._node_lost(run, exc)
            words = None
            if oom:
                why = "was killed for using too much host memory"
            elif lost:
                why = "was lost with its node"
            else:
                words = self._last_words(run, rank)
                why = last_words.describe(words)
            event = {
                "kind": "error",
                "error": f"rank {rank} process {why} ({type(exc).__name__})",
                "traceback": (f"{words}\n\n" if words else "") + str(exc),
                "dead": True,
                "oom": oom,
                "lost": lost,
            }
        if event["kind"] == "report":
            self._on_report(run, event)
            return
        del self.streams[stream], run.streams[stream]
        run.ended[rank] = event
        failed = event["kind"] == "error"
        if failed and event.get("dead") and run.group.size == 1:
            self._end(run, event, rebuild=True)
        elif failed and run.group.size > 1:
            # The other ranks may wait in a collective forever: end the trial, with the root cause.
            # A rank whose peer died fails with a connection error first; give the cause a moment.
            if not _secondary(event) or len(run.ended) == run.group.size:
                self._end(run, _root_cause(run.ended), rebuild=True)
            elif run.failing_since is None:
                run.failing_since = time.monotonic()
        elif len(run.ended) == run.group.size:
            failures = {r: e for r, e in run.ended.items() if e["kind"] == "error"}
            self._end(run, _root_cause(failures) if failures else run.ended[0], rebuild=False)

    def _last_words(self, run: _Running, rank: int) -> str | None:
        """What a dead rank's process left on its node: exit code or fatal signal, with its stacks."""
        nodes = self.recorder.trials[run.record.trial_id].nodes
        return run.group.last_words(rank, nodes[rank] if rank < len(nodes) else None, LAST_WORDS_WAIT_S)

    def _node_lost(self, run: _Running, exc: Exception) -> bool:
        """Whether a rank died because its node left the cluster (not the trial's fault). A rank
        Ray cannot reach (``ActorUnavailableError``: its raylet gone, the node not yet declared
        dead) is the infrastructure's failure too."""
        if isinstance(exc, self.ray.exceptions.ActorUnavailableError):
            return True
        if "node has died" in str(exc) or "NodeDiedError" in type(exc).__name__:
            return True
        self.view.refresh(force=True)
        return any(not self.view.alive(node) for node in self.recorder.trials[run.record.trial_id].nodes)

    def _on_report(self, run: _Running, event: dict[str, Any]) -> None:
        run.last_seen = time.monotonic()
        if run.decided is not None:
            return  # the trial was already stopped; late reports do not count
        trial_id, step = run.record.trial_id, event["step"]
        status, error = self._judge(trial_id, step, event["time"], event["metrics"])
        if "checkpoint_path" in event:  # journaled after its report, so that a replay knows its value
            self.checkpoints.saved(trial_id, step, event["checkpoint_path"], self._minimised(event["metrics"]))
        if status is None and event.get("rss_mb") is not None:
            status, error = self._leaking(run, float(event["rss_mb"]), event.get("gpu_mb"))
        if status is not None:
            self._stop(run, status, error)

    def _leaking(self, run: _Running, rss_mb: float, gpu_mb: float | None) -> tuple[str | None, str | None]:
        """Watch rank 0's memory (resident, and GPU memory allocated on CUDA); a steady growth of
        either is flagged once. ``("errored", why)`` when ``on_leak: stop`` ends the trial for
        it, else ``(None, None)``."""
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

    def _minimised(self, metrics: dict[str, float]) -> float | None:
        value = metrics.get(self.metric)
        return None if value is None else self.sign * value

    def _minimised_curve(self, curve: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
        return tuple((step, self.sign * value) for step, value in curve)

    def _judge(self, trial_id: str, step: float, elapsed: float, metrics: dict[str, float]) -> tuple[Any, Any]:
        """Record a report and decide whether the trial ends here: ``(status, error)``."""
        if self.metric not in metrics:
            reported = ", ".join(sorted(metrics)) or "nothing"
            return "errored", f"metric {self.metric!r} was not reported at step {step} (reported: {reported})"
        self.recorder.report(trial_id, step, elapsed, metrics)
        value = metrics[self.metric]
        if self.metrics is not None:
            self.metrics.report(trial_id, value)
        if not math.isfinite(value):
            return "nan", f"{self.metric} is {value} at step {step}"
        if self.max_steps is not None and step >= self.max_steps:
            return "finished", None
        if self.pruner.should_stop(trial_id, step, value):
            return "pruned", None
        return None, None

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
            self.respawns += 1
        rec = run.record
        stop_s = None if run.stop_sent is None else round(time.monotonic() - run.stop_sent, 3)
        status, error = run.decided, run.error
        if status is None:
            if event["kind"] == "error":
                status, error = ("oom" if event.get("oom") else "errored"), event["error"]
            elif rec.iterations == 0:
                status, error = "errored", f"returned without reporting {self.metric!r}"
            else:
                status = "finished"
        if event.get("traceback"):
            self._write_log(rec.trial_id, rec.attempts, event["traceback"])
        if run.decided is None and event.get("lost") and rec.infra_retries < INFRA_RETRIES:
            self._requeue(run, error)
            return
        found = diagnose(status, error, rec.config)
        cause = event.get("cause") or (found.cause if found else None)
        if run.decided is None and self._retry(run, status, error, cause):
            return
        self._finish(
            rec.trial_id,
            status,
            error,
            stop_s=stop_s,
            usage=combine([e["usage"] for e in run.ended.values() if e.get("usage")]),
            cause=event.get("cause"),
            hint=event.get("hint"),
        )
        self._free(run.group)

    def _requeue(self, run: _Running, error: str | None) -> None:
        """A trial whose node was lost: continued from its last checkpoint on the next group that
        is placed on live nodes; not counted against ``max_failures``."""
        step, _ = self.checkpoints.last(run.record.trial_id)
        self._rewind(run.record.trial_id, step, error, cause="node_lost")
        run.record.attempts += 1
        run.record.infra_retries += 1
        self.resumable.insert(0, run.record.trial_id)
        self._requeued.add(run.record.trial_id)
        self._free(run.group)
        self.say(f"{run.record.trial_id}: its node was lost; it continues from step {step or 0} on a live node")

    def _retry(self, run: _Running, status: str, error: str | None, cause: str | None) -> bool:
        """Run a failed trial again on the same group, from its last checkpoint, if its cause's
        action allows (``on_failure``: retry up to ``max_failures``, or halve_batch for oom)."""
        if status not in ("errored", "oom"):
            return False
        action = self.study.spec.failure_action(cause)
        accumulation = run.task.accumulation
        if action == "halve_batch":
            if accumulation >= 2**MAX_HALVINGS:
                return False
            accumulation *= 2
        elif action != "retry" or run.failures >= self.study.spec.max_failures:
            return False
        step, path = self.checkpoints.last(run.record.trial_id)
        self._rewind(run.record.trial_id, step, error)
        run.record.attempts += 1
        failures = run.failures + (action == "retry")
        task = replace(run.task, checkpoint=path, accumulation=accumulation)
        self._start(_Running(run.record, run.group, task, failures=failures))
        return True

    def _rewind(self, trial_id: str, step: float | None, error: str | None, cause: str | None = None) -> None:
        """The trial goes on from its checkpoint at ``step``: reports and checkpoints after it are forgotten."""
        self.recorder.rewind(trial_id, step, error, cause=cause)
        self.checkpoints.rewind(trial_id, step)

    def _finish(
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
        self.recorder.end(trial_id, status, error, at=at, stop_s=stop_s, usage=usage, cause=cause, hint=hint)
        rec = self.recorder.trials[trial_id]
        last = {"step": rec.step, self.metric: rec.value} if status in ("finished", "pruned", "stopped") else None
        self.pruner.remove(trial_id, last if rec.value is not None else None)
        value = None if rec.value is None or status in FAILED else self.sign * rec.value
        action = rec.action = self.study.spec.failure_action(rec.cause) if status in FAILED else None
        if action == "stop" and not self.recorder.replaying and self.stop_reason is None:
            self._halt(f"{trial_id} failed with {rec.cause} (on_failure: {{{rec.cause}: stop}})")
            for run in self.trials.values():
                if run.decided is None:
                    self._stop(run, "stopped", f"stopped: {trial_id} failed with {rec.cause}")
        if action in ("infeasible", "halve_batch"):  # halve_batch here: halving did not help
            state = "infeasible"
        else:
            state = "complete" if status == "finished" else "failed" if value is None else "pruned"
        values = None
        if len(self.study.objectives) > 1 and value is not None:  # each objective's last value, minimised
            found = [rec.metrics.get(name) for name, _ in self.study.objectives]
            if all(v is not None and math.isfinite(v) for v in found):
                values = tuple((-v if up else v) for v, (_, up) in zip(found, self.study.objectives, strict=True))  # type: ignore[operator]
        curve = self._minimised_curve(self.recorder.curve(trial_id)) if self.pruner.prunes else None
        outcome = Outcome(value, state, rec.step, values, curve or None)  # type: ignore[arg-type]
        self.searcher.tell(trial_id, self._searched(rec), outcome)
        self._check_goals(rec)

    def _searched(self, rec: TrialRecord) -> dict[str, Any]:
        return {k: v for k, v in rec.params.items() if k in self.study.space.searchable}

    def _write_log(self, trial_id: str, attempt: int, text: str) -> None:
        logs = self.recorder.folder / "logs"
        name = f"{trial_id}.log" if attempt == 0 else f"{trial_id}.attempt{attempt}.log"

        def write() -> None:
            logs.mkdir(exist_ok=True)
            (logs / name).write_text(text, encoding="utf-8")

        self.writer.submit(f"log:{name}", write)

    def _ray_log(self, text: str) -> None:
        """Ray's own messages about the cluster, kept whole in ``logs/ray.log``."""
        logs = self.recorder.folder / "logs"
        logs.mkdir(exist_ok=True)
        with (logs / "ray.log").open("a", encoding="utf-8") as f:
            f.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')}\n{text}\n")

    def _save_state(self, state: str) -> None:
        folder, elapsed = self.recorder.folder, self.elapsed
        self.writer.submit("state", lambda: write_state(folder, state, elapsed))

    def _check_goals(self, rec: TrialRecord) -> None:
        spec = self.study.spec
        target = spec.primary.target
        hit = (
            rec.value is not None
            and target is not None
            and (rec.value >= target if self.study.maximize else rec.value <= target)
        )
        if rec.status == "finished" and hit:
            self._halt(f"{self.metric} reached its target {target} in {rec.trial_id}")
        failed = sum(self.recorder.counts()[s] for s in FAILED)
        if spec.max_failed_trials is not None and failed > spec.max_failed_trials:
            self._halt(f"{failed} trials failed, more than max_failed_trials ({spec.max_failed_trials})")
        if failed >= FAIL_FAST and not any(
            r.value is not None and math.isfinite(r.value) for r in self.recorder.trials.values()
        ):
            self._halt(f"the first {failed} trials all failed")

    def _halt(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason

    def _enforce_limits(self) -> None:
        now = time.monotonic()
        stall = self.study.spec.stall_timeout
        if self.deadline is not None and now >= self.deadline:
            self._halt("time_limit reached")
            for run in self.trials.values():
                if run.decided is None:
                    self._stop(run, "stopped", "stopped at the time limit")
        for run in list(self.trials.values()):
            if run.failing_since is not None and now - run.failing_since > ROOT_CAUSE_WAIT_S:
                self._end(run, _root_cause(run.ended), rebuild=True)
            elif run.stop_sent is not None and now - run.stop_sent > STOP_GRACE_S:
                self._end(run, {"kind": "done"}, rebuild=True)  # it ignored the stop: kill its ranks
            elif stall and run.decided is None and run.failing_since is None and now - run.last_seen > stall:
                self._stalled(run, now - run.last_seen)

    def _stalled(self, run: _Running, silent_s: float) -> None:
        """A trial that stopped reporting: where each rank is, then its ranks killed and its slot freed."""
        stacks = run.group.stacks(timeout=STACKS_WAIT_S)
        where = _innermost(stacks[0])
        rec = run.record
        after = f"after step {rec.step:g}" if rec.step is not None else "before its first report"
        event = {
            "kind": "error",
            "error": f"stalled: no report for {silent_s:.0f} s {after}; rank 0 was at {where}",
            "traceback": "\n\n".join(f"--- rank {rank} ---\n{text}" for rank, text in enumerate(stacks)),
            "cause": "stalled",
            "hint": f"it stopped reporting (stall_timeout {self.study.spec.stall_timeout:g} s): a deadlock, a "
            "blocking read, or a step longer than the timeout; the ranks' stacks are in its log",
        }
        self._end(run, event, rebuild=True)

    # -- resume ----------------------------------------------------------------------------
    def replay(self, events: list[dict[str, Any]]) -> list[str]:
        """Rebuild the state a journal describes; returns the trials left to continue.

        The searcher is told the recorded configurations and outcomes (never asked again), so
        every result is credited to the configuration that produced it.
        """
        decided: dict[str, tuple[str, str | None]] = {}
        self.recorder.replaying = True
        try:
            for ev in events:
                kind, trial_id = ev.get("e"), ev.get("trial", "")
                if kind == "start":
                    params = {k: v for k, v in ev["params"].items() if k in self.study.space.searchable}
                    record = self._open(trial_id, params, ev["t"])
                    record.suggest_s = ev.get("suggest_s")
                    self.recorder.start(record)
                    self.searcher.tell(trial_id, params, Outcome(None, "running"))
                elif kind == "report" and trial_id not in decided:
                    status, error = self._judge(trial_id, ev["step"], ev["time"], ev["metrics"])
                    if status is not None:
                        decided[trial_id] = (status, error)
                elif kind == "ckpt" and ev.get("path"):
                    rec = self.recorder.trials[trial_id]
                    value = rec.value if rec.step == ev["step"] else None
                    self.checkpoints.saved(
                        trial_id, ev["step"], ev["path"], None if value is None else self.sign * value
                    )
                elif kind == "retry":
                    decided.pop(trial_id, None)
                    self._rewind(trial_id, ev["step"], ev.get("error"), cause=ev.get("cause"))
                    if ev.get("error") != "resumed":
                        self.recorder.trials[trial_id].attempts += 1
                    if ev.get("cause") == "node_lost":
                        self.recorder.trials[trial_id].infra_retries += 1
                elif kind == "leak":
                    self.recorder.trials[trial_id].leak_mb_per_step = ev.get("mb")
                elif kind == "placed":
                    self.recorder.trials[trial_id].nodes = list(ev.get("nodes") or [])
                elif kind == "end":
                    decided.pop(trial_id, None)
                    self._finish(
                        trial_id,
                        ev["status"],
                        ev.get("error"),
                        at=ev.get("t"),
                        stop_s=ev.get("stop_s"),
                        usage=ev.get("usage") or {"peak_gpu_mb": ev.get("peak_gpu_mb")},
                        cause=ev.get("cause"),
                        hint=ev.get("hint"),
                    )
        finally:
            self.recorder.replaying = False
        for trial_id, (status, error) in decided.items():  # decided, but the driver died before the end
            self._finish(trial_id, status, error)
        self.exhausted = False
        return [t for t, r in self.recorder.trials.items() if r.status == "running"]

    def interrupt(self) -> None:
        """Stop now, leaving running trials open in the journal so that ``resume`` continues them."""
        for run in list(self.trials.values()):
            for stream in list(run.streams):
                del self.streams[stream]
            del self.trials[run.record.trial_id]
        self.asking = None

    def release(self) -> None:
        """Free the workers and their placement groups now, not when handles are collected;
        let the searcher go and write out everything still waiting for the disk."""
        for group in self.groups:
            group.close()
        self.groups, self.idle = [], []
        self.searcher.close()
        self.writer.close()

    def summary(self) -> dict[str, Any]:
        """How the run went as a whole: what ``summary.yaml`` records."""
        import numpy as np

        times = self.searcher.suggest_s
        slot_s = max(self.slots, 1) * max(time.monotonic() - self.began, 1e-9)
        recs = list(self.recorder.trials.values())
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
            "elapsed_s": round(self.elapsed, 3),
            "resources": resources,
            "respawns": self.respawns,
            "infra_retries": sum(r.infra_retries for r in self.recorder.trials.values()),
            "stop_reason": self.stop_reason,
            "searcher": {
                "suggestions": len(times),
                "suggest_s_median": round(float(np.median(times)), 4) if times else None,
                "suggest_s_p95": round(float(np.percentile(times, 95)), 4) if times else None,
                "wait_s": round(self.searcher_wait_s, 3),
                "wait_fraction": round(self.searcher_wait_s / slot_s, 4),
            },
        }


def _innermost(stack: str) -> str:
    """``file:line in function`` of the last frame of a formatted stack (what a stalled rank is doing)."""
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', stack)
    if not frames:
        return stack.strip().splitlines()[-1] if stack.strip() else "an unknown place"
    path, line, func = frames[-1]
    return f"{os.path.basename(path)}:{line} in {func}"
