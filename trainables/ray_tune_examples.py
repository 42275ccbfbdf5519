# mypy: ignore-errors
# fmt: off
"""Trainables written for Ray Tune and Ray Train, copied from Ray's own examples, that tuner runs
unchanged (the tests in tests/backends/ray/test_tune_trainables.py run them).

- ``train_func``: Ray Tune's function API with checkpoints, copied from Ray 2.60's
  ``ray/tune/examples/custom_func_checkpointing.py`` (with ``evaluation_fn``), unchanged.
- ``train_func_crashing_once``: the same, with four marked lines that crash its first attempt
  once, mid-run, so that a retry must resume from its checkpoint.
- ``train_loop_per_worker``: the ``train_func`` of Ray Train's PyTorch quickstart
  ("Get Started with Distributed Training using PyTorch", docs.ray.io/en/latest/train/
  getting-started-pytorch.html), a ``TorchTrainer`` loop with DDP, unchanged but for what needs
  a download or a package tuner does not depend on: the data is scikit-learn's digits (1x8x8
  images, normalised as the quickstart normalises FashionMNIST) in place of FashionMNIST, the
  model is the network of Ray's ``ray/train/examples/pytorch/torch_quick_start.py`` sized for
  8x8 images in place of torchvision's resnet18, and the learning rate comes from ``config``.
- ``objective``: the function trainable of Ray's own front-page example (the ray-project/ray
  README, "Tune: Hyperparameter Tuning at Scale"), which returns its metrics instead of
  reporting them; ``objective_yields`` and ``objective_number``: ours, the same yielding a dict
  each iteration and returning a bare number, as Ray 2.60's function runner also takes them.
- ``train_sparse_checkpoints``: the pattern of Ray 2.60's
  ``ray/tune/examples/hyperband_function_example.py``, written small: 100 iterations for a
  scheduler to cut short, a checkpoint every third one and ``None`` in between.
- ``train_until_done``: the ending of Ray 2.60's ``ray/tune/examples/pbt_function.py``, written
  small: ``while True:`` with ``"done": ...`` in each report, which ends the trial under Tune.
- ``context_probe`` and ``never_reports``: ours, not Ray's: each rank writes what Ray's
  functions answer it; a Tune-style trainable that forgets to report.
"""

import json
import os
import tempfile
import time

import ray.train.torch
import torch
import torch.nn as nn
from ray import tune
from ray.tune import Checkpoint
from ray.tune.utils.mock_trainable import MyTrainableClass
from torch.nn import CrossEntropyLoss
from torch.optim import Adam
from torch.utils.data import DataLoader, TensorDataset


# -- ray/tune/examples/custom_func_checkpointing.py (Ray 2.60), unchanged ----------------------
def evaluation_fn(step, width, height):
    time.sleep(0.1)
    return (0.1 + width * step / 100) ** (-1) + height * 0.1


def train_func(config):
    step = 0
    width, height = config["width"], config["height"]

    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as checkpoint_dir:
            with open(os.path.join(checkpoint_dir, "checkpoint.json")) as f:
                state = json.load(f)
            step = state["step"] + 1

    for current_step in range(step, 100):
        intermediate_score = evaluation_fn(current_step, width, height)

        with tempfile.TemporaryDirectory() as temp_checkpoint_dir:
            with open(os.path.join(temp_checkpoint_dir, "checkpoint.json"), "w") as f:
                json.dump({"step": current_step}, f)
            tune.report(
                {"iterations": current_step, "mean_loss": intermediate_score},
                checkpoint=Checkpoint.from_directory(temp_checkpoint_dir),
            )


# -- the same, crashing once (config["crash_at"]; a marker file per trial under config["crash_dir"])
def train_func_crashing_once(config):
    step = 0
    width, height = config["width"], config["height"]

    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as checkpoint_dir:
            with open(os.path.join(checkpoint_dir, "checkpoint.json")) as f:
                state = json.load(f)
            step = state["step"] + 1

    for current_step in range(step, 100):
        intermediate_score = evaluation_fn(current_step, width, height)
        marker = os.path.join(config["crash_dir"], tune.get_context().get_trial_id())  # added
        if current_step == config["crash_at"] and not os.path.exists(marker):  # added
            open(marker, "w").close()  # added
            raise RuntimeError("crashed once, mid-run, on purpose")  # added

        with tempfile.TemporaryDirectory() as temp_checkpoint_dir:
            with open(os.path.join(temp_checkpoint_dir, "checkpoint.json"), "w") as f:
                json.dump({"step": current_step}, f)
            tune.report(
                {"iterations": current_step, "mean_loss": intermediate_score},
                checkpoint=Checkpoint.from_directory(temp_checkpoint_dir),
            )


# -- Ray Train's PyTorch quickstart, with the data and model swapped as said above ---------------
class NeuralNetwork(nn.Module):
    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear_relu_stack = nn.Sequential(
            nn.Linear(8 * 8, 512),
            nn.ReLU(),
            nn.Linear(512, 512),
            nn.ReLU(),
            nn.Linear(512, 10),
        )

    def forward(self, inputs):
        inputs = self.flatten(inputs)
        logits = self.linear_relu_stack(inputs)
        return logits


