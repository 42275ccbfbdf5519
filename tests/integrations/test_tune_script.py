"""Whole Ray Tune scripts on tuner's engine: Ray's own example files run unchanged by
``python -m tuner run script.py``, and ``tuner.integrations.ray_tune.Tuner`` / ``run`` called from
Python with functions that exist only in the caller (handed over by value to the workers)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import ray.tune.examples
from ray import tune

import tuner
from tests.conftest import cli, cli_here
from tuner.config import by_value
from tuner.integrations.ray_tune import Tuner, run

EXAMPLES = Path(ray.tune.examples.__file__).parent  # Ray's own, as installed: not a copy


@pytest.mark.slow
@pytest.mark.parametrize(
    ("example", "folder", "trials", "statuses"),
    [
        # random search crossed with a grid: 5 samples x 2 activations
        ("tune_basic_example", "easy_objective", 10, {"finished"}),
        # tune.get_checkpoint / Checkpoint.from_directory, and stop={"training_iteration": 1}
        ("custom_func_checkpointing", "hyperband_test", 5, {"finished"}),
        # PopulationBasedTraining with a tune.uniform and a list mutation, stop={"done": True, ...}
        ("pbt_function", "pbt_function_api_example", 8, {"finished"}),
    ],
)
def test_ray_tune_example_scripts_run_unchanged(
    example: str, folder: str, trials: int, statuses: set[str], tmp_path: Path, ray_tmp: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # Tune's default storage: ~/ray_results
    proc = cli("run", str(EXAMPLES / f"{example}.py"), "--smoke-test", cwd=tmp_path, ray_tmp=ray_tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Best" in proc.stdout  # the script's own closing print, from our results
    results = tuner.load(tmp_path / "ray_results" / folder)
    assert len(results) == trials
    assert {t.status for t in results.trials} <= statuses
    assert results.get_best_result().config  # ResultGrid's names
    assert (tmp_path / "ray_results" / folder / "handed.pkl").is_file()


@pytest.mark.slow
def test_a_scripts_own_tune_callback_is_told_of_each_result(tmp_path: Path, ray_tmp: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    # Ray's logging_example: a LoggerCallback printing each result, trial_name_creator (not used)
    proc = cli("run", str(EXAMPLES / "logging_example.py"), "--smoke-test", cwd=tmp_path, ray_tmp=ray_tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    told = [line for line in proc.stdout.splitlines() if line.startswith("TestLogger for trial easy_objective_t000")]
    assert len(told) == 5  # 5 trials, stopped at their first result
    assert all("'training_iteration': 1" in line and "'mean_loss'" in line for line in told)
    assert "tune_config.trial_name_creator: not used" in proc.stdout


def _objective_around(center: float) -> Any:
    def objective(config: dict[str, Any]) -> None:  # a closure: importable by no name
        for step in range(1, 4):
            tune.report({"loss": (config["x"] - center) ** 2 + config["opt"]["lr"] / step})

    return objective


def test_tuner_runs_a_closure_with_nested_space_and_a_stop_function(ray_local: None, in_tmp: Path) -> None:
    objective = _objective_around(2.0)
    results = Tuner(
        objective,
        param_space={"x": tune.uniform(0, 4), "opt": {"name": "sgd", "lr": tune.loguniform(1e-3, 1e-1)}},
        tune_config=tune.TuneConfig(metric="loss", mode="min", num_samples=3, max_concurrent_trials=2),
        run_config=tune.RunConfig(
            name="closure", storage_path=str(in_tmp), stop=lambda trial_id, result: result["training_iteration"] >= 2
        ),
    ).fit()
    assert len(results) == 3 and results.num_errors == 0
    best = results.get_best_result()
    assert best.config["opt"]["name"] == "sgd" and 1e-3 <= best.config["opt"]["lr"] <= 1e-1
    assert [t.metrics["training_iteration"] for t in results.trials] == [2, 2, 2]  # the stop function ended each
    assert all(type(t.metrics["training_iteration"]) is int for t in results.trials)  # a count, as Ray's
    assert best.metrics["loss"] == min(t.metrics["loss"] for t in results.trials)

    # Tuner.restore takes the trainable again, as Ray's does; the stop function comes back from the run
    name = tuner.load_best(in_tmp / "closure")["config"] and by_value.give(objective)
    assert Tuner.can_restore(in_tmp / "closure") and not Tuner.can_restore(in_tmp)
    by_value.forget(name)
    restored = Tuner.restore(str(in_tmp / "closure"), trainable=objective).fit()
    assert len(restored) == 3

    # the command line cannot take a trainable back from a script: one line saying how
    by_value.forget(name)
    proc = cli_here("resume", str(in_tmp / "closure"), cwd=in_tmp)
    assert proc.returncode == 2
    assert "was handed over by a Python script" in proc.stderr and "Tuner.restore" in proc.stderr


def test_tune_run_raises_tune_error_for_failed_trials_as_tune_run_does(ray_local: None, in_tmp: Path) -> None:
    from ray.tune.error import TuneError

    def broken(config: dict[str, Any]) -> None:
        raise ValueError("no")

    with pytest.raises(TuneError, match="Trials did not complete"):
        run(broken, config={"x": tune.choice([1, 2])}, num_samples=2, storage_path=str(in_tmp), verbose=0)
    analysis = run(
        lambda config: {"score": config["x"]},
        config={"x": tune.grid_search([1, 2, 3])},
        metric="score",
        mode="max",
        storage_path=str(in_tmp),
        name="grid",
        verbose=0,
    )
    assert analysis.best_config == {"x": 3} and len(analysis.trials) == 3
    assert os.path.isdir(in_tmp / "grid")
