"""Ray Tune's class API (a ``ray.tune.Trainable`` subclass) run as a Ray Tune function trainable.

Ray's own class does the work, as under Ray Tune: it is made with the trial's config (its
``setup``), each ``train()`` (its ``step``, with Ray's bookkeeping) is one report, and after
each step it is saved (``save_checkpoint``, through ``Trainable.save``: a folder, or a dict Ray
pickles) into the checkpoint that goes with the report. So a retry, a resumed study or a PBT
exploit goes on from the last step (``load_checkpoint``, through ``Trainable.restore``, with the
iteration count and total time the checkpoint was saved at). A result with ``done`` ends the
trial; so does the scheduler; ``stop()`` (its ``cleanup``) runs at the end either way.
Reports keep what ``step`` returned and Ray's ``time_this_iter_s`` and ``time_total_s``;
the rest of Ray's bookkeeping (a process id, a host name, a date) is left out.
"""

from __future__ import annotations

import functools
import json
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

SAVED_AT = ".tuner_saved_at.json"  # in each checkpoint: the iteration and total time it was saved at
_BOOKKEEPING = {
    "config",
    "date",
    "done",
    "experiment_id",
    "experiment_tag",
    "hostname",
    "iterations_since_restore",
    "node_ip",
    "pid",
    "should_checkpoint",
    "time_since_restore",
    "timestamp",
    "timesteps_since_restore",
    "trial_id",
}


def function_of(cls: Any) -> Callable[[dict[str, Any]], None]:
    """A function trainable, ``f(config)``, that runs the ``ray.tune.Trainable`` subclass ``cls``."""

    @functools.wraps(cls, assigned=("__module__", "__name__", "__qualname__", "__doc__"), updated=())
    def train_class(config: dict[str, Any]) -> None:
        from ray import tune

        trainable = cls(config=dict(config))
        try:
            restore(trainable, tune.get_checkpoint())
            while True:
                result = trainable.train()
                with tempfile.TemporaryDirectory(prefix="tuner-class-") as folder:
                    trainable.save(folder)
                    saved_at = {"training_iteration": trainable.iteration, "time_total_s": result.get("time_total_s")}
                    Path(folder, SAVED_AT).write_text(json.dumps(saved_at))
                    tune.report(metrics(result), checkpoint=tune.Checkpoint.from_directory(folder))
                if result.get("done"):
                    return
        finally:
            trainable.stop()

    return train_class


def metrics(result: Mapping[str, Any]) -> dict[str, Any]:
    """What a report of ``train()`` 's result keeps: the step's own values and Ray's times."""
    return {k: v for k, v in result.items() if k not in _BOOKKEEPING}


def restore(trainable: Any, checkpoint: Any) -> None:
    """``trainable`` restored from ``checkpoint`` (a ``ray.tune.Checkpoint``; ``None``: nothing to
    restore), with the iteration count it was saved at."""
    if checkpoint is None:
        return
    from ray.tune import Checkpoint

    with checkpoint.as_directory() as folder:
        marker = Path(folder, SAVED_AT)
        saved_at = json.loads(marker.read_text()) if marker.is_file() else {}
        try:  # Ray's own record of a save, which carries the iteration (a private class of Ray's)
            from ray.train._internal.checkpoint_manager import _TrainingResult

            known = {k: v for k, v in saved_at.items() if v is not None}
            trainable.restore(_TrainingResult(checkpoint=Checkpoint.from_directory(folder), metrics=known))
        except ImportError:
            trainable.restore(folder)
