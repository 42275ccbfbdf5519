"""scikit-learn's ``load_digits`` (1,797 real 8x8 images, offline): an MLP and a small CNN.

Both report ``train_loss``, ``val_loss`` and ``val_accuracy`` after every epoch on a fixed
split (65% train, 20% validation, 15% test), so trials are compared on the same validation
set. The test split is never used in a search: only a final run (``train``, ``confirm``:
``trial.final``) also reports ``test_loss`` and ``test_accuracy``, at its last epoch.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

from tuner.trial import Trial

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU}


@functools.cache
def load(
    val_fraction: float = 0.2, test_fraction: float = 0.15, split_seed: int = 0, test: bool = False
) -> tuple[torch.Tensor, ...]:
    """``(x_train, y_train, x_val, y_val)``, or with ``test`` the held-out ``(x_test, y_test)``:
    pixels scaled to [0, 1], images 1x8x8."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(split_seed))
    n_val, n_test = int(len(y) * val_fraction), int(len(y) * test_fraction)
    val, held, train = order[:n_val], order[n_val : n_val + n_test], order[n_val + n_test :]
    if test:
        return x[held], y[held]
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
    params_k = sum(p.numel() for p in model.parameters()) / 1000  # a second objective: the model's size
    model = trial.prepare(model)
    optimizer = _optimizer(config, model.parameters())
    loss_fn = nn.CrossEntropyLoss()
    epochs = int(config.get("epochs", trial.max_steps or 20))
    every = int(config.get("checkpoint_every", 5))
    first = 1
    if (saved := trial.checkpoint()) is not None:
        trial.load_state_dict(model, optimizer, saved)  # whatever the strategy (ddp, fsdp)
        first = int(saved["epoch"]) + 1
        for group in optimizer.param_groups:  # the configuration's values, not the saved ones: a
            group["lr"] = float(config.get("lr", 1e-3))  # population member goes on from a donor's
            group["weight_decay"] = float(config.get("weight_decay", 0.0))  # state with its own values
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
        val_loss, val_accuracy = evaluate(model, val, loss_fn)
        state = None
        if epoch % every == 0 or epoch == epochs:
            state = {**trial.state_dict(model, optimizer), "epoch": epoch}
        # each report names its metrics: the study's metric is checked against them before a run
        if trial.final and epoch == epochs:  # never in a search: the test split decides nothing there
            x_test, y_test = load(test=True)
            test = trial.loader(TensorDataset(x_test, y_test), 512, shuffle=False)
            test_loss, test_accuracy = evaluate(model, test, loss_fn)
            trial.report(
                epoch,
                params_k=params_k,
                train_loss=total / count,
                val_loss=val_loss,
                val_accuracy=val_accuracy,
                test_loss=test_loss,
                test_accuracy=test_accuracy,
                checkpoint=state,
            )
        else:
            trial.report(
                epoch,
                params_k=params_k,
                train_loss=total / count,
                val_loss=val_loss,
                val_accuracy=val_accuracy,
                checkpoint=state,
            )


def evaluate(model: nn.Module, loader: Any, loss_fn: nn.Module) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` over ``loader`` (every rank's shard averages in report)."""
    model.eval()
    total, correct, seen = 0.0, 0, 0
    with torch.no_grad():
        for x, y in loader:
            logits = model(x)
            total += loss_fn(logits, y).item() * len(y)
            correct += int((logits.argmax(1) == y).sum().item())
            seen += len(y)
    return total / max(seen, 1), correct / max(seen, 1)


def train_mlp(config: dict[str, Any], trial: Trial) -> None:
    torch.manual_seed(trial.seed)
    fit(mlp(config), config, trial)


def train_cnn(config: dict[str, Any], trial: Trial) -> None:
    torch.manual_seed(trial.seed)
    fit(cnn(config), config, trial)


def train_mlp_pipeline(config: dict[str, Any], trial: Trial) -> None:
    """The MLP as a pipeline (``resources: {strategy: pipeline, workers: K}``): the same model and
    data, the loop through ``model.step``; only the last stage sees the loss and the outputs."""
    from torch.utils.data import TensorDataset

    torch.manual_seed(trial.seed)
    x_train, y_train, x_val, y_val = load()
    train = trial.loader(TensorDataset(x_train, y_train), int(config.get("batch_size", 64)), drop_last=True)
    val = trial.loader(TensorDataset(x_val, y_val), 512, shuffle=False)
    loss_fn = nn.CrossEntropyLoss()
    model = trial.prepare(mlp(config), loss_fn=loss_fn)  # this rank's stage and the schedule
    optimizer = _optimizer(config, model.parameters())
    epochs = int(config.get("epochs", trial.max_steps or 20))
    first = 1
    if (saved := trial.checkpoint()) is not None:
        trial.load_state_dict(model, optimizer, saved)
        first = int(saved["epoch"]) + 1
    for epoch in range(first, epochs + 1):
        total, count = 0.0, 0
        for x, y in train:
            optimizer.zero_grad(set_to_none=True)
            loss = model.step(x, y)  # every micro-batch forward and backward; the loss on the last stage
            optimizer.step()
            if loss is not None:
                total, count = total + loss * len(y), count + len(y)
        val_loss = val_accuracy = None
        if model.last:
            correct = seen = 0
            val_total = 0.0
            for x, y in val:
                logits = model.predict(x)
                val_total += loss_fn(logits, y).item() * len(y)
                correct += int((logits.argmax(1) == y).sum().item())
                seen += len(y)
            val_loss, val_accuracy = val_total / seen, correct / seen
        else:
            for x, _ in val:
                model.predict(x)
        every = int(config.get("checkpoint_every", 5))
        state = (
            {**trial.state_dict(model, optimizer), "epoch": epoch} if epoch % every == 0 or epoch == epochs else None
        )
        trial.report(
            epoch,
            train_loss=total / count if count else None,
            val_loss=val_loss,
            val_accuracy=val_accuracy,
            checkpoint=state,
        )
