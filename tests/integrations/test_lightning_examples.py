"""Lightning's own examples (``examples/pytorch/basics/autoencoder.py`` and
``backbone_image_classifier.py``, kept byte for byte in ``tests/integrations/lightning_examples``)
tuned by a trainable that does what their ``cli_main`` does, with a ``TunerCallback``: fit, then
``test`` and ``predict`` from the best checkpoint of Lightning's own ``ModelCheckpoint``.

Their data is replaced here only: ``PL_USE_MOCKED_MNIST`` makes Lightning's ``MNIST`` demo
dataset read ``MNIST/complete/{training,test}.pt`` under the examples' ``DATASETS_PATH``, which
the test points at generated images (nothing downloaded); ``transforms.ToTensor()``, which the
examples pass and the demo dataset ignores, needs torchvision, which is not installed: a stand-in
takes its name."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest
import torch

from tuner.errors import TrialPruned
from tuner.storage import CheckpointStore
from tuner.trial import Trial


@pytest.fixture
def mnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Generated MNIST files where the examples look (60000 training images: they split 55000/5000)."""
    from tests.integrations.lightning_examples import autoencoder, backbone_image_classifier

    folder = tmp_path / "Datasets" / "MNIST" / "complete"
    folder.mkdir(parents=True)
    generator = torch.Generator().manual_seed(0)
    for name, n in (("training.pt", 60000), ("test.pt", 256)):
        targets = torch.randint(0, 10, (n,), generator=generator)
        images = (torch.rand(n, 28, 28, generator=generator) * 100 + targets.view(-1, 1, 1) * 15).to(torch.uint8)
        torch.save((images, targets), folder / name)
    monkeypatch.setenv("PL_USE_MOCKED_MNIST", "1")
    for example in (autoencoder, backbone_image_classifier):
        monkeypatch.setattr(example, "DATASETS_PATH", str(tmp_path / "Datasets"))
        monkeypatch.setattr(example, "transforms", types.SimpleNamespace(ToTensor=lambda: None), raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def cli_main(example: str, config: dict[str, Any], trial: Trial, monitor: str) -> tuple[Any, Any]:
    """The example's ``cli_main`` as a trainable: its model and data module from ``config``, a
    Trainer with a ``TunerCallback`` (a few batches an epoch), fit, test and predict from "best"."""
    import importlib

    import lightning as L

    from tuner.integrations.lightning import TunerCallback, trainer_options

    module = importlib.import_module(f"tests.integrations.lightning_examples.{example}")
    model_class = module.LitAutoEncoder if example == "autoencoder" else module.LitClassifier
    L.seed_everything(1234)  # seed_everything_default=1234
    callback = TunerCallback(trial, monitor=monitor)
    trainer = L.Trainer(
        max_epochs=config["max_epochs"],
        callbacks=[callback],
        default_root_dir=f"out/{trial.trial_id}",
        limit_train_batches=4,
        limit_val_batches=2,
        limit_test_batches=2,
        limit_predict_batches=1,
        enable_progress_bar=False,
        **trainer_options(trial),
    )
    model = model_class(learning_rate=config["learning_rate"])
    datamodule = module.MyDataModule(batch_size=config["batch_size"])
    trainer.fit(model, datamodule=datamodule, ckpt_path=callback.ckpt_path)
    tested = trainer.test(ckpt_path="best", datamodule=datamodule)
    predictions = trainer.predict(ckpt_path="best", datamodule=datamodule)
    return tested, predictions


@pytest.mark.parametrize(
    ("example", "monitor"), [("autoencoder", "val_loss"), ("backbone_image_classifier", "valid_loss")]
)
def test_lightning_s_basic_examples_report_and_then_test_and_predict(mnist: Path, example: str, monitor: str) -> None:
    store = CheckpointStore(str(mnist / "store"))
    trial = Trial("t0", 0, store=store)
    config = {"max_epochs": 2, "learning_rate": 1e-3, "batch_size": 16}
    tested, predictions = cli_main(example, config, trial, monitor)
    assert [r["step"] for r in trial.reports] == [1.0, 2.0]
    assert monitor in trial.reports[0]["metrics"] and "lightning" in trial.reports[1]["checkpoint"]
    assert {"test_loss", "test_loss_epoch"} & set(tested[0]) and len(predictions) == 1  # from ModelCheckpoint's best
    assert (mnist / "out/t0/lightning_logs/version_0/checkpoints").is_dir()

    saved = store.load(store.save("t0", 1, trial.reports[0]["checkpoint"]))[1]  # a retry after epoch 1
    again = Trial("t0", 0, store=store, checkpoint=saved)
    cli_main(example, {**config, "max_epochs": 3}, again, monitor)
    assert [r["step"] for r in again.reports] == [2.0, 3.0]


def test_a_pruned_example_stops_before_test(mnist: Path) -> None:
    reports: list[dict[str, Any]] = []
    trial = Trial("t0", 0, emit=reports.append, should_stop=lambda: len(reports) >= 1)
    with pytest.raises(TrialPruned):
        cli_main(
            "backbone_image_classifier", {"max_epochs": 4, "learning_rate": 1e-3, "batch_size": 16}, trial, "valid_loss"
        )
    assert [r["step"] for r in reports] == [1.0, 2.0]
