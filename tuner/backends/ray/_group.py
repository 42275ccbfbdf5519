"""A worker group: the rank processes of one concurrency slot, living across trials.

For ``workers: N`` a group is N actors in one placement group (packed onto as few nodes as
possible, spread when needed). Each trial gets a fresh process group and a fresh model; the
processes stay. A group whose rank died or hung is rebuilt in the same placement group; when
a node is lost, Ray places the group's bundles again once the cluster has room, and until then
the group is not ready and gets no trial.

Actors are named after the study and the slot (``tuner:digits_mlp:slot0``, ``...:slot0:rank1``),
and every trial's task after the trial (``trial t0007``), so that the dashboard's Actors, Jobs
and Timeline views say which trial runs where.

Each rank is readied as soon as it is started (``TrialWorker.warm``: torch imported, on a GPU
CUDA initialised), while the searcher makes its first suggestions. GPU ranks start with
PyTorch's expandable segments (:func:`allocator_env`), so that a retry at a smaller batch after
an out-of-memory is not refused for fragmentation; the rank sets them in its own environment
before it imports torch (a runtime environment would cost a process of its own, where Ray could
have given one it started ahead).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from tuner.backends.ray import _last_words
from tuner.backends.ray._worker import TrialTask, TrialWorker
from tuner.trial import choose_backend


class WorkerGroup:
    def __init__(
        self,
        size: int,
        cpus: float,
        gpus: float,
        paths: list[str],
        trainable: str,
        name: str = "tuner:slot",
        env: dict[str, str] | None = None,
    ) -> None:
        import ray
        from ray.util.placement_group import placement_group

        self.size, self.cpus, self.gpus = size, cpus, gpus
        self.name = name
        self._paths, self._trainable = paths, trainable
        self._env = env or {}  # variables the ranks need (an object store's credentials)
        self._settings = allocator_env(gpus, self._env, os.environ)  # set in the ranks, before torch
        bundle = {"CPU": cpus, **({"GPU": gpus} if gpus else {})}
        self.pg = placement_group([bundle] * size, strategy="PACK", name=name)
        self._cls: Any = ray.remote(TrialWorker)
        self.actors: list[Any] = []
        self.generation = 0  # how many times the ranks were started again
        self.warming: list[Any] = []  # each rank's readied() since its latest start: seconds it took
        self._spawn()

    def _spawn(self) -> None:
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        suffix = "" if self.generation == 0 else f".{self.generation}"
        self.actors = [
            self._cls.options(
                name=(self.name if i == 0 else f"{self.name}:rank{i}") + suffix,
                num_cpus=self.cpus,
                num_gpus=self.gpus,
                max_concurrency=2,
                scheduling_strategy=PlacementGroupSchedulingStrategy(self.pg, placement_group_bundle_index=i),
                **({"runtime_env": {"env_vars": self._env}} if self._env else {}),
            ).remote(self._paths, (self._trainable, self.gpus), self._settings)
            for i in range(self.size)
        ]
        self.warming = [actor.readied.remote() for actor in self.actors]

    @property
    def pg_id(self) -> str:
        return str(self.pg.id.hex())

    def launch(self, task: TrialTask) -> list[Any]:
        """Start ``task`` on every rank; returns one event stream per rank (rank 0 first).

        Nothing here waits: the ranks of a DDP trial get rank 0's address as an object
        reference, which Ray resolves before they start.
        """
        master = self.actors[0].address.remote() if self.size > 1 else None
        backend = _backend(self.gpus) if self.size > 1 else "gloo"
        return [
            actor.run.options(
                num_returns="streaming", name=f"trial {task.trial_id}" + (f" rank {rank}" if rank else "")
            ).remote(dataclasses.replace(task, rank=rank, world_size=self.size, backend=backend), master)
            for rank, actor in enumerate(self.actors)
        ]

    def stop(self, trial_id: str) -> None:
        for actor in self.actors:
            actor.stop.remote(trial_id)

    def stacks(self, timeout: float) -> list[str]:
        """Each rank's trial stacks (a rank that does not answer within ``timeout`` says so)."""
        import ray

        refs = [actor.stacks.remote() for actor in self.actors]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout)
        out = []
        for ref in refs:
            try:
                out.append(str(ray.get(ref, timeout=0)) if ref in ready else "did not answer")
            except Exception as exc:  # a rank that died meanwhile
                out.append(f"unavailable ({type(exc).__name__})")
        return out

    def last_words(self, rank: int, node: str | None, timeout: float) -> str | None:
        """What rank ``rank``'s process, now dead, left on its node: its exit code or fatal signal
        with its stack (see :mod:`tuner.backends.ray._last_words`); ``None`` when nothing was left or
        the node does not answer within ``timeout``. Call it before :meth:`rebuild`."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        if not node or rank >= len(self.actors):
            return None
        key = self.actors[rank]._actor_id.hex()
        if node == ray.get_runtime_context().get_node_id():  # the driver's own node: read at once, no task
            words = _last_words.read(key)
            if words is not None:
                return words
        ref = (
            _read_last_words(ray)
            .options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
            .remote(key)
        )
        try:
            return ray.get(ref, timeout=timeout)
        except Exception:
            ray.cancel(ref, force=True)
            return None

    def rebuild(self) -> None:
        """Kill every rank (a dead or hung one leaves the others stuck in collectives) and respawn."""
        self._kill()
        self.generation += 1
        self._spawn()

    def _kill(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []

    def close(self) -> None:
        from ray.util.placement_group import remove_placement_group

        self._kill()
        remove_placement_group(self.pg)


_READER: Any = None


def _read_last_words(ray: Any) -> Any:
    global _READER
    if _READER is None:
        from tuner.backends.ray import _last_words

        _READER = ray.remote(_last_words.read)
    return _READER


ALLOC_CONF = ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF")  # PyTorch reads either
EXPANDABLE = "expandable_segments:True"


def allocator_env(gpus: float, env: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    """PyTorch's allocator settings for a rank to take where its process has none: none on a CPU
    or where the study's ``env`` sets them; the user's from the driver's ``environ`` where set
    there (so that ranks on other nodes have them too); else expandable segments."""
    if gpus <= 0 or any(name in env for name in ALLOC_CONF):
        return {}
    user = {name: environ[name] for name in ALLOC_CONF if name in environ}
    return user or {ALLOC_CONF[0]: EXPANDABLE}


def _backend(gpus_per_worker: float) -> str:
    """Decided from the resources: the driver may have no GPU, but workers with one do."""
    return choose_backend(gpus_per_worker, cuda_available=gpus_per_worker > 0)
