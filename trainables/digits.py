"""scikit-learn's ``load_digits`` (1,797 real 8x8 images, offline): an MLP and a small CNN.

Both report ``train_loss``, ``val_loss`` and ``val_accuracy`` after every epoch on a fixed
80/20 split, so trials are compared on the same validation set.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

from tuner.trial import Trial

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU}


@functools.cache
def load(val_fraction: float = 0.2, split_seed: int = 0) -> tuple[torch.Tensor, ...]:
    """``(x_train, y_train, x_val, y_val)``: pixels scaled to [0, 1], images 1x8x8."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(split_seed))
    n_val = int(len(y) * val_fraction)
    val, train = order[:n_val], order[n_val:]
    return x[train], y[train], x[val], y[val]


def mlp(config: dict[str, Any]) -> nn.Module:
    act = ACTIVATIONS[config.get("activation", "relu")]
    width, depth = int(config.get("hidden", 128)), int(config.get("layers", 2))
    layers: list[nn.Module] = [nn.Flatten()]
    size = 64
    for _ in range(depth):
        layers += [nn.Linear(size, width), act(), nn.Dropout(float(config.get("dropout", 0.0)))]
        size = width
    layers.append(nn.Linear(size, 10))
    return nn.Sequential(*layers)


def cnn(config: dict[str, Any]) -> nn.Module:
    act = ACTIVATIONS[config.get("activation", "relu")]
    c = int(config.get("channels", 16))
    return nn.Sequential(
        nn.Conv2d(1, c, 3, padding=1),
        act(),
        nn.Conv2d(c, 2 * c, 3, padding=1),
        act(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(float(config.get("dropout", 0.0))),
        nn.Linear(2 * c * 16, int(config.get("hidden", 64))),
        act(),
        nn.Linear(int(config.get("hidden", 64)), 10),
    )


def _optimizer(config: dict[str, Any], params: Any) -> torch.optim.Optimizer:
    name = config.get("optimizer", "adam")
    lr, wd = float(config.get("lr", 1e-3)), float(config.get("weight_decay", 0.0))
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=float(config.get("momentum", 0.9)), weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    raise ValueError(f"unknown optimizer {name!r}; one of adam, adamw, sgd")


def fit(model: nn.Module, config: dict[str, Any], trial: Trial) -> None:
    """Train ``model`` for ``epochs`` (or the scheduler's ``max_t``), reporting every epoch.

    ``batch_size`` is the global batch: with ``workers: N`` each rank takes ``batch_size / N``.
    A checkpoint goes with every ``checkpoint_every``-th report; a retried trial resumes from it.
    """
    from torch.utils.data import TensorDataset

    x_train, y_train, x_val, y_val = load()
    train = trial.loader(TensorDataset(x_train, y_train), int(config.get("batch_size", 64)), shuffle=True)
    val = trial.loader(TensorDataset(x_val, y_val), 512, shuffle=False)
    model = trial.prepare(model)
    optimizer = _optimizer(config, model.parameters())
    loss_fn = nn.CrossEntropyLoss()
    epochs = int(config.get("epochs", trial.max_steps or 20))
    every = int(config.get("checkpoint_every", 5))
    first = 1
    if (saved := trial.checkpoint()) is not None:
        trial.unwrap(model).load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        first = int(saved["epoch"]) + 1
    for epoch in range(first, epochs + 1):
        model.train()
        total, count = 0.0, 0
        optimizer.zero_grad(set_to_none=True)
        for i, (x, y) in enumerate(train, start=1):
            loss = loss_fn(model(x), y)
            (loss / trial.accumulation).backward()  # accumulation > 1 after an out-of-memory retry
            if i % trial.accumulation == 0 or i == len(train):
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            total, count = total + loss.item() * len(y), count + len(y)
        model.eval()
        val_loss, correct, seen = 0.0, 0, 0
        with torch.no_grad():
            for x, y in val:
                logits = model(x)
                val_loss += loss_fn(logits, y).item() * len(y)
                correct += int((logits.argmax(1) == y).sum().item())
                seen += len(y)
        state = None
        if epoch % every == 0 or epoch == epochs:
            state = {"model": trial.unwrap(model).state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch}
        trial.report(
            epoch, train_loss=total / count, val_loss=val_loss / seen, val_accuracy=correct / seen, checkpoint=state
        )


def train_mlp(config: dict[str, Any], trial: Trial) -> None:
    torch.manual_seed(trial.seed)
    fit(mlp(config), config, trial)


def train_cnn(config: dict[str, Any], trial: Trial) -> None:
    torch.manual_seed(trial.seed)
    fit(cnn(config), config, trial)
