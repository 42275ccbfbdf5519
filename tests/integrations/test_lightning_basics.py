"""Modules in the shape of Lightning's basics examples (``tests/integrations/lightning_basics.py``)
tuned by a trainable that does what those examples' ``cli_main`` does, with a ``TunerCallback``:
fit with a ``ModelCheckpoint``, then ``test`` and ``predict`` from its best checkpoint; a pruned
trial, and a retry that goes on from the checkpoint the callback reported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tuner.errors import TrialPruned
from tuner.storage import CheckpointStore
from tuner.trial import Trial


@pytest.fixture
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # the Trainer writes out/<trial>/lightning_logs where it runs
    return tmp_path


def fit_test_predict(kind: str, config: dict[str, Any], trial: Trial, monitor: str) -> tuple[Any, Any]:
    """The trainable: the module and data module from ``config``, a Trainer with a
    ``ModelCheckpoint`` on ``monitor`` and a ``TunerCallback`` (a few batches an epoch), fit,
    then test and predict from "best"."""
    import lightning as L

    from tests.integrations import lightning_basics as basics
    from tuner.integrations.lightning import TunerCallback, trainer_options

    L.seed_everything(trial.seed)
    if kind == "autoencoder":
        model: L.LightningModule = basics.AutoEncoder(code=config["code"], learning_rate=config["learning_rate"])
    else:
        backbone = basics.small_backbone(config["width"])
        model = basics.Classifier(backbone, learning_rate=config["learning_rate"])
    callback = TunerCallback(trial, monitor=monitor)
    trainer = L.Trainer(
        max_epochs=config["max_epochs"],
        callbacks=[L.pytorch.callbacks.ModelCheckpoint(monitor=monitor, mode="min"), callback],
        default_root_dir=f"out/{trial.trial_id}",
        limit_train_batches=4,
        limit_val_batches=2,
        limit_test_batches=2,
        limit_predict_batches=1,
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        **trainer_options(trial),
    )
    datamodule = basics.ImagesDataModule(batch_size=config["batch_size"])
    trainer.fit(model, datamodule=datamodule, ckpt_path=callback.ckpt_path)
    tested = trainer.test(ckpt_path="best", datamodule=datamodule, verbose=False)
    predictions = trainer.predict(ckpt_path="best", datamodule=datamodule)
    return tested, predictions


CONFIG = {"max_epochs": 2, "learning_rate": 1e-3, "batch_size": 16, "code": 3, "width": 16}


@pytest.mark.parametrize(("kind", "monitor"), [("autoencoder", "val_loss"), ("classifier", "valid_loss")])
def test_basics_shaped_modules_report_and_then_test_and_predict(in_tmp_path: Path, kind: str, monitor: str) -> None:
    store = CheckpointStore(str(in_tmp_path / "store"))
    trial = Trial("t0", 0, store=store)
    tested, predictions = fit_test_predict(kind, CONFIG, trial, monitor)
    assert [r["step"] for r in trial.reports] == [1.0, 2.0]
    assert monitor in trial.reports[0]["metrics"] and "lightning" in trial.reports[1]["checkpoint"]
    assert {"test_loss", "test_loss_epoch"} & set(tested[0]) and len(predictions) == 1  # from ModelCheckpoint's best
    assert (in_tmp_path / "out/t0/lightning_logs/version_0/checkpoints").is_dir()

    saved = store.load(store.save("t0", 1, trial.reports[0]["checkpoint"]))[1]  # a retry after epoch 1
    again = Trial("t0", 0, store=store, checkpoint=saved)
    fit_test_predict(kind, {**CONFIG, "max_epochs": 3}, again, monitor)
    assert [r["step"] for r in again.reports] == [2.0, 3.0]


def test_a_pruned_fit_stops_before_test(in_tmp_path: Path) -> None:
    reports: list[dict[str, Any]] = []
    trial = Trial("t0", 0, emit=reports.append, should_stop=lambda: len(reports) >= 1)
    with pytest.raises(TrialPruned):
        fit_test_predict("classifier", {**CONFIG, "max_epochs": 4}, trial, "valid_loss")
    assert [r["step"] for r in reports] == [1.0, 2.0]
