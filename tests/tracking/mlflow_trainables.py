"""Trainables that use MLflow themselves, as Ray Tune users write them."""

from __future__ import annotations

from typing import Any

from ray import tune
from ray.air.integrations.mlflow import setup_mlflow


def setup_mlflow_style(config: dict[str, Any]) -> None:
    """Ray's ``mlflow_example.train_function_mlflow`` with the MLflow settings in the config, as
    Ray's ``mlflow_ptl.train_mnist_tune`` passes them; fails at step 1 when ``height`` is over 50."""
    mlflow = setup_mlflow(config, experiment_name=config["experiment_name"], tracking_uri=config["tracking_uri"])
    width, height = config["width"], config["height"]
    for step in range(3):
        intermediate_score = (0.1 + width * step / 100) ** (-1) + height * 0.1
        mlflow.log_metrics(dict(mean_loss=intermediate_score), step=step)
        if height > 50 and step == 1:
            raise ValueError(f"height {height} too tall")
        tune.report({"iterations": step, "mean_loss": intermediate_score})
