"""tuner.integrations.lightning with the real Lightning: reports, pruning, checkpoints and resume,
both package spellings, DDP over a trial's worker group, and the message without the extra."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tuner
from tests.conftest import ROOT, cli_env, cli_here, study
from tuner.errors import TrialPruned
from tuner.storage import CheckpointStore
from tuner.trial import Trial

STUDY = """
name: lit
trainable: tests.integrations.lightning_trainables:train
metric: {name: val_loss, goal: minimize}
method: grid
"""


def fit(trial: Trial, epochs: int, folder: Path, **options: object) -> None:
    import lightning as L

    from tests.integrations import lightning_trainables as lt
    from tuner.integrations.lightning import TunerCallback, trainer_options

    callback = TunerCallback(trial)
    trainer = L.Trainer(
        max_epochs=epochs,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=folder,
        **trainer_options(trial),
        **options,
    )
    trainer.fit(lt.Linear(), *lt.loaders(), ckpt_path=callback.ckpt_path)


def test_reports_every_epoch_with_its_checkpoint_and_resumes_from_it(tmp_path: Path) -> None:
    store = CheckpointStore(str(tmp_path))
    first = Trial("t0", 0, store=store)
    fit(first, epochs=3, folder=tmp_path)
    assert [r["step"] for r in first.reports] == [1.0, 2.0, 3.0]
    assert {"val_loss", "first_epoch", "world"} <= set(first.reports[0]["metrics"])
    assert [r["checkpoint"]["epoch"] for r in first.reports] == [0, 1, 2]
    saved = store.load(store.save("t0", 2, first.reports[1]["checkpoint"]))[1]  # as a retry gets it

    again = Trial("t0", 0, store=store, checkpoint=saved)
    fit(again, epochs=3, folder=tmp_path)
    assert [r["step"] for r in again.reports] == [3.0]  # epoch 3 only, from the checkpoint of epoch 2
    assert again.reports[0]["metrics"]["first_epoch"] == 2.0
    assert again.reports[0]["metrics"]["val_loss"] == pytest.approx(first.reports[2]["metrics"]["val_loss"])


def test_a_validation_within_an_epoch_reports_the_fraction_done(tmp_path: Path) -> None:
    trial = Trial("t0", 0)
    fit(trial, epochs=2, folder=tmp_path, val_check_interval=0.5)  # 4 batches an epoch: after 2 and 4
    assert [r["step"] for r in trial.reports] == [0.5, 1.0, 1.5, 2.0]


def test_a_pruned_trial_stops_the_trainer_and_fit_raises_trial_pruned(tmp_path: Path) -> None:
    reports: list[dict[str, object]] = []
    trial = Trial("t0", 0, emit=reports.append, should_stop=lambda: len(reports) >= 2)  # read as step 3 reports
    with pytest.raises(TrialPruned):
        fit(trial, epochs=5, folder=tmp_path)
    assert [r["step"] for r in reports] == [1.0, 2.0, 3.0]
    assert "checkpoint" not in reports[0]  # no store: the study keeps none


def test_an_unlogged_monitor_is_named(tmp_path: Path) -> None:
    from tuner.integrations.lightning import TunerCallback

    trial = Trial("t0", 0)
    with pytest.raises(KeyError, match=r"monitor 'accuracy' was not logged \(logged: first_epoch, rank, .*val_loss"):
        import lightning as L

        from tests.integrations import lightning_trainables as lt

        callback = TunerCallback(trial, monitor="accuracy")
        trainer = L.Trainer(max_epochs=1, callbacks=[callback], logger=False, default_root_dir=tmp_path)
        trainer.fit(lt.Linear(), *lt.loaders())


def fit_module(
    trial: Trial, module: object, epochs: int, folder: Path, *callbacks: object, validate: bool = True
) -> None:
    """``module`` on the loaders of ``lt``, the training loader alone without ``validate``."""
    import lightning as L

    from tests.integrations import lightning_trainables as lt
    from tuner.integrations.lightning import TunerCallback

    callback = TunerCallback(trial, monitor=getattr(module, "monitor", "val_loss"))
    trainer = L.Trainer(
        max_epochs=epochs,
        callbacks=[callback, *callbacks],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=folder,
    )
    train, val = lt.loaders()
    trainer.fit(module, train, val if validate else None, ckpt_path=callback.ckpt_path)  # type: ignore[arg-type]


def test_a_retry_goes_on_with_early_stopping_and_a_plateau_scheduler(tmp_path: Path) -> None:
    """EarlyStopping, a ReduceLROnPlateau on ``val_loss`` and ``on_epoch`` training metrics (as
    Lightning's own examples use them): the checkpoint of an epoch is the epoch's end, so that a
    fit resumed from it starts the next epoch, with the monitored metrics to come."""
    import lightning as L
    import torch

    from tests.integrations import lightning_trainables as lt

    class Plateau(lt.Linear):
        def training_step(self, batch: object, batch_idx: int) -> torch.Tensor:
            self.log("epoch_seen", float(self.current_epoch), on_step=False, on_epoch=True)
            return super().training_step(batch, batch_idx)

        def configure_optimizers(self) -> object:
            optimizer = torch.optim.SGD(self.parameters(), lr=0.1)
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=0)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val_loss"}}

    store = CheckpointStore(str(tmp_path))
    first = Trial("t0", 0, store=store)
    fit_module(first, Plateau(), 2, tmp_path, L.pytorch.callbacks.EarlyStopping(monitor="val_loss", patience=5))
    assert [r["metrics"]["epoch_seen"] for r in first.reports] == [0.0, 1.0]  # the epoch's own, not the last one's
    saved = store.load(store.save("t0", 2, first.reports[1]["checkpoint"]))[1]

    retry = Trial("t0", 0, store=store, checkpoint=saved)
    fit_module(retry, Plateau(), 4, tmp_path, L.pytorch.callbacks.EarlyStopping(monitor="val_loss", patience=5))
    assert [r["step"] for r in retry.reports] == [3.0, 4.0]
    assert [r["metrics"]["first_epoch"] for r in retry.reports] == [2.0, 2.0]


def test_a_fit_without_validation_reports_its_training_metrics_every_epoch(tmp_path: Path) -> None:
    """A GAN of Lightning's examples: manual optimization over two optimizers, ``self.log_dict`` in
    ``training_step``, no validation at all."""
    import torch

    from tests.integrations import lightning_trainables as lt

    class TwoOptimizers(lt.Linear):
        monitor = "loss_a"

        def __init__(self) -> None:
            super().__init__()
            self.automatic_optimization = False
            self.other = torch.nn.Linear(4, 2)

        def training_step(self, batch: object, batch_idx: int) -> None:
            x, y = batch  # type: ignore[misc]
            losses = {}
            for name, net, optimizer in zip("ab", (self.net, self.other), self.optimizers(), strict=True):  # type: ignore[arg-type]
                loss = torch.nn.functional.cross_entropy(net(x), y)
                optimizer.zero_grad()
                self.manual_backward(loss)
                optimizer.step()
                losses[f"loss_{name}"] = loss
            self.log_dict(losses)

        def configure_optimizers(self) -> object:
            return torch.optim.SGD(self.net.parameters(), lr=0.1), torch.optim.Adam(self.other.parameters())

    store = CheckpointStore(str(tmp_path))
    trial = Trial("t0", 0, store=store)
    fit_module(trial, TwoOptimizers(), 2, tmp_path, validate=False)
    assert [r["step"] for r in trial.reports] == [1.0, 2.0]
    assert set(trial.reports[0]["metrics"]) == {"loss_a", "loss_b"} and "lightning" in trial.reports[0]["checkpoint"]

    module = TwoOptimizers()
    module.monitor = "val_loss"
    message = r"'val_loss' was not logged \(logged: loss_a, loss_b\); .* in training_step \(the fit has no validation\)"
    with pytest.raises(KeyError, match=message):
        fit_module(Trial("t1", 0), module, 1, tmp_path, validate=False)


def test_what_the_module_logs_at_an_epoch_s_end_is_in_that_epoch_s_report(tmp_path: Path) -> None:
    """``on_train_epoch_end`` of the module runs after the callbacks' own: the report waits for it
    (and for ``on_validation_epoch_end``), with and without validation; the module is left as it was."""
    import lightning as L
    import torch

    from tests.integrations import lightning_trainables as lt

    class EpochEnd(lt.Linear):
        monitor = "val_loss"

        def on_validation_epoch_end(self) -> None:
            self.log("validated_epoch", float(self.current_epoch))

        def on_train_epoch_end(self) -> None:
            self.log("trained_epoch", float(self.current_epoch))
            self.log("val_loss_too", self.trainer.callback_metrics.get("val_loss", torch.tensor(0.0)))

    module = EpochEnd()
    trial = Trial("t0", 0, store=CheckpointStore(str(tmp_path)))
    fit_module(trial, module, 3, tmp_path, L.pytorch.callbacks.EarlyStopping(monitor="trained_epoch", patience=9))
    assert [r["metrics"]["trained_epoch"] for r in trial.reports] == [0.0, 1.0, 2.0]
    assert [r["metrics"]["validated_epoch"] for r in trial.reports] == [0.0, 1.0, 2.0]
    assert all(r["metrics"]["val_loss_too"] == r["metrics"]["val_loss"] for r in trial.reports)
    assert "on_train_epoch_end" not in vars(module)  # the hook handed back after fit
    assert L.pytorch.utilities.model_helpers.is_overridden("on_train_epoch_end", module)

    module = EpochEnd()
    module.monitor = "trained_epoch"
    trial = Trial("t1", 0)
    fit_module(trial, module, 2, tmp_path, validate=False)
    assert [(r["step"], r["metrics"]["trained_epoch"]) for r in trial.reports] == [(1.0, 0.0), (2.0, 1.0)]

    failing = lt.Linear(fail_at=2)  # its on_train_epoch_end raises at epoch 2: that epoch is not reported
    trial = Trial("t2", 0)
    with pytest.raises(RuntimeError, match="failed on purpose after epoch 2"):
        fit_module(trial, failing, 3, tmp_path)
    assert [r["step"] for r in trial.reports] == [1.0] and "on_train_epoch_end" not in vars(failing)


def test_the_module_can_be_pickled_and_copied_while_it_fits(tmp_path: Path) -> None:
    """``torch.save(module)`` (or pickle, or a deep copy) in a callback while ``fit`` runs, when the
    module's ``on_train_epoch_end`` reports: the copy has the module's own hook, which reports
    nothing."""
    import copy
    import pickle

    import lightning as L

    from tests.integrations import lightning_trainables as lt

    copies: list[object] = []

    class Saver(L.pytorch.callbacks.Callback):
        def on_train_epoch_end(self, trainer: object, pl_module: object) -> None:
            copies.append(pickle.loads(pickle.dumps(pl_module)))
            copies.append(copy.deepcopy(pl_module))

    trial = Trial("t0", 0)
    fit_module(trial, lt.Counted(), 2, tmp_path, Saver())
    assert [r["step"] for r in trial.reports] == [1.0, 2.0] and lt.Counted.ends == 2 and len(copies) == 4
    for made in copies:
        made.on_train_epoch_end()  # type: ignore[attr-defined]  # the module's own: no report
    assert [r["step"] for r in trial.reports] == [1.0, 2.0] and lt.Counted.ends == 6


class Recorder:
    """What the optimizer and scheduler hold when training starts (after Lightning's restore)."""

    seen: dict[str, object]

    def on_train_start(self, trainer: object, pl_module: object) -> None:
        optimizer = trainer.optimizers[0]  # type: ignore[attr-defined]
        scheduler = trainer.lr_scheduler_configs[0].scheduler  # type: ignore[attr-defined]
        group = optimizer.param_groups[0]
        self.seen = {
            "lr": group["lr"],
            "initial_lr": group["initial_lr"],
            "weight_decay": group["weight_decay"],
            "betas": group["betas"],
            "base_lrs": list(scheduler.base_lrs),
            "gamma": scheduler.gamma,
            "scheduler_steps": scheduler.last_epoch,
            "exp_avg": [s["exp_avg"].clone() for s in optimizer.state.values()],
        }


def fit_tuned(trial: Trial, folder: Path, epochs: int, **config: float) -> tuple[object, dict[str, object]]:
    """``lt.Linear`` under Adam(lr, weight_decay) and StepLR(gamma) from ``config``."""
    import lightning as L
    import torch

    from tests.integrations import lightning_trainables as lt
    from tuner.integrations.lightning import TunerCallback

    class Tuned(lt.Linear):
        def configure_optimizers(self) -> object:
            optimizer = torch.optim.Adam(self.parameters(), lr=config["lr"], weight_decay=config["weight_decay"])
            return [optimizer], [torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=config["gamma"])]

    callback = TunerCallback(trial)
    recorder = type("Recorder", (Recorder, L.Callback), {})()
    trainer = L.Trainer(
        max_epochs=epochs,
        callbacks=[callback, recorder],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=folder,
    )
    trainer.fit(Tuned(), *lt.loaders(), ckpt_path=callback.ckpt_path)
    return callback, recorder.seen


def test_a_checkpoint_of_another_configuration_goes_on_with_this_one_s_optimizer_settings(tmp_path: Path) -> None:
    """A PBT exploit: the donor trained 2 epochs at lr 0.1, weight decay 0, gamma 0.5; the member
    goes on from its checkpoint with lr 0.01, weight decay 0.1, gamma 0.9. Its optimizer keeps the
    donor's moments and its scheduler the donor's 2 steps, on the member's settings."""
    import torch

    store = CheckpointStore(str(tmp_path))
    donor = Trial("t0", 0, store=store)
    fit_tuned(donor, tmp_path, epochs=2, lr=0.1, weight_decay=0.0, gamma=0.5)
    saved = store.load(store.save("t0", 2, donor.reports[1]["checkpoint"]))[1]
    written = torch.load(io.BytesIO(saved["lightning"].numpy().tobytes()), weights_only=False)
    moments = [s["exp_avg"] for s in written["optimizer_states"][0]["state"].values()]
    assert written["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.1 * 0.5**2)

    member = Trial("t1", 0, store=store, checkpoint=saved)
    callback, seen = fit_tuned(member, tmp_path, epochs=3, lr=0.01, weight_decay=0.1, gamma=0.9)
    assert callback.retuned == ["gamma", "initial_lr", "lr", "weight_decay"]  # type: ignore[attr-defined]
    assert seen["lr"] == pytest.approx(0.01 * 0.5**2)  # the new base, 2 steps down the schedule
    assert seen["initial_lr"] == 0.01 and seen["base_lrs"] == [0.01]
    assert seen["weight_decay"] == 0.1 and seen["gamma"] == 0.9 and seen["betas"] == (0.9, 0.999)
    assert seen["scheduler_steps"] == 2
    kept = seen["exp_avg"]
    assert isinstance(kept, list) and len(kept) == len(moments) == 2
    assert all(torch.equal(a, b) for a, b in zip(kept, moments, strict=True))  # the moments kept
    assert [r["step"] for r in member.reports] == [3.0]

    retry = Trial("t0", 0, store=store, checkpoint=saved)  # the same configuration: all restored
    callback, seen = fit_tuned(retry, tmp_path, epochs=3, lr=0.1, weight_decay=0.0, gamma=0.5)
    assert callback.retuned == []  # type: ignore[attr-defined]
    assert seen["lr"] == pytest.approx(0.1 * 0.5**2) and seen["initial_lr"] == 0.1 and seen["weight_decay"] == 0.0


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env=cli_env(None),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_pytorch_lightning_spelling_alone() -> None:
    """``import pytorch_lightning as pl`` with ``lightning`` hidden: the callback is a
    ``pytorch_lightning`` Callback, reports, and prunes."""
    done = run_python(
        """
        import sys
        sys.modules["lightning"] = None  # hidden: only pytorch_lightning can be used
        import pytorch_lightning as pl
        import torch
        from torch import nn
        from torch.utils.data import DataLoader, TensorDataset
        from tuner.errors import TrialPruned
        from tuner.integrations.lightning import TunerCallback, trainer_options
        from tuner.trial import Trial

        class Model(pl.LightningModule):
            def __init__(self):
                super().__init__()
                self.net = nn.Linear(4, 2)
            def training_step(self, batch, i):
                return nn.functional.cross_entropy(self.net(batch[0]), batch[1])
            def validation_step(self, batch, i):
                self.log("val_loss", nn.functional.cross_entropy(self.net(batch[0]), batch[1]))
            def on_train_epoch_end(self):
                self.log("trained_epoch", float(self.current_epoch))
            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.1)

        data = TensorDataset(torch.randn(32, 4), torch.randint(0, 2, (32,)))
        reports = []
        trial = Trial("t0", 0, emit=reports.append, should_stop=lambda: len(reports) >= 2)
        callback = TunerCallback(trial)
        assert isinstance(callback, pl.Callback)
        trainer = pl.Trainer(
            max_epochs=4, callbacks=[callback], logger=False, enable_checkpointing=False, **trainer_options(trial)
        )
        try:
            trainer.fit(Model(), DataLoader(data, batch_size=8), DataLoader(data, batch_size=32))
        except TrialPruned:
            print("pruned after", [r["step"] for r in reports], "should_stop", trainer.should_stop)
            print("epochs", [r["metrics"]["trained_epoch"] for r in reports])
        """
    )
    assert done.returncode == 0, done.stderr
    assert "pruned after [1.0, 2.0, 3.0] should_stop True" in done.stdout
    assert "epochs [0.0, 1.0, 2.0]" in done.stdout  # what on_train_epoch_end logged, in its epoch's report


def test_without_the_extra_the_cli_names_it(tmp_path: Path) -> None:
    done = run_python(
        f"""
        import sys
        sys.modules["lightning"] = sys.modules["pytorch_lightning"] = None  # as if not installed
        try:
            import tuner.integrations.lightning
        except ImportError as exc:
            print("import:", exc)
        from tuner.cli import main
        sys.exit(main(["run", "search_spaces/digits_lightning.yaml", "--storage", {str(tmp_path)!r}]))
        """
    )
    assert done.returncode == 2, done.stderr
    assert "import: Lightning (lightning or pytorch_lightning) is not installed: pip install 'tuner[lightning]'" in (
        done.stdout
    )
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "trainable: cannot import 'trainables.digits_lightning:train'" in lines[0]
    assert lines[0].endswith("lightning is not installed: pip install 'tuner[lightning]'")


@pytest.mark.slow
def test_the_shipped_study_runs_under_asha_from_the_cli(ray_local: None, in_tmp: Path) -> None:
    done = cli_here("run", str(ROOT / "search_spaces/digits_lightning.yaml"), "--quiet", cwd=in_tmp)
    assert done.returncode == 0, done.stderr
    status = tuner.load_results(in_tmp / "results/digits_lightning")["status"].value_counts().to_dict()
    assert set(status) == {"finished", "pruned"}, status  # none errored
    assert sum(status.values()) == 8


@pytest.mark.slow
def test_a_failed_trial_is_retried_from_its_lightning_checkpoint(ray_local: None, in_tmp: Path) -> None:
    body = STUDY + "max_failures: 1\nparameters:\n  epochs: {value: 5}\n  fail_at: {value: 3}\n"
    out = tuner.run(study(body, allow_modules=["tests"]), quiet=True)
    trials = tuner.load_results(out.folder)
    assert trials["status"].tolist() == ["finished"] and trials["attempts"].tolist() == [1]
    history = tuner.load_history(out.folder)
    assert list(history["step"]) == [1, 2, 3, 4, 5]  # none twice
    # epoch 3 failed in the module's on_train_epoch_end, before its report: the retry went on after epoch 2
    assert list(history["first_epoch"]) == [0, 0, 2, 2, 2]


@pytest.mark.slow
def test_workers_2_train_one_trainer_as_ddp_over_the_worker_group(ray_local: None, in_tmp: Path) -> None:
    """Two trials, one after the other on the one group of 2 ranks; ASHA prunes the second (its
    ``val_loss`` is 10 higher) after its first epoch, on both ranks."""
    body = STUDY + (
        "resources: {workers: 2}\n"
        "early_terminate: {type: asha, max_t: 3, grace_period: 1, reduction_factor: 2}\n"
        "parameters:\n  epochs: {value: 3}\n  offset: {values: [0, 10]}\n"
    )
    out = tuner.run(study(body, allow_modules=["tests"]), quiet=True)
    assert tuner.load_results(out.folder)["status"].tolist() == ["finished", "pruned"]
    history = tuner.load_history(out.folder)
    assert history.groupby("trial_id")["step"].apply(list).tolist() == [[1, 2, 3], [1]]
    assert set(history["world"]) == {2.0}
    assert set(history["rank"]) == {0.5}  # the mean of ranks 0 and 1: both validated, rank 0 reported
    assert set(history["train_batches"]) == {2.0}  # each rank trains on its half: 32 samples in batches of 16
