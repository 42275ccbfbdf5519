"""The Ray backend: each slot a worker group of long-lived rank actors; events read from their streams.

What is Ray's to know stays here: which rank failed first (a rank whose peer died fails with a
connection error of its own), whether a process died with its node, how a dead process ended,
and a stopped trial's ranks killed when they ignore the stop. The engine sees one
:class:`~tuner.engine.Report` or :class:`~tuner.engine.End` per trial event.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuner.backends.ray import _devices as devices
from tuner.backends.ray import _last_words as last_words
from tuner.backends.ray._cluster import ClusterView, capacity, path_entries, route_ray_messages
from tuner.backends.ray._group import WorkerGroup
from tuner.backends.ray._metrics import study_metrics
from tuner.backends.ray._usage import combine
from tuner.backends.ray._worker import TrialTask
from tuner.config import Study
from tuner.engine import Backend, End, Event, Gpu, Launch, Memory, Report
from tuner.storage import CheckpointStore, credentials, is_remote

STACKS_WAIT_S = 5.0  # how long a stalled trial's ranks get to say where they are
LAST_WORDS_WAIT_S = 10.0  # how long the dead rank's node gets to say how its process ended
STOP_GRACE_S = 2.0  # ranks of a stopped trial still running by then are killed and respawned
ROOT_CAUSE_WAIT_S = 1.0  # a rank failed from a peer's failure: how long to wait for the peer's own
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
class _Trial:
    """A running trial's ranks: their streams and how each ended."""

    trial_id: str
    slot: int
    streams: dict[Any, int] = field(default_factory=dict)  # event stream -> rank
    ended: dict[int, dict[str, Any]] = field(default_factory=dict)
    nodes: list[str] = field(default_factory=list)
    stop_sent: float | None = None
    failing_since: float | None = None  # a rank failed from a peer's failure: waiting for the cause


