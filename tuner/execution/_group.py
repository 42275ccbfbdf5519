"""A worker group: the rank processes of one concurrency slot, living across trials.

For ``workers: N`` a group is N actors in one placement group (packed onto as few nodes as
possible, spread when needed). Each trial gets a fresh process group and a fresh model; the
processes stay. A group whose rank died or hung is rebuilt in the same placement group.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tuner.execution._worker import TrialTask, TrialWorker
from tuner.trial import choose_backend


class WorkerGroup:
    def __init__(self, size: int, cpus: float, gpus: float, paths: list[str], trainable: str) -> None:
        import ray
        from ray.util.placement_group import placement_group

        self.size, self.cpus, self.gpus = size, cpus, gpus
        self._paths, self._trainable = paths, trainable
        bundle = {"CPU": cpus, **({"GPU": gpus} if gpus else {})}
        self.pg = placement_group([bundle] * size, strategy="PACK")
        self._cls: Any = ray.remote(TrialWorker)
        self.actors: list[Any] = []
        self._spawn()

    def _spawn(self) -> None:
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        self.actors = [
            self._cls.options(
                num_cpus=self.cpus,
                num_gpus=self.gpus,
                max_concurrency=2,
                scheduling_strategy=PlacementGroupSchedulingStrategy(self.pg, placement_group_bundle_index=i),
            ).remote(self._paths)
            for i in range(self.size)
        ]
        for actor in self.actors:
            actor.warm.remote(self._trainable)

    def launch(self, task: TrialTask) -> list[Any]:
        """Start ``task`` on every rank; returns one event stream per rank (rank 0 first).

        Nothing here waits: the ranks of a DDP trial get rank 0's address as an object
        reference, which Ray resolves before they start.
        """
        master = self.actors[0].address.remote() if self.size > 1 else None
        backend = _backend(self.gpus) if self.size > 1 else "gloo"
        return [
            actor.run.options(num_returns="streaming").remote(
                dataclasses.replace(task, rank=rank, world_size=self.size, backend=backend), master
            )
            for rank, actor in enumerate(self.actors)
        ]

    def stop(self, trial_id: str) -> None:
        for actor in self.actors:
            actor.stop.remote(trial_id)

    def rebuild(self) -> None:
        """Kill every rank (a dead or hung one leaves the others stuck in collectives) and respawn."""
        self._kill()
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


def _backend(gpus_per_worker: float) -> str:
    """Decided from the resources: the driver may have no GPU, but workers with one do."""
    return choose_backend(gpus_per_worker, cuda_available=gpus_per_worker > 0)
