"""The digits MLP as a ``LightningModule``, trained by a Lightning ``Trainer`` per trial.

``TunerCallback`` reports ``val_loss`` and ``val_accuracy`` after every epoch, stops the Trainer
when the scheduler prunes the trial, and keeps the Trainer's checkpoint so that a retried or
resumed trial goes on from it; ``trainer_options`` puts the Trainer on the trial's device and,
with ``workers: N``, runs it as DDP over the trial's worker group (``batch_size`` is the global
batch: each rank takes ``batch_size / N``). Needs ``pip install 'tuner[lightning]'``.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainables.digits import load, mlp
from tuner.integrations.lightning import TunerCallback, trainer_options
from tuner.trial import Trial


class DigitsMLP(L.LightningModule):
    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = dict(config)
        self.net = mlp(config)
        self.loss_fn = nn.CrossEntropyLoss()

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss: torch.Tensor = self.loss_fn(self.net(x), y)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        logits = self.net(x)
        self.log("val_loss", self.loss_fn(logits, y))
        self.log("val_accuracy", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        lr, wd = float(self.config.get("lr", 1e-3)), float(self.config.get("weight_decay", 0.0))
        return torch.optim.Adam(self.parameters(), lr=lr, weight_decay=wd)


def train(config: dict[str, Any], trial: Trial) -> None:
    torch.manual_seed(trial.seed)
    x_train, y_train, x_val, y_val = load()
    batch_size = max(1, int(config.get("batch_size", 64)) // trial.world_size)
    train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=batch_size, shuffle=True)
    val_loader = DataLoader(TensorDataset(x_val, y_val), batch_size=512)
    callback = TunerCallback(trial, monitor="val_loss")
    trainer = L.Trainer(
        max_epochs=int(config.get("epochs", trial.max_steps or 20)),
        limit_train_batches=config.get("limit_train_batches", 1.0),  # a fraction, or a number of batches
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,  # the callback keeps the checkpoints, in the study's store
        enable_progress_bar=False,
        enable_model_summary=False,
        **trainer_options(trial),
    )
    trainer.fit(DigitsMLP(config), train_loader, val_loader, ckpt_path=callback.ckpt_path)