class RayBackend(Backend):
    """Slots are :class:`WorkerGroup` s named ``tuner:<study>:slot<i>`` on the connected Ray."""

    where = "this Ray cluster"

    def __init__(self, study: Study, say: Any = None) -> None:
        import ray

        self.ray = ray
        self.study = study
        self.store: CheckpointStore | None = None
        self.folder: Path | None = None
        self.say = say or (lambda message: None)
        self.groups: list[WorkerGroup] = []
        self.busy: set[int] = set()
        self.trials: dict[str, _Trial] = {}
        self.streams: dict[Any, _Trial] = {}
        self.view = ClusterView()
        self.respawns = 0  # groups killed and started again (a dead, failed or hung rank)
        self.metrics: Any = None
        self._split: set[int] = set()  # slots whose pipeline stages were placed on several nodes
        self._pending: list[Event] = []
        self._share: float | None = None  # GPUs a worker holds (gpus: auto: decided on the first look)
        self._gpus: dict[int, Gpu] = {}  # gpus: auto: each slot's GPU, once its rank has said
        self._probes: dict[int, Any] = {}  # and the questions not answered yet

    # -- before the run --------------------------------------------------------------------
    @property
    def share(self) -> float:
        """GPUs per worker: as given, or with ``gpus: auto`` the slot's fraction of one GPU."""
        if self._share is None:
            res = self.study.spec.resources
            self._share = devices.auto_share(res.cpu) if res.auto_gpus else res.gpu
        return self._share

    def capacity(self) -> int:
        res = self.study.spec.resources
        if not self.groups:
            return capacity(res.cpu, self.share)
        self.view.refresh(force=True)
        return self.view.capacity(res.cpu, self.share)

    def gpus(self) -> dict[int, Gpu] | None:
        if not self.study.spec.resources.auto_gpus or not self.share:
            return None
        for slot, ref in list(self._probes.items()):
            gpu = devices.read(ref)
            if gpu is not None:
                self._gpus[slot] = gpu
                del self._probes[slot]
        return self._gpus

    def check(self, location: str) -> None:
        from tuner.backends.ray._shared_path import check_checkpoint_location

        check_checkpoint_location(self.study, location)

    def open(self, slots: int, folder: Path, store: CheckpointStore) -> None:
        self.folder, self.store = folder, store
        route_ray_messages(self._ray_log, self.say)
        self.metrics = study_metrics(self.study.name, self.study.metric or "metric")
        self._grow(slots)

    def _grow(self, slots: int) -> None:
        res = self.study.spec.resources
        paths = path_entries()
        assert self.store is not None
        env = credentials() if is_remote(self.store.location) else {}  # for the ranks' writes
        env.update(self.study.env)  # a W&B program's settings (tuner.integrations.wandb)
        while len(self.groups) < slots:
            name = f"tuner:{self.study.name}:slot{len(self.groups)}"
            self.groups.append(WorkerGroup(res.workers, res.cpu, self.share, paths, self.study.trainable, name, env))
            if res.auto_gpus and self.share:  # which GPU it got: asked once, its bundle keeps it
                self._probes[len(self.groups) - 1] = devices.probe(self.groups[-1].actors[0])

    def watch(self, wanted: int) -> int:
        if wanted > len(self.groups):
            self._grow(wanted)
        return sum(self.view.placed(g.pg_id) is not None for g in self.groups)

    def free(self, fits: Callable[[int], bool] | None = None) -> int | None:
        """An idle slot whose ranks are placed on live nodes (and that ``fits``)."""
        self.view.refresh()
        placed = (i for i, g in enumerate(self.groups) if i not in self.busy and self.view.placed(g.pg_id) is not None)
        return next((i for i in placed if fits is None or fits(i)), None)

    # -- trials ----------------------------------------------------------------------------
    def start(self, slot: int, launch: Launch) -> list[str]:
        group = self.groups[slot]
        res = self.study.spec.resources
        task = TrialTask(
            launch.trial_id,
            self.study.trainable,
            launch.config,
            launch.seed,
            launch.max_steps,
            self.share,
            store=self.store,
            checkpoint=launch.checkpoint,
            accumulation=launch.accumulation,
            final=launch.final,
            strategy=res.strategy_options(),
            api=self.study.spec.trainable_api,
            study=self.study.name,
            settle=res.auto_gpus,
        )
        nodes = self.view.placed(group.pg_id) or []
        if len(set(nodes)) > 1 and res.strategy == "pipeline" and slot not in self._split:
            self._split.add(slot)  # PACK keeps a pipeline on one node when one has room: said once
            self.say(
                f"{group.name}: its {len(nodes)} pipeline stages span {len(set(nodes))} nodes (no node had room "
                "for all); activations cross the network between them"
            )
        trial = self.trials[launch.trial_id] = _Trial(launch.trial_id, slot, nodes=list(nodes))
        self.busy.add(slot)
        for rank, stream in enumerate(group.launch(task)):
            trial.streams[stream] = rank
            self.streams[stream] = trial
        return list(nodes)

    def stop(self, trial_id: str) -> None:
        trial = self.trials.get(trial_id)
        if trial is not None and trial.stop_sent is None:
            trial.stop_sent = time.monotonic()
            self.groups[trial.slot].stop(trial_id)

    def abort(self, trial_id: str) -> list[str]:
        trial = self.trials.get(trial_id)
        if trial is None:
            return []
        stacks = self.groups[trial.slot].stacks(timeout=STACKS_WAIT_S)
        self._close(trial, rebuild=True)
        return stacks

    def poll(self, timeout: float) -> list[Event]:
        """Every event that has arrived, from every rank: none waits for a later pass. The timers
        run after the ranks' events are read: a loop that was held up (a slow write, a searcher)
        sees a stopped trial's ranks end before it judges their grace over."""
        streams = list(self.streams)
        if not streams:
            if not self._pending:
                time.sleep(timeout)
        else:
            ready, _ = self.ray.wait(streams, num_returns=1, timeout=0 if self._pending else timeout)
            if ready:
                ready, _ = self.ray.wait(streams, num_returns=len(streams), timeout=0)
            stream: Any
            for stream in ready:
                while stream in self.streams and (stream.next_ready() or stream.is_finished()):
                    self._next_event(stream)
        self._timers()
        events, self._pending = self._pending, []
        return events

    def _timers(self) -> None:
        now = time.monotonic()
        for trial in list(self.trials.values()):
            if trial.failing_since is not None and now - trial.failing_since > ROOT_CAUSE_WAIT_S:
                self._end(trial, _root_cause(trial.ended), rebuild=True)
            elif trial.stop_sent is not None and now - trial.stop_sent > STOP_GRACE_S:
                self._end(trial, {"kind": "done"}, rebuild=True)  # it ignored the stop: kill its ranks

    def _next_event(self, stream: Any) -> None:
        trial = self.streams[stream]
        rank = trial.streams[stream]
        try:
            event = self.ray.get(next(stream), timeout=GET_TIMEOUT_S)
        except StopIteration:
            event = {"kind": "done"}
        except self.ray.exceptions.RayError as exc:
            event = self._death(trial, rank, exc)
        if event["kind"] == "report":
            self._report(trial, event)
            return
        if event["kind"] == "memory":
            self._pending.append(Memory(trial.trial_id, float(event["gpu_reserved_mb"])))
            return
        del self.streams[stream], trial.streams[stream]
        trial.ended[rank] = event
        failed = event["kind"] == "error"
        size = self.groups[trial.slot].size
        if failed and event.get("dead") and size == 1:
            self._end(trial, event, rebuild=True)
        elif failed and size > 1:
            # The other ranks may wait in a collective forever: end the trial, with the root cause.
            # A rank whose peer died fails with a connection error first; give the cause a moment.
            if not _secondary(event) or len(trial.ended) == size:
                self._end(trial, _root_cause(trial.ended), rebuild=True)
            elif trial.failing_since is None:
                trial.failing_since = time.monotonic()
        elif len(trial.ended) == size:
            failures = {r: e for r, e in trial.ended.items() if e["kind"] == "error"}
            self._end(trial, _root_cause(failures) if failures else trial.ended[0], rebuild=False)

    def _death(self, trial: _Trial, rank: int, exc: Exception) -> dict[str, Any]:
        """A rank whose process is gone: killed for memory, lost with its node, or dead of its own."""
        oom = isinstance(exc, self.ray.exceptions.OutOfMemoryError)
        lost = not oom and self._node_lost(trial, exc)
        words = None
        if oom:
            why = "was killed for using too much host memory"
        elif lost:
            why = "was lost with its node"
        else:
            node = trial.nodes[rank] if rank < len(trial.nodes) else None
            words = self.groups[trial.slot].last_words(rank, node, LAST_WORDS_WAIT_S)
            why = last_words.describe(words)
        return {
            "kind": "error",
            "error": f"rank {rank} process {why} ({type(exc).__name__})",
            "traceback": (f"{words}\n\n" if words else "") + str(exc),
            "dead": True,
            "oom": oom,
            "lost": lost,
        }

    def _node_lost(self, trial: _Trial, exc: Exception) -> bool:
        """Whether a rank died because its node left the cluster (not the trial's fault). A rank
        Ray cannot reach (``ActorUnavailableError``: its raylet gone, the node not yet declared
        dead) is the infrastructure's failure too."""
        if isinstance(exc, self.ray.exceptions.ActorUnavailableError):
            return True
        if "node has died" in str(exc) or "NodeDiedError" in type(exc).__name__:
            return True
        self.view.refresh(force=True)
        return any(not self.view.alive(node) for node in trial.nodes)

    def _report(self, trial: _Trial, event: dict[str, Any]) -> None:
        value = None if self.study.metric is None else event["metrics"].get(self.study.metric)
        if self.metrics is not None:
            self.metrics.report(trial.trial_id, value)
        self._pending.append(
            Report(
                trial.trial_id,
                event["step"],
                event["time"],
                event["metrics"],
                checkpoint=event.get("checkpoint_path"),
                rss_mb=None if event.get("rss_mb") is None else float(event["rss_mb"]),
                gpu_mb=event.get("gpu_mb"),
                gpu_reserved_mb=event.get("gpu_reserved_mb"),
            )
        )

    def _end(self, trial: _Trial, event: dict[str, Any], rebuild: bool) -> None:
        """All of a trial's ranks have ended (or one failed): one End for the engine."""
        usage = combine([e["usage"] for e in trial.ended.values() if e.get("usage")])
        self._close(trial, rebuild)
        failed = event["kind"] == "error"
        self._pending.append(
            End(
                trial.trial_id,
                error=event.get("error") if failed else None,
                traceback=event.get("traceback"),
                oom=bool(event.get("oom")),
                lost=bool(event.get("lost")),
                cause=event.get("cause"),
                hint=event.get("hint"),
                usage=usage,
            )
        )

    def _close(self, trial: _Trial, rebuild: bool) -> None:
        for stream in list(trial.streams):
            del self.streams[stream]
        trial.streams.clear()
        del self.trials[trial.trial_id]
        if rebuild:
            self.groups[trial.slot].rebuild()
            self.respawns += 1
            if trial.slot in self._probes:  # its rank died before it said which GPU it holds
                self._probes[trial.slot] = devices.probe(self.groups[trial.slot].actors[0])
        self.busy.discard(trial.slot)

    # -- the rest --------------------------------------------------------------------------
    def now(self) -> float:
        return time.monotonic()

    def observe(self, counts: dict[str, int], best: float | None) -> None:
        if self.metrics is not None:
            self.metrics.update(counts, best)

    def summary(self) -> dict[str, Any]:
        return {"respawns": self.respawns, **self._readied()}

    def _readied(self) -> dict[str, Any]:
        """How long the ranks took to get ready before their first trial (the slowest rank's
        import of torch and the trainable, and on a GPU its CUDA start), as far as they answered."""
        refs = [ref for group in self.groups for ref in group.warming]
        if not refs:
            return {}
        ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0)
        took: dict[str, list[float]] = {}
        for ref in ready:
            try:
                figures = self.ray.get(ref, timeout=0)
            except Exception:  # a rank that died meanwhile
                continue
            for name, seconds in figures.items():
                took.setdefault(name, []).append(float(seconds))
        slowest = {f"{name}_max": round(max(values), 3) for name, values in took.items()}
        return {"workers_ready": slowest} if slowest else {}

    def _ray_log(self, text: str) -> None:
        """Ray's own messages about the cluster, kept whole in ``logs/ray.log``."""
        assert self.folder is not None
        logs = self.folder / "logs"
        logs.mkdir(exist_ok=True)
        with (logs / "ray.log").open("a", encoding="utf-8") as f:
            f.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')}\n{text}\n")

    def close(self) -> None:
        for group in self.groups:
            group.close()
        self.groups, self.busy = [], set()
