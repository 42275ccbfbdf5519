"""A tiny BERT classifier trained by Hugging Face's ``Trainer``: built from a config, so no weights
are downloaded, on generated token sequences (the label: whether the first token is in the upper
half of the vocabulary). Each epoch is a few steps on a CPU.

``TunerCallback`` reports ``eval_loss`` (and ``eval_accuracy``) after every epoch with the epoch as
the step, stops the Trainer when the scheduler prunes the trial, and keeps the Trainer's
checkpoint so that a retried or resumed trial goes on from it. ``make_trainer`` is the factory
that :func:`tuner.integrations.transformers.search` takes. Needs ``pip install 'tuner[transformers]'``.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np
import torch

from tuner.integrations.transformers import TunerCallback, training_arguments
from tuner.trial import Trial

VOCAB = 32
LENGTH = 8


class Tokens(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """``n`` sequences of ``LENGTH`` token ids, generated from ``seed``."""

    def __init__(self, n: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, VOCAB, (n, LENGTH), generator=generator)
        self.labels = (self.ids[:, 0] >= VOCAB // 2).long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def accuracy(prediction: Any) -> dict[str, float]:
    logits, labels = prediction
    return {"accuracy": float(np.mean(np.argmax(logits, axis=-1) == labels))}


def make_trainer(config: dict[str, Any], output_dir: str = "tiny_transformer_out", **arguments: Any) -> Any:
    """A ``Trainer`` of a tiny BERT (``hidden_size`` wide, one layer) with ``config`` 's training
    arguments, evaluating and saving after every epoch, on the CPU; ``arguments`` are more
    ``TrainingArguments`` keywords (``**training_arguments(trial)``)."""
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    seed = int(config.get("seed", 0))
    torch.manual_seed(seed)
    hidden = int(config.get("hidden_size", 16))
    model = BertForSequenceClassification(
        BertConfig(
            vocab_size=VOCAB,
            hidden_size=hidden,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=2 * hidden,
            max_position_embeddings=LENGTH,  # two labels: the default
        )
    )
    args = TrainingArguments(
        output_dir=output_dir,
        learning_rate=float(config.get("learning_rate", 1e-3)),
        weight_decay=float(config.get("weight_decay", 0.0)),
        per_device_train_batch_size=int(config.get("per_device_train_batch_size", 16)),
        per_device_eval_batch_size=64,
        num_train_epochs=float(config.get("num_train_epochs", 3)),
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=seed,
        dataloader_num_workers=0,
        **{"use_cpu": True, **arguments},
    )
    return Trainer(
        model=model,
        args=args,
        train_dataset=Tokens(64, 0),
        eval_dataset=Tokens(64, 1),
        compute_metrics=accuracy,
    )


def train(config: dict[str, Any], trial: Trial) -> None:
    """Train for ``num_train_epochs`` epochs, reporting after each (the epoch is the step); with
    ``workers: N``, as DDP over the trial's worker group."""
    torch.set_num_threads(1)
    callback = TunerCallback(trial, step="epoch")
    with tempfile.TemporaryDirectory(prefix="tiny-transformer-") as out:
        folder = os.path.join(out, trial.trial_id)
        trainer = make_trainer({**config, "seed": trial.seed}, output_dir=folder, **training_arguments(trial))
        trainer.add_callback(callback)
        trainer.train(resume_from_checkpoint=callback.resume_from_checkpoint)
