"""DDP trial start-up: N trials of 2 gloo workers training the digits MLP, tuner versus
Ray Train's TorchTrainer launched from a Tune function (Ray 2.60's documented pattern).

    python benchmarks/ddp_overhead.py [--trials 4] [--epochs 5]

Both run in this one process on the same private Ray with 3 logical CPUs on this 2-core
machine (the Tune function of the TorchTrainer pattern holds one), one trial at a time. Prints
each one's wall time and time per trial, tuner's fixed cost per trial (start to first report,
less one epoch), and the ratio.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LRS = [0.002, 0.004, 0.006, 0.008, 0.01, 0.012, 0.014, 0.016]


def train_loop_per_worker(config: dict) -> None:
    """The Ray Train version of trainables.digits.train_mlp (same model, data and batches)."""
    import ray.train
    import ray.train.torch
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

    from trainables.digits import load, mlp

    x_train, y_train, x_val, y_val = load()
    world = ray.train.get_context().get_world_size()
    train = ray.train.torch.prepare_data_loader(
        DataLoader(TensorDataset(x_train, y_train), batch_size=config["batch_size"] // world, shuffle=True)
    )
    val = ray.train.torch.prepare_data_loader(DataLoader(TensorDataset(x_val, y_val), batch_size=512))
    model = ray.train.torch.prepare_model(mlp(config))
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(1, config["epochs"] + 1):
        if world > 1:
            sampler = train.sampler
            assert isinstance(sampler, DistributedSampler)
            sampler.set_epoch(epoch)
        model.train()
        for x, y in train:
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
        model.eval()
        correct = seen = 0
        with torch.no_grad():
            for x, y in val:
                correct += int((model(x).argmax(1) == y).sum())
                seen += len(y)
        ray.train.report({"val_accuracy": correct / seen, "epoch": epoch})


def train_driver_fn(config: dict) -> None:
    import ray.train
    import ray.tune
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    trial_id = ray.tune.get_context().get_trial_id()
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=config,
        scaling_config=ray.train.ScalingConfig(num_workers=2, resources_per_worker={"CPU": 1}),
        run_config=ray.train.RunConfig(
            name=f"train-{trial_id}",
            storage_path=config["storage"],
            callbacks=[TuneReportCallback()],  # type: ignore[list-item]
        ),
    )
    trainer.fit()


def run_ray_train(trials: int, epochs: int, storage: str) -> float:
    from ray import tune

    tuner = tune.Tuner(
        train_driver_fn,  # the trial driver holds 1 CPU; its 2 Train workers take 2 more
        param_space={
            "lr": tune.grid_search(LRS[:trials]),
            "epochs": epochs,
            "batch_size": 64,
            "hidden": 128,
            "storage": storage,
        },
        tune_config=tune.TuneConfig(metric="val_accuracy", mode="max", max_concurrent_trials=1),
        run_config=tune.RunConfig(storage_path=storage, verbose=0),
    )
    start = time.perf_counter()
    grid = tuner.fit()
    wall = time.perf_counter() - start
    assert len(grid) == trials and not grid.errors, grid.errors
    return wall


def run_tuner(trials: int, epochs: int, storage: str) -> tuple[float, float, float]:
    import tuner

    study = tuner.load_study(
        text=f"""
name: ddp_overhead
trainable: trainables.digits:train_mlp
metric: {{name: val_accuracy, goal: maximize}}
method: grid
storage: {storage}
resources: {{workers: 2, cpus_per_worker: 1}}
parameters:
  lr: {{values: {LRS[:trials]}}}
  epochs: {{value: {epochs}}}
  batch_size: {{value: 64}}
  hidden: {{value: 128}}
  checkpoint_every: {{value: 1000}}
"""
    )
    start = time.perf_counter()
    out = tuner.run(study, quiet=True)
    wall = time.perf_counter() - start
    assert out.counts["finished"] == trials, out.counts
    history = tuner.load_history(out.folder)
    epoch_s = history.groupby("trial_id")["time_s"].diff().median()
    first = history[history["step"] == 1]["time_s"].median()
    span = history.groupby("trial_id")["time_s"].agg(lambda t: t.max() - t.min())
    training = float((span + epoch_s).sum())  # every epoch of every trial
    return wall, first - epoch_s, (wall - training) / trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    os.environ.pop("RAY_ADDRESS", None)

    import ray

    with tempfile.TemporaryDirectory(prefix="tuner-ddp-") as tmp:
        ray.init(
            address="local",
            num_cpus=3,  # Tune driver + 2 Train workers; tuner still fits 1 trial
            include_dashboard=False,
            _temp_dir=os.path.join(tmp, "ray"),
            logging_level=logging.ERROR,
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}},
        )
        try:
            t_tuner, start_cost, fixed = run_tuner(args.trials, args.epochs, os.path.join(tmp, "tuner"))
            t_train = run_ray_train(args.trials, args.epochs, os.path.join(tmp, "train"))
        finally:
            ray.shutdown()
    n = args.trials
    print(f"{n} trials x 2 gloo workers, digits MLP, {args.epochs} epochs, one trial at a time")
    print(
        f"tuner                      wall {t_tuner:7.2f} s   {t_tuner / n:6.2f} s/trial "
        f"(start to first step, less one epoch: {start_cost:.2f} s)"
    )
    print(
        f"tuner fixed cost per trial (wall less all epochs, over trials; start-up of the groups included): "
        f"{fixed:.2f} s"
    )
    print(f"TorchTrainer inside Tune   wall {t_train:7.2f} s   {t_train / n:6.2f} s/trial")
    print(f"ratio (TorchTrainer time / tuner time): {t_train / t_tuner:.1f}x")


if __name__ == "__main__":
    main()
