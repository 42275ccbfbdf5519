# ruff: noqa
# mypy: ignore-errors
"""Ray's ``python/ray/tune/examples/mnist_ptl_mini.py`` (Ray 2.60), a Lightning trainable that
reports with ``ray.tune.integration.pytorch_lightning.TuneReportCheckpointCallback``, as a test
copy. Changed, and only here: MNIST (a download, and torchvision and datasets) is replaced by
generated 1x28x28 images in the same ``LightningDataModule`` shape; and the two lines Lightning 2
no longer takes, which stop the example under any runner, are written as Lightning 2 has them:
``validation_epoch_end(outputs)`` (removed in Lightning 2.0) becomes ``on_validation_epoch_end``
over the outputs kept by ``validation_step``, and ``Trainer(gpus=...)`` (removed) is dropped. Each
change is marked ``# changed``. The callback, the module's logging and the trainable's signature
are Ray's. ``train_mnist_tune_checkpoint`` is the same trainable with checkpoints, resumed as
``TuneReportCheckpointCallback``'s documentation says (``tune.get_checkpoint()``)."""

import math
import os

import lightning.pytorch as pl
import torch
from filelock import FileLock
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset  # changed: TensorDataset for the generated data
from torchmetrics import Accuracy

from ray import tune
from ray.tune.integration.pytorch_lightning import TuneReportCheckpointCallback, TuneReportCallback

PATH_DATASETS = os.environ.get("PATH_DATASETS", ".")


def generated(n, seed):  # changed: in place of MNIST, images whose label is in their mean brightness
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=generator)
    images = torch.rand(n, 1, 28, 28, generator=generator) * 0.2 + labels.view(-1, 1, 1, 1) / 10
    return TensorDataset(images, labels)


class MNISTDataModule(pl.LightningDataModule):
    def __init__(self, batch_size: int, data_dir: str = PATH_DATASETS):
        super().__init__()
        self.data_dir = data_dir
        self.batch_size = batch_size
        self.dims = (1, 28, 28)
        self.num_classes = 10

    def prepare_data(self):
        pass  # changed: nothing to download

    def setup(self, stage=None):
        self.mnist_train = generated(256, 0)  # changed
        self.mnist_val = generated(128, 1)  # changed

    def train_dataloader(self):
        return DataLoader(self.mnist_train, batch_size=self.batch_size)

    def val_dataloader(self):
        return DataLoader(self.mnist_val, batch_size=self.batch_size)


class LightningMNISTClassifier(pl.LightningModule):
    def __init__(self, config, data_dir=None):
        super(LightningMNISTClassifier, self).__init__()

        self.data_dir = data_dir or os.getcwd()
        self.lr = config["lr"]
        layer_1, layer_2 = config["layer_1"], config["layer_2"]
        self.batch_size = config["batch_size"]

        # mnist images are (1, 28, 28) (channels, width, height)
        self.layer_1 = torch.nn.Linear(28 * 28, layer_1)
        self.layer_2 = torch.nn.Linear(layer_1, layer_2)
        self.layer_3 = torch.nn.Linear(layer_2, 10)
        self.accuracy = Accuracy(task="multiclass", num_classes=10, top_k=1)
        self.outputs = []  # changed: Lightning 2 hands no outputs to the epoch's end

    def forward(self, x):
        batch_size, channels, width, height = x.size()
        x = x.view(batch_size, -1)
        x = self.layer_1(x)
        x = torch.relu(x)
        x = self.layer_2(x)
        x = torch.relu(x)
        x = self.layer_3(x)
        x = torch.log_softmax(x, dim=1)
        return x

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)

    def training_step(self, train_batch, batch_idx):
        x, y = train_batch
        logits = self.forward(x)
        loss = F.nll_loss(logits, y)
        acc = self.accuracy(logits, y)
        self.log("ptl/train_loss", loss)
        self.log("ptl/train_accuracy", acc)
        return loss

    def validation_step(self, val_batch, batch_idx):
        x, y = val_batch
        logits = self.forward(x)
        loss = F.nll_loss(logits, y)
        acc = self.accuracy(logits, y)
        self.outputs.append({"val_loss": loss, "val_accuracy": acc})  # changed
        return {"val_loss": loss, "val_accuracy": acc}

    def on_validation_epoch_end(self):  # changed: was validation_epoch_end(self, outputs)
        outputs, self.outputs = self.outputs, []  # changed
        avg_loss = torch.stack([x["val_loss"] for x in outputs]).mean()
        avg_acc = torch.stack([x["val_accuracy"] for x in outputs]).mean()
        self.log("ptl/val_loss", avg_loss)
        self.log("ptl/val_accuracy", avg_acc)


