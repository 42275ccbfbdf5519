"""Small Lightning trainables for tests/integrations/test_lightning.py: 64 random samples, a linear
model, a few epochs. Each logs, besides ``val_loss``, what the tests check."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tuner.integrations.lightning import TunerCallback, trainer_options
from tuner.trial import Trial


class Linear(L.LightningModule):
    def __init__(self, fail_at: int | None = None, offset: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Linear(4, 2)
        self.fail_at = fail_at
        self.offset = offset
        self.first_epoch: float | None = None

    def on_train_epoch_start(self) -> None:
        if self.first_epoch is None:  # the first epoch this fit trains: after a restore, where it went on
            self.first_epoch = float(self.trainer.current_epoch)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss: torch.Tensor = nn.functional.cross_entropy(self.net(x), y)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self.net(x), y) + self.offset)
        self.log("first_epoch", float(self.current_epoch) if self.first_epoch is None else self.first_epoch)
        self.log("rank", float(self.global_rank))
        self.log("world", float(self.trainer.world_size))
        self.log("train_batches", float(self.trainer.num_training_batches))

    def on_train_epoch_end(self) -> None:
        if self.trainer.current_epoch + 1 == self.fail_at:
            raise RuntimeError(f"failed on purpose after epoch {self.fail_at}")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


class Counted(Linear):
    """Counts the calls of its own ``on_train_epoch_end`` (in ``Counted.ends``)."""

    ends = 0

    def on_train_epoch_end(self) -> None:
        Counted.ends += 1


def loaders() -> tuple[DataLoader[Any], DataLoader[Any]]:
    generator = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(64, 4, generator=generator), torch.randint(0, 2, (64,), generator=generator))
    return DataLoader(data, batch_size=16), DataLoader(data, batch_size=64)


def train(config: dict[str, Any], trial: Trial) -> None:
    """``epochs`` epochs; with ``fail_at``, the first attempt raises after that epoch; ``offset`` is
    added to ``val_loss`` (a trial the scheduler is sure to prune)."""
    torch.manual_seed(trial.seed)
    callback = TunerCallback(trial, monitor="val_loss")
    trainer = L.Trainer(
        max_epochs=int(config["epochs"]),
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **trainer_options(trial),
    )
    fail_at = config.get("fail_at") if trial.checkpoint() is None else None
    model = Linear(fail_at, float(config.get("offset", 0.0)))
    trainer.fit(model, *loaders(), ckpt_path=callback.ckpt_path)
