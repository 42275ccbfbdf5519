"""Whole Ray Tune scripts on tuner's engine: Ray's own example files run unchanged by
``python -m tuner run script.py``, and ``tuner.integrations.ray_tune.Tuner`` / ``run`` called from
Python with functions that exist only in the caller (handed over by value to the workers)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import optuna
import pytest
import ray.tune.examples
from ray import tune
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

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
    import numpy as np

    def scored(config: dict[str, Any], data: Any = None) -> dict[str, float]:
        return {"score": float(config["x"] * data.sum())}  # data: an object ref's value, in the worker

    analysis = run(  # as public scripts call it: with_parameters, resources_per_trial, get_best_trial
        tune.with_parameters(scored, data=np.ones(1000)),
        config={"x": tune.grid_search([1, 2, 3])},
        resources_per_trial={"cpu": 1},
        metric="score",
        mode="max",
        storage_path=str(in_tmp),
        name="grid",
        verbose=0,
    )
    assert analysis.best_config == {"x": 3} and len(analysis.trials) == 3
    assert analysis.get_best_trial("score", "max", "last").last_result["score"] == 3000.0
    again = run(scored, config={"x": tune.grid_search([1, 2, 3])}, storage_path=str(in_tmp), name="grid", resume="AUTO")
    assert len(again.trials) == 3 and not (in_tmp / "grid-2").exists()  # the same run, as Tune's resume="AUTO"
    assert os.path.isdir(in_tmp / "grid")


class Listed(Searcher):
    """A Ray Tune searcher of a user's own: proposes listed points, remembers what it was told."""

    def __init__(self, points: list[float]) -> None:
        super().__init__(metric="score", mode="max")
        self.points, self.told = list(points), {}  # type: ignore[var-annotated]

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        return {"x": self.points.pop(0)} if self.points else Searcher.FINISHED

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        self.told[trial_id] = (result, error)


def test_any_tune_searcher_is_asked_as_tune_asks_it(ray_local: None, in_tmp: Path) -> None:
    def objective(config: dict[str, Any]) -> None:
        if config["x"] > 0.8:
            raise ValueError("too far")
        tune.report({"score": config["x"]})

    listed = Listed([0.2, 0.6, 0.9])
    results = Tuner(
        objective,
        param_space={"x": tune.uniform(0, 1)},
        tune_config=tune.TuneConfig(search_alg=listed, num_samples=5),
        run_config=tune.RunConfig(name="listed", storage_path=str(in_tmp), verbose=0),
    ).fit()
    assert sorted(t.config["x"] for t in results.trials) == [0.2, 0.6, 0.9]  # FINISHED ended the study at 3
    assert sorted(listed.told.values(), key=str) == sorted(
        [({"score": 0.2}, False), ({"score": 0.6}, False), (None, True)], key=str
    )  # its own metric, its own sign, the failure as an error
    assert results.get_best_result().config == {"x": 0.6}

    qmc = OptunaSearch(sampler=optuna.samplers.QMCSampler(seed=0), metric="score", mode="max")
    results = Tuner(
        lambda config: {"score": -((config["x"] - 0.5) ** 2)},
        param_space={"x": tune.uniform(0, 1), "kind": tune.choice(["a", "b"])},
        tune_config=tune.TuneConfig(search_alg=qmc, num_samples=4),
        run_config=tune.RunConfig(name="qmc", storage_path=str(in_tmp), verbose=0),
    ).fit()
    assert len(results) == 4 and results.num_errors == 0
    assert len(qmc._ot_study.trials) == 4  # Optuna's own study, with its QMC sampler, made the four


HF_SEARCH = """
import torch
from ray import tune
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments


def make_data(n, seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 50, (n, 8), generator=g)
    labels = (ids[:, 0] > 25).long()
    mask = torch.ones(8, dtype=torch.long)
    return [{"input_ids": i, "attention_mask": mask, "labels": y} for i, y in zip(ids, labels)]


def model_init(trial=None):
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    return BertForSequenceClassification(config)


if __name__ == "__main__":
    args = TrainingArguments(output_dir="out", num_train_epochs=2, per_device_train_batch_size=16,
                             eval_strategy="epoch", report_to="none", disable_tqdm=True, save_strategy="no",
                             use_cpu=True)
    trainer = Trainer(model_init=model_init, args=args, train_dataset=make_data(64, 0), eval_dataset=make_data(32, 1))
    best = trainer.hyperparameter_search(direction="minimize", backend="ray", n_trials=3,
                                         hp_space=lambda _: {"learning_rate": tune.loguniform(1e-4, 1e-2)},
                                         storage_path=STORAGE, name="hf")
    print("BEST", best.run_id, best.objective, best.hyperparameters)
"""


@pytest.mark.slow
def test_a_hugging_face_search_on_ray_runs_unchanged(tmp_path: Path, ray_tmp: Path, monkeypatch: Any) -> None:
    # Trainer.hyperparameter_search(backend="ray") calls ray.tune.run itself (transformers' own code)
    monkeypatch.setenv("HOME", str(tmp_path))
    script = tmp_path / "hf_search.py"
    script.write_text(HF_SEARCH.replace("STORAGE", repr(str(tmp_path / "results"))))
    proc = cli("run", str(script), cwd=tmp_path, ray_tmp=ray_tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    best = next(line for line in proc.stdout.splitlines() if line.startswith("BEST "))
    results = tuner.load(tmp_path / "results" / "hf")
    assert len(results) == 3 and results.num_errors == 0
    trial = results.get_best_trial("objective", "min")
    assert best.split()[1] == trial.trial_id and float(best.split()[2]) == pytest.approx(trial.metrics["objective"])
