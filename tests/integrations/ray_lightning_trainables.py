"""Ray Tune trainables (``train_fn(config)``) that report through Ray's Lightning callbacks,
``ray.tune.integration.pytorch_lightning.TuneReportCheckpointCallback`` and the older
``TuneReportCallback``, written for tuner's tests in the style of Ray's Lightning example
(ray-project/ray, ``python/ray/tune/examples/mnist_ptl_mini.py``): the module logs ``ptl/val_*``
at the end of validation, the callback maps them to the names Tune sees, and a trainable with
checkpoints goes on from ``tune.get_checkpoint()``. The data is generated: points in two
dimensions, their class the quadrant they lie in."""

from __future__ import annotations

import os
from typing import Any

import lightning.pytorch as pl
import torch
from ray import tune
from ray.tune.integration.pytorch_lightning import TuneReportCallback, TuneReportCheckpointCallback
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

METRICS = {"loss": "ptl/val_loss", "acc": "ptl/val_accuracy"}  # Tune's name: what the module logs


def quadrants(count: int, seed: int) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    points = torch.randn(count, 2, generator=generator)
    return TensorDataset(points, (points[:, 0] > 0).long() * 2 + (points[:, 1] > 0).long())


class QuadrantData(pl.LightningDataModule):
    def __init__(self, batch_size: int) -> None:
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage: str) -> None:
        self.train_set, self.val_set = quadrants(256, seed=0), quadrants(128, seed=1)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size)


class QuadrantClassifier(pl.LightningModule):
    """An MLP of ``config["hidden"]`` units; the validation's mean loss and accuracy are logged
    once, when validation ends."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.lr = config["lr"]
        self.net = torch.nn.Sequential(
            torch.nn.Linear(2, config["hidden"]), torch.nn.ReLU(), torch.nn.Linear(config["hidden"], 4)
        )
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []  # this validation's (loss, accuracy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("ptl/train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        scores = self(x)
        self.seen.append((F.cross_entropy(scores, y), (scores.argmax(1) == y).float().mean()))

    def on_validation_epoch_end(self) -> None:
        losses, accuracies = zip(*self.seen, strict=True)
        self.seen = []
        self.log("ptl/val_loss", torch.stack(losses).mean())
        self.log("ptl/val_accuracy", torch.stack(accuracies).mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def trainer(epochs: int, callback: Any) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=epochs,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def fit(model: pl.LightningModule, data: pl.LightningDataModule, trained: pl.Trainer) -> None:
    """``trainer.fit``, from the checkpoint Tune hands a retry when there is one."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        trained.fit(model, data)
        return
    with checkpoint.as_directory() as folder:
        trained.fit(model, data, ckpt_path=os.path.join(folder, "checkpoint"))


def train_reports_only(config: dict[str, Any], num_epochs: int = 3) -> None:
    """Reports each validation, no checkpoints (``save_checkpoints=False``)."""
    callback = TuneReportCheckpointCallback(METRICS, on="validation_end", save_checkpoints=False)
    trainer(num_epochs, callback).fit(QuadrantClassifier(config), QuadrantData(config["batch_size"]))


def train_with_checkpoints(config: dict[str, Any], num_epochs: int = 3) -> None:
    """Reports each validation with the Trainer's checkpoint, and goes on from it on a retry."""
    callback = TuneReportCheckpointCallback(METRICS, filename="checkpoint", on="validation_end")
    fit(QuadrantClassifier(config), QuadrantData(config["batch_size"]), trainer(num_epochs, callback))


def train_with_report_callback(config: dict[str, Any], num_epochs: int = 2) -> None:
    """The deprecated ``TuneReportCallback``, under other names than ``METRICS``'."""
    callback = TuneReportCallback({"loss": "ptl/val_loss", "mean_accuracy": "ptl/val_accuracy"}, on="validation_end")
    trainer(num_epochs, callback).fit(QuadrantClassifier(config), QuadrantData(config["batch_size"]))


class FailingOnce(QuadrantClassifier):
    """Logs the epochs validated; fails once (a marker file in ``config["crash_dir"]``), at the
    end of epoch 2's training, after the callback has reported that epoch's validation."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.crash_dir = config["crash_dir"]

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        self.log("epochs_validated", float(self.current_epoch + 1))

    def on_train_epoch_end(self) -> None:
        marker = os.path.join(self.crash_dir, tune.get_context().get_trial_id())
        if self.current_epoch == 1 and not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("failed once, at the end of epoch 2, on purpose")


def train_failing_once(config: dict[str, Any]) -> None:
    """``train_with_checkpoints`` over three epochs, on ``FailingOnce``."""
    metrics = {"loss": "ptl/val_loss", "epoch": "epochs_validated"}
    callback = TuneReportCheckpointCallback(metrics, filename="checkpoint", on="validation_end")
    fit(FailingOnce(config), QuadrantData(config["batch_size"]), trainer(3, callback))