def train_mnist_tune(config, num_epochs=10, num_gpus=0):
    data_dir = os.path.abspath("./data")
    model = LightningMNISTClassifier(config, data_dir)
    with FileLock(os.path.expanduser("~/.data.lock")):
        dm = MNISTDataModule(data_dir=data_dir, batch_size=config["batch_size"])
    metrics = {"loss": "ptl/val_loss", "acc": "ptl/val_accuracy"}
    trainer = pl.Trainer(
        max_epochs=num_epochs,
        # If fractional GPUs passed in, convert to int.
        # changed: gpus=math.ceil(num_gpus) is no longer a Trainer argument
        enable_progress_bar=False,
        callbacks=[TuneReportCheckpointCallback(metrics, on="validation_end", save_checkpoints=False)],
    )
    trainer.fit(model, dm)


def train_mnist_tune_checkpoint(config, num_epochs=10):
    """The same with checkpoints (``TuneReportCheckpointCallback``'s default), going on from
    ``tune.get_checkpoint()``."""
    model = LightningMNISTClassifier(config)
    dm = MNISTDataModule(batch_size=config["batch_size"])
    metrics = {"loss": "ptl/val_loss", "acc": "ptl/val_accuracy"}
    trainer = pl.Trainer(
        max_epochs=num_epochs,
        enable_progress_bar=False,
        logger=False,
        enable_checkpointing=False,
        callbacks=[
            TuneReportCheckpointCallback(metrics, filename="checkpoint", on="validation_end"),
        ],
    )
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as checkpoint_dir:
            trainer.fit(model, dm, ckpt_path=os.path.join(checkpoint_dir, "checkpoint"))
    else:
        trainer.fit(model, dm)


def train_mnist_tune_report(config, num_epochs=10):
    """The same with the deprecated ``TuneReportCallback``, as Ray's older Lightning guide has it."""
    model = LightningMNISTClassifier(config)
    dm = MNISTDataModule(batch_size=config["batch_size"])
    callback = TuneReportCallback({"loss": "ptl/val_loss", "mean_accuracy": "ptl/val_accuracy"}, on="validation_end")
    trainer = pl.Trainer(max_epochs=num_epochs, enable_progress_bar=False, logger=False, callbacks=[callback])
    trainer.fit(model, dm)


# added: module-level trainables for a study file, as tune_mnist() builds them
mini = tune.with_parameters(train_mnist_tune, num_epochs=3)
with_checkpoints = tune.with_parameters(train_mnist_tune_checkpoint, num_epochs=3)
reporting = tune.with_parameters(train_mnist_tune_report, num_epochs=2)


class CrashingOnce(LightningMNISTClassifier):  # added: fails once, after epoch 2's validation
    def on_validation_epoch_end(self):
        super().on_validation_epoch_end()
        self.log("epoch_done", float(self.current_epoch + 1))

    def on_train_epoch_end(self):
        marker = os.path.join(self.crash_dir, tune.get_context().get_trial_id())
        if self.current_epoch == 1 and not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("crashed once, at the end of epoch 2, on purpose")


def train_crashing_once(config):  # added: train_mnist_tune_checkpoint on CrashingOnce
    model = CrashingOnce(config)
    model.crash_dir = config["crash_dir"]
    dm = MNISTDataModule(batch_size=config["batch_size"])
    metrics = {"loss": "ptl/val_loss", "epoch": "epoch_done"}
    trainer = pl.Trainer(
        max_epochs=3,
        enable_progress_bar=False,
        logger=False,
        enable_checkpointing=False,
        callbacks=[TuneReportCheckpointCallback(metrics, filename="checkpoint", on="validation_end")],
    )
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as checkpoint_dir:
            trainer.fit(model, dm, ckpt_path=os.path.join(checkpoint_dir, "checkpoint"))
    else:
        trainer.fit(model, dm)