def digits():
    """scikit-learn's digits as 1x8x8 images in [-1, 1] (as Normalize((0.5,), (0.5,)) maps
    FashionMNIST's ToTensor images), with their labels."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    images = torch.tensor(x / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    return TensorDataset((images - 0.5) / 0.5, torch.tensor(y))


def train_loop_per_worker(config):
    # Model, Loss, Optimizer
    model = NeuralNetwork()
    # model.to("cuda")  # This is done by `prepare_model`
    # [1] Prepare model.
    model = ray.train.torch.prepare_model(model)
    criterion = CrossEntropyLoss()
    optimizer = Adam(model.parameters(), lr=config["lr"])

    # Data
    train_data = digits()
    train_loader = DataLoader(train_data, batch_size=128, shuffle=True)
    # [2] Prepare dataloader.
    train_loader = ray.train.torch.prepare_data_loader(train_loader)

    # Training
    for epoch in range(10):
        if ray.train.get_context().get_world_size() > 1:
            train_loader.sampler.set_epoch(epoch)

        for images, labels in train_loader:
            # This is done by `prepare_data_loader`!
            # images, labels = images.to("cuda"), labels.to("cuda")
            outputs = model(images)
            loss = criterion(outputs, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        # [3] Report metrics and checkpoint.
        metrics = {"loss": loss.item(), "epoch": epoch}
        with tempfile.TemporaryDirectory() as temp_checkpoint_dir:
            torch.save(
                model.module.state_dict(),
                os.path.join(temp_checkpoint_dir, "model.pt")
            )
            ray.train.report(
                metrics,
                checkpoint=ray.train.Checkpoint.from_directory(temp_checkpoint_dir),
            )
        if ray.train.get_context().get_world_rank() == 0:
            print(metrics)


# -- ours: what each rank is told ---------------------------------------------------------------
def context_probe(config):
    train_context = ray.train.get_context()
    tune_context = tune.get_context()
    model = ray.train.torch.prepare_model(nn.Linear(2, 1))
    loader = ray.train.torch.prepare_data_loader(DataLoader(TensorDataset(torch.zeros(8, 2)), batch_size=2))
    seen = {
        "world_rank": train_context.get_world_rank(),
        "world_size": train_context.get_world_size(),
        "local_rank": train_context.get_local_rank(),
        "local_world_size": train_context.get_local_world_size(),
        "node_rank": train_context.get_node_rank(),
        "experiment": train_context.get_experiment_name(),
        "trial_id": tune_context.get_trial_id(),
        "trial_name": tune_context.get_trial_name(),
        "device": str(ray.train.torch.get_device()),
        "ddp": type(model).__name__,
        "sampler": type(loader.sampler).__name__,
        "batches": len(loader),
        "checkpoint": tune.get_checkpoint() is not None,
    }
    folder = tune_context.get_trial_dir()
    with open(os.path.join(folder, f"rank{seen['world_rank']}.json"), "w") as f:
        json.dump(seen, f)
    ray.train.report({"loss": 1.0, "note": "not a number", "nested": {"value": 2}})


def never_reports(config):
    tune.get_context()  # a Ray Tune trainable by its looks, but it reports nothing


# -- returned metrics: Ray's front-page example, then yielded ones and a bare number ---------------
def objective(config):
    score = config["a"] ** 2 + config["b"]
    return {"score": score}


def objective_yields(config):
    for x in range(1, 4):
        yield {"score": config["a"] * x + config["b"]}


def objective_number(config):
    return config["a"] ** 2 + config["b"]


# -- a checkpoint every third iteration, run until the scheduler stops it -------------------------
def train_sparse_checkpoints(config):
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder, open(os.path.join(folder, "state.json")) as f:
            start = json.load(f)["timestep"] + 1
    for timestep in range(start, 100):
        value = config.get("height", 1) * timestep / (timestep + config.get("width", 1))
        with tempfile.TemporaryDirectory() as folder:
            checkpoint = None
            if timestep % 3 == 0:
                with open(os.path.join(folder, "state.json"), "w") as f:
                    json.dump({"timestep": timestep}, f)
                checkpoint = Checkpoint.from_directory(folder)
            tune.report({"episode_reward_mean": value}, checkpoint=checkpoint)


# -- ray/tune/examples/pbt_function.py's ending (Ray 2.60): a report that says done ends the trial --
def train_until_done(config):
    accuracy, step = 0.0, 1
    while True:
        accuracy += config.get("lr", 1.0)
        tune.report({"mean_accuracy": accuracy, "done": step >= config.get("done_at", 3)})
        step += 1


# -- resources asked for in code, as Ray's examples do (tune.with_resources at module level) -----
def objective_on_two_cpus(config):
    return objective(config)


def objective_sized_by_config(config):
    return objective(config)


objective_on_two_cpus = tune.with_resources(objective_on_two_cpus, {"cpu": 2})
objective_sized_by_config = tune.with_resources(objective_sized_by_config, lambda config: {"cpu": config["a"]})
class_on_two_cpus = tune.with_resources(MyTrainableClass, {"cpu": 2, "gpu": 0})


# -- class trainables written for these tests: one that never saves, one that saves a dict --------
class Counter(tune.Trainable):
    """Counts its steps; never saves (Ray Tune runs such a class without checkpoints)."""

    def setup(self, config):
        with open(os.path.join(self.logdir, "setup.txt"), "w") as f:
            f.write(f"{self.trial_id} {self.trial_name}")
        self.count = 0

    def step(self):
        self.count += 1
        return {"count": self.count, "timesteps_this_iter": 10}


class SavingCounter(Counter):
    """The same, saving a dict (Ray pickles it into the checkpoint folder)."""

    def save_checkpoint(self, checkpoint_dir):
        return {"count": self.count}

    def load_checkpoint(self, checkpoint):
        self.count = checkpoint["count"]


def objective_on_odd_gpus(config):
    return objective(config)


objective_on_odd_gpus = tune.with_resources(objective_on_odd_gpus, {"cpu": 1, "gpu": 1.5})
class_sized_by_config = tune.with_resources(MyTrainableClass, lambda config: {"cpu": config["a"]})
