"""Lightning's ``Trainer`` inside a trial::

    import lightning as L
    from tuner.integrations.lightning import TunerCallback, trainer_options

    def train(config, trial):
        callback = TunerCallback(trial, monitor="val_loss")
        trainer = L.Trainer(max_epochs=config["epochs"], callbacks=[callback], **trainer_options(trial))
        trainer.fit(Model(config), train_loader, val_loader, ckpt_path=callback.ckpt_path)

``TunerCallback`` reports what the ``LightningModule`` logs at each validation (the epoch is
the step), stops the Trainer when the scheduler prunes the trial, and keeps the Trainer's
checkpoint in the study's checkpoint store, which ``ckpt_path`` hands back to a retried or resumed
trial. ``trainer_options`` runs the Trainer on the trial's device and, for ``workers: N``, as DDP
over the trial's worker group. Both spellings work: ``lightning`` (``lightning.pytorch``) and
``pytorch_lightning``. Importing this module without either raises
:class:`tuner.errors.MissingExtra`; see ``docs/lightning.md``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import shutil
import sys
import tempfile
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.errors import MissingExtra, TrialPruned
from tuner.integrations import _retune
from tuner.trial import Trial

__all__ = ["TunerCallback", "cluster_environment", "trainer_options"]

# The Trainer's package as it is imported, and where its cluster environments live.
_PACKAGES = {"lightning": "lightning.pytorch", "pytorch_lightning": "pytorch_lightning"}

if not any(importlib.util.find_spec(top) for top in _PACKAGES):
    raise MissingExtra("Lightning (lightning or pytorch_lightning)", "lightning")


def _packages() -> list[Any]:
    """The Lightning packages in use: those already imported, else the first one installed."""
    loaded = [sys.modules[name] for name in _PACKAGES.values() if sys.modules.get(name) is not None]
    if loaded:
        return loaded
    for top, name in _PACKAGES.items():
        if importlib.util.find_spec(top):
            return [importlib.import_module(name)]
    raise MissingExtra("Lightning (lightning or pytorch_lightning)", "lightning")


if TYPE_CHECKING:  # to a type checker, a Callback of the package the extra installs
    from lightning.pytorch.callbacks import Callback as _Callback
else:
    _Callback = object

_CLASSES: dict[tuple[type, tuple[str, ...]], type] = {}
_NONE = object()  # no attribute of that name on the instance


def _concrete(base: type, attribute: str) -> type:
    """``base`` made a subclass of ``attribute`` of every Lightning package in use, so that its
    instances pass the ``isinstance`` checks of whichever ``Trainer`` the trainable builds (the
    two packages' classes are distinct)."""
    packages = _packages()
    key = (base, tuple(p.__name__ for p in packages))
    if key not in _CLASSES:
        parents = tuple(_resolve(p, attribute) for p in packages)
        if all(issubclass(base, parent) for parent in parents):  # already one (a copy being made)
            return base
        _CLASSES[key] = type(base.__name__, (base, *parents), {"__module__": base.__module__})
    return _CLASSES[key]


def _resolve(package: Any, dotted: str) -> type:
    module, _, name = dotted.rpartition(".")
    found: type = getattr(importlib.import_module(f"{package.__name__}.{module}"), name)
    return found


class TunerCallback(_Callback):
    """A Lightning ``Callback`` that ties a ``Trainer`` to ``trial``.

    At each validation of ``fit`` (not the sanity check) it reports every scalar in
    ``trainer.callback_metrics``, ``monitor`` among them, at step ``epoch + 1``: the validation at
    an epoch's end at that end (after the module's own ``on_train_epoch_end``, so that what it logs
    is in), one in the middle of an epoch at once, at the fraction of the epoch done. A fit without
    validation reports its training metrics at every epoch's end. When the study keeps checkpoints,
    the Trainer's checkpoint goes with the report, written where ``ModelCheckpoint`` writes its
    own, so that a fit resumed from it starts the next epoch. When the scheduler has stopped the
    trial, it sets ``trainer.should_stop`` and raises :class:`tuner.errors.TrialPruned`, which
    Lightning lets out of ``fit`` after its own clean-up, on every rank at the same step; the
    trainable lets it propagate and the trial ends pruned.

    The checkpoint records the optimizers' and schedulers' settings as ``configure_optimizers``
    made them. A fit that goes on from a checkpoint written under another configuration (a PBT
    exploit) gets, after Lightning's restore, the settings its own ``configure_optimizers`` changes
    (learning rate, weight decay, betas, momentum; a scheduler's base learning rates and
    settings), and keeps the checkpoint's optimizer state and the schedulers' progress.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> TunerCallback:
        instance: TunerCallback = super().__new__(_concrete(cls, "callbacks.Callback"))
        return instance

    def __init__(self, trial: Trial, monitor: str = "val_loss") -> None:
        self.trial = trial
        self.monitor = monitor
        self.retuned: list[str] = []  # what the last restore re-applied of this fit's configuration
        self._configured: dict[str, Any] | None = None  # this fit's optimizers as configured
        self._restored: dict[str, Any] | None = None  # those of the fit that wrote the checkpoint
        self._pending: float | None = None  # the step of a validation at an epoch's end, reported at that end
        self._hooked: tuple[Any, Any] | None = None  # the module whose on_train_epoch_end reports, and its own
        self._folder = Path(tempfile.mkdtemp(prefix="tuner-lightning-"))
        weakref.finalize(self, shutil.rmtree, self._folder, True)

    @property
    def ckpt_path(self) -> str | None:
        """The trial's last Lightning checkpoint as a file for ``trainer.fit(..., ckpt_path=...)``
        when the trial goes on from one (a retry, a resumed study); ``None`` for a fresh start."""
        state = self.trial.checkpoint()
        if not isinstance(state, dict) or "lightning" not in state:
            return None
        path = self._folder / "resume.ckpt"
        path.write_bytes(state["lightning"].numpy().tobytes())
        return str(path)

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self._configured = _configured(trainer)  # after configure_optimizers, before any restore
        self.retuned = []
        self._hook(pl_module)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self._unhook()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._unhook()

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self._unhook()

    def _hook(self, pl_module: Any) -> None:
        """Report an epoch's end right after the module's own ``on_train_epoch_end``, which Lightning
        calls after the callbacks' (but for ``ModelCheckpoint`` and ``EarlyStopping``): what the
        module logs there belongs to the epoch's report. The module's attribute is restored when
        the fit ends, however it ends."""
        self._unhook()
        before = pl_module.__dict__.get("on_train_epoch_end", _NONE)
        pl_module.__dict__["on_train_epoch_end"] = _EpochEnd(pl_module, before, weakref.ref(self))
        self._hooked = (pl_module, before)

    def _unhook(self) -> None:
        if self._hooked is None:
            return
        pl_module, before = self._hooked
        self._hooked = None
        if before is _NONE:
            pl_module.__dict__.pop("on_train_epoch_end", None)
        else:
            pl_module.__dict__["on_train_epoch_end"] = before

    def state_dict(self) -> dict[str, Any]:
        return {} if self._configured is None else {"configured": self._configured}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._restored = state_dict.get("configured")

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """After Lightning has restored the optimizers and schedulers: re-apply what this fit's
        configuration changes from the one that wrote the checkpoint."""
        old, new, self._restored = self._restored, self._configured, None
        if old is None or new is None:
            return
        schedulers = [c.scheduler for c in trainer.lr_scheduler_configs]
        done: set[str] = set()
        for optimizer, was, now in zip(trainer.optimizers, old["optimizers"], new["optimizers"], strict=False):
            done.update(_retune.retune(optimizer, schedulers, _retune.differences(was, now)))
        if len(old["schedulers"]) == len(schedulers):
            for scheduler, was, now in zip(schedulers, old["schedulers"], new["schedulers"], strict=True):
                done.update(_retune.reconfigure(scheduler, was, now))
        self.retuned = sorted(done)

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._pending = None

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking or getattr(trainer.state.fn, "value", None) != "fit":
            return
        self._metrics(trainer, "validation_step")  # the monitor logged, or a clear error now
        step = _step(trainer)
        if step == int(trainer.current_epoch) + 1:
            # The validation at the epoch's end: report at the epoch's end (next), where the
            # checkpoint has the epoch's training done, as Lightning's ModelCheckpoint saves it;
            # one written here would make a resumed fit run the end of this epoch again, with no
            # metrics (EarlyStopping, ModelCheckpoint(monitor=...) and ReduceLROnPlateau then fail).
            self._pending = step
            return
        self._report(trainer, step, "validation_step")

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self._hooked is None:  # not the module's hook (a fit this callback did not start): now
            self._epoch_end(trainer)

    def _epoch_end(self, trainer: Any) -> None:
        step, self._pending = self._pending, None
        if step is not None:
            self._report(trainer, step, "validation_step")
        elif not trainer.enable_validation:  # a fit with no validation: the epoch's training metrics
            self._report(trainer, float(trainer.current_epoch + 1), "training_step (the fit has no validation)")

    def _metrics(self, trainer: Any, where: str) -> dict[str, float]:
        metrics = _scalars(trainer.callback_metrics)
        if self.monitor not in metrics:
            logged = ", ".join(sorted(metrics)) or "nothing"
            raise KeyError(
                f"TunerCallback: monitor {self.monitor!r} was not logged (logged: {logged});"
                f" call self.log({self.monitor!r}, ...) in {where}"
            )
        return metrics

    def _report(self, trainer: Any, step: float, where: str) -> None:
        metrics = self._metrics(trainer, where)
        try:
            self.trial.report(step, checkpoint=self._checkpoint(trainer), **metrics)
        except TrialPruned:
            trainer.should_stop = True
            raise

    def _checkpoint(self, trainer: Any) -> dict[str, Any] | None:
        """The Trainer's checkpoint, as bytes in a tensor so that the study's store keeps it as it
        keeps any state; ``None`` on ranks but 0 and when the study keeps no checkpoints."""
        if self.trial.store is None:
            return None
        import torch

        path = self._folder / "last.ckpt"
        trainer.save_checkpoint(path)  # every rank calls it (a barrier); rank 0 writes
        if self.trial.rank != 0:
            return None
        data = torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8)
        path.unlink()
        return {"lightning": data, "epoch": int(trainer.current_epoch)}


class _EpochEnd:
    """The module's own ``on_train_epoch_end``, then the epoch's report. A copy of the module made
    while it fits (``torch.save(module)``, pickle, ``copy.deepcopy``) gets the module's own hook
    instead, which reports nothing (a function defined here would not pickle)."""

    def __init__(self, pl_module: Any, before: Any, callback: weakref.ref[TunerCallback]) -> None:
        self.own = pl_module.on_train_epoch_end
        self.module = pl_module
        self.before = before
        self.callback = callback
        functools.update_wrapper(self, self.own)  # Lightning's is_overridden reads __wrapped__: the module's own

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        result = self.own(*args, **kwargs)
        reporter = self.callback()
        if reporter is not None and reporter._hooked is not None:
            reporter._epoch_end(self.module.trainer)
        return result

    def __reduce__(self) -> tuple[Any, ...]:
        if self.before is not _NONE:
            return _same, (self.before,)
        return getattr, (self.module, "on_train_epoch_end")  # the copy's, from its class


def _same(value: Any) -> Any:
    return value


def _configured(trainer: Any) -> dict[str, Any]:
    return {
        "optimizers": [_retune.hyperparameters(o) for o in trainer.optimizers],
        "schedulers": [_retune.settings(c.scheduler) for c in trainer.lr_scheduler_configs],
    }


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        if hasattr(value, "numel"):
            if value.numel() != 1 or value.is_complex():
                continue
            value = value.item()
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = float(value)
    return out


def _step(trainer: Any) -> float:
    """``epoch + 1`` at an epoch's end; within an epoch, the epoch plus the fraction of its batches done."""
    epoch = int(trainer.current_epoch)
    total = trainer.num_training_batches
    done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
    if isinstance(total, int) and 0 < done < total:
        return epoch + done / total
    return float(epoch + 1)


class _GroupEnvironment:
    """Lightning's view of a trial's worker group: the ranks, started by tuner, with the process
    group already formed. Each rank is a node of one device (``devices=1``,
    ``num_nodes=world_size``), so Lightning's global rank is the trial's rank."""

    def __init__(self, rank: int, world_size: int) -> None:
        self._rank = rank
        self._world_size = world_size

    @property
    def creates_processes_externally(self) -> bool:
        return True

    @property
    def main_address(self) -> str:  # read only to form a process group; the group has one
        return "127.0.0.1"

    @property
    def main_port(self) -> int:
        return 0

    @staticmethod
    def detect() -> bool:
        return False

    def world_size(self) -> int:
        return self._world_size

    def set_world_size(self, size: int) -> None:
        pass  # the worker group fixes it

    def global_rank(self) -> int:
        return self._rank

    def set_global_rank(self, rank: int) -> None:
        pass

    def local_rank(self) -> int:
        return 0

    def node_rank(self) -> int:
        return self._rank

    def validate_settings(self, num_devices: int, num_nodes: int) -> None:
        if num_devices != 1 or num_nodes != self._world_size:
            raise ValueError(
                f"a trial's worker group of {self._world_size} runs Trainer(devices=1,"
                f" num_nodes={self._world_size}), got devices={num_devices}, num_nodes={num_nodes}"
                " (pass **trainer_options(trial))"
            )

    def teardown(self) -> None:
        pass


def cluster_environment(trial: Trial) -> Any:
    """A Lightning ``ClusterEnvironment`` plugin that takes rank and world size from the trial's
    worker group, so that the Trainer runs DDP over the ranks tuner started instead of spawning
    processes of its own."""
    cls = _concrete(_GroupEnvironment, "plugins.environments.ClusterEnvironment")
    return cls(trial.rank, trial.world_size)


def trainer_options(trial: Trial) -> dict[str, Any]:
    """``Trainer`` arguments for ``trial``: its device (``accelerator``, ``devices=1``) and, for
    ``workers: N``, DDP over its worker group (``strategy="ddp"``, ``num_nodes=N``, the
    :func:`cluster_environment` plugin)."""
    options: dict[str, Any] = {"accelerator": "gpu" if trial.device.type == "cuda" else "cpu", "devices": 1}
    if trial.distributed:
        options.update(strategy="ddp", num_nodes=trial.world_size, plugins=[cluster_environment(trial)])
    return options
