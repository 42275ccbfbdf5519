"""Two small Lightning modules and a data module, written for tuner's tests in the shape of
Lightning's basics examples (Lightning-AI/pytorch-lightning, ``examples/pytorch/basics/autoencoder.py``
and ``examples/pytorch/basics/backbone_image_classifier.py``): a module whose ``<stage>_loss`` is
logged by one shared step, a classifier that takes its network as a ``backbone`` argument, and a
``LightningDataModule`` with train, validation, test and predict loaders. The data is generated:
small grey images whose class sets their brightness."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset, random_split

SIDE = 8  # images are SIDE x SIDE, one channel
CLASSES = 4


def images(count: int, seed: int) -> TensorDataset:
    """``count`` images in [0, 1] and their classes: noise around a brightness set by the class."""
    generator = torch.Generator().manual_seed(seed)
    classes = torch.randint(0, CLASSES, (count,), generator=generator)
    noise = torch.rand(count, 1, SIDE, SIDE, generator=generator) * 0.3
    return TensorDataset(noise + classes.view(-1, 1, 1, 1).float() * 0.2, classes)


class ImagesDataModule(L.LightningDataModule):
    """Generated images, split into training and validation; a held-out set to test and predict on."""

    def __init__(self, batch_size: int = 32, count: int = 512) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.count = count

    def setup(self, stage: str) -> None:
        pool = images(self.count, seed=0)
        self.train_set, self.val_set = random_split(
            pool, [self.count - self.count // 8, self.count // 8], generator=torch.Generator().manual_seed(7)
        )
        self.held_out = images(self.count // 4, seed=1)

    def _loader(self, data: Any) -> DataLoader:
        return DataLoader(data, batch_size=self.batch_size)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.held_out)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.held_out)


class AutoEncoder(L.LightningModule):
    """Squeezes each flattened image through a ``code``-wide layer and rebuilds it; one step
    function logs ``train_loss``, ``val_loss`` and ``test_loss`` (per step and per epoch)."""

    def __init__(self, width: int = 32, code: int = 4, learning_rate: float = 1e-3) -> None:
        super().__init__()
        self.save_hyperparameters()
        pixels = SIDE * SIDE
        self.encode = nn.Sequential(nn.Flatten(), nn.Linear(pixels, width), nn.Tanh(), nn.Linear(width, code))
        self.decode = nn.Sequential(nn.Linear(code, width), nn.Tanh(), nn.Linear(width, pixels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def _loss(self, batch: Any, stage: str) -> torch.Tensor:
        x = batch[0].flatten(1)
        loss = F.mse_loss(self(x), x)
        self.log(f"{stage}_loss", loss, on_step=True, on_epoch=True)
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._loss(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._loss(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._loss(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        return self(batch[0].flatten(1))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams["learning_rate"])


def small_backbone(width: int = 32) -> nn.Module:
    """A two-layer network from an image to one score per class."""
    return nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, width), nn.ReLU(), nn.Linear(width, CLASSES))


class Classifier(L.LightningModule):
    """Classifies the images with the ``backbone`` it is given (a small one if none); logs
    ``train_loss`` per epoch, ``valid_loss`` per step and epoch, and ``test_loss``."""

    def __init__(self, backbone: nn.Module | None = None, learning_rate: float = 1e-3) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        self.backbone = backbone if backbone is not None else small_backbone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def _loss(self, batch: Any) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self(x), y)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("valid_loss", self._loss(batch), on_step=True, on_epoch=True)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.log("test_loss", self._loss(batch))

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        return self(batch[0]).argmax(dim=1)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams["learning_rate"])
