"""Ray Tune's class API (a ``ray.tune.Trainable`` subclass) run as a Ray Tune function trainable.

Ray's own class does the work, as under Ray Tune: it is made with the trial's config (its
``setup``; ``self.trial_id``, ``self.trial_name`` and ``self.logdir`` are the trial's, the
last its folder), each ``train()`` (its ``step``, with Ray's bookkeeping) is one report, and a
class that saves (defines ``save_checkpoint``) is saved after each step (through
``Trainable.save``: a folder, or a dict Ray pickles) into the checkpoint that goes with the
report. So a retry, a resumed study or a PBT exploit goes on from the last step
(``load_checkpoint``, through ``Trainable.restore``, with the iteration count, total time and
totals the checkpoint was saved at); a class that does not save starts again from its
``setup``. A result with ``done`` ends the trial; so does the scheduler; ``stop()`` (its
``cleanup``) runs at the end either way. Reports keep what ``step`` returned and Ray's
``time_this_iter_s``, ``time_total_s`` and totals; the rest of Ray's bookkeeping (a process id, a
host name, a date) is left out.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tuner.config import defines

SAVED_AT = ".tuner_saved_at.json"  # in each checkpoint: the counts it was saved at
COUNTS = ("training_iteration", "time_total_s", "timesteps_total", "episodes_total")  # what Ray restores
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
    saves = defines(cls, "save_checkpoint")

    def train_class(config: dict[str, Any]) -> None:
        from ray import tune

        trainable = _in_trial(cls, tune.get_context())(config=dict(config))
        try:
            restore(trainable, tune.get_checkpoint())
            while True:
                result = trainable.train()
                if not saves:
                    tune.report(metrics(result))
                else:
                    with tempfile.TemporaryDirectory(prefix="tuner-class-") as folder:
                        trainable.save(folder)
                        counts = {k: result.get(k) for k in COUNTS} | {"training_iteration": trainable.iteration}
                        Path(folder, SAVED_AT).write_text(json.dumps(counts))
                        tune.report(metrics(result), checkpoint=tune.Checkpoint.from_directory(folder))
                if result.get("done"):
                    break
        except BaseException:
            with contextlib.suppress(Exception):  # its cleanup must not hide why the trial ended
                trainable.stop()
            raise
        trainable.stop()

    train_class.__name__, train_class.__qualname__ = cls.__name__, cls.__qualname__
    train_class.__module__, train_class.__doc__ = cls.__module__, cls.__doc__
    return train_class


def _in_trial(cls: Any, context: Any) -> Any:
    """``cls`` told the trial it runs in: ``trial_id``, ``trial_name`` and ``logdir`` (the
    trial's folder, not a fresh temporary one that nothing removes)."""
    trial_id, name, folder = context.get_trial_id(), context.get_trial_name(), context.get_trial_dir()

    def _setup_logdir(self: Any) -> None:  # Ray's Trainable calls it before setup()
        os.makedirs(folder, exist_ok=True)
        self._logdir = folder

    members = {
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__doc__": cls.__doc__,
        "_setup_logdir": _setup_logdir,
        "trial_id": property(lambda self: trial_id),
        "trial_name": property(lambda self: name),
    }
    return type(cls.__name__, (cls,), members)


def metrics(result: Mapping[str, Any]) -> dict[str, Any]:
    """What a report of ``train()`` 's result keeps: the step's own values and Ray's counts."""
    return {k: v for k, v in result.items() if k not in _BOOKKEEPING}


def restore(trainable: Any, checkpoint: Any) -> None:
    """``trainable`` restored from ``checkpoint`` (a ``ray.tune.Checkpoint``; ``None``: nothing to
    restore), with the counts it was saved at."""
    if checkpoint is None:
        return
    from ray.tune import Checkpoint

    with checkpoint.as_directory() as folder:
        marker = Path(folder, SAVED_AT)
        counts = {
            k: v for k, v in (json.loads(marker.read_text()) if marker.is_file() else {}).items() if v is not None
        }
        try:  # Ray's own record of a save, which carries the counts (a private class of Ray's)
            from ray.train._internal.checkpoint_manager import _TrainingResult
        except ImportError:
            trainable.restore(folder)
            with contextlib.suppress(AttributeError):
                trainable._iteration = counts.get("training_iteration", 0)
            return
        trainable.restore(_TrainingResult(checkpoint=Checkpoint.from_directory(folder), metrics=counts))
