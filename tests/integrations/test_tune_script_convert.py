"""A Ray Tune script's ``Tuner(...)`` arguments read as the study file that says the same, with
Ray's own objects (no Ray started): every scheduler, searcher and config key the drop-in
``tuner.integrations.ray_tune.Tuner`` takes, and a one-line problem for each it refuses."""

from __future__ import annotations

from typing import Any

import pytest
from ray import tune
from ray.tune.schedulers import (
    ASHAScheduler,
    FIFOScheduler,
    HyperBandScheduler,
    MedianStoppingRule,
    PopulationBasedTraining,
)
from ray.tune.schedulers.pb2 import PB2
from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter, Searcher
from ray.tune.search.optuna import OptunaSearch

from tuner.backends.ray.tune import study_data
from tuner.config import by_value, load_study
from tuner.errors import ConfigError
from tuner.integrations.ray_tune import Searcher as OurSearcher
from tuner.space import parse_parameters


def objective(config: dict[str, Any]) -> None:
    tune.report({"loss": config["x"]})


def _data(**kwargs: Any) -> dict[str, Any]:
    return study_data(objective, kwargs.pop("param_space", {"x": tune.uniform(0, 1)}), **kwargs).data


def _problems(**kwargs: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        study_data(kwargs.pop("trainable", objective), kwargs.pop("param_space", {"x": tune.uniform(0, 1)}), **kwargs)
    return [f"{p.path}: {p.message}" for p in info.value.problems]


def test_the_trainable_is_handed_over_by_value_and_found_by_its_name() -> None:
    def closure(config: dict[str, Any]) -> None:  # not importable by any name: handed over
        tune.report({"loss": 1.0})

    data = study_data(closure, {"x": tune.uniform(0, 1)}).data
    assert data["trainable"] == f"{__name__}:closure" and data["trainable_api"] == "tune"
    from tuner.config import import_trainable

    assert import_trainable(data["trainable"]) is closure
    assert study_data(closure, {}).data["trainable"] == data["trainable"]  # the same object, the same name
    # a module-level function keeps its importable name
    assert _data()["trainable"] == f"{__name__}:objective"


def test_param_space_round_trips_through_the_study_file_with_every_domain() -> None:
    space = {
        "steps": 5,
        "lr": tune.loguniform(1e-4, 1e-1),
        "n": tune.randint(1, 10),
        "ln": tune.lograndint(1, 100),
        "q": tune.quniform(0, 1, 0.1),
        "qi": tune.qrandint(0, 100, 5),
        "normal": tune.randn(0, 1),
        "act": tune.grid_search(["relu", "tanh"]),
        "c": tune.choice([1, "a", [1, 2]]),
        "model": {"hidden": 64, "dropout": tune.uniform(0, 0.5)},
    }
    data = _data(param_space=space, tune_config=tune.TuneConfig(num_samples=3))
    parsed, problems = parse_parameters(data["parameters"])
    assert problems == []
    assert parsed.params["model.hidden"].value == 64 and parsed.params["steps"].value == 5  # type: ignore[union-attr]
    assert parsed.params["model.dropout"].high == 0.5  # type: ignore[union-attr]
    assert parsed.params["n"].low == 1 and parsed.params["n"].high == 9  # type: ignore[union-attr]
    assert parsed.params["act"].grid
    assert data["run_cap"] == 6  # num_samples per grid cell, as Tune counts
    study = load_study(text=study_data(objective, space).text(), source="Tuner")
    assert study.space.nest({"model.dropout": 0.1, "model.hidden": 64}) == {"model": {"dropout": 0.1, "hidden": 64}}


def test_tune_config_and_run_config_keys_map_to_the_study_file(tmp_path: Any) -> None:
    stop_fn = by_value  # any callable stands for a stop function here

    def stopper(trial_id: str, result: dict[str, Any]) -> bool:
        return False

    data = _data(
        tune_config=tune.TuneConfig(
            metric="loss", mode="max", num_samples=7, max_concurrent_trials=3, time_budget_s=90
        ),
        run_config=tune.RunConfig(
            name="exp",
            storage_path=str(tmp_path),
            stop={"training_iteration": 5, "acc": 0.9},
            failure_config=tune.FailureConfig(max_failures=2),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=3),
        ),
    )
    assert data["metric"] == {"name": "loss", "goal": "maximize"}
    assert (data["run_cap"], data["max_concurrent"], data["time_limit"]) == (7, 3, 90.0)
    assert (data["name"], data["storage"]) == ("exp", str(tmp_path))
    assert data["stop"] == {"training_iteration": 5, "acc": 0.9}
    assert (data["max_failures"], data["checkpoints"]) == (2, {"keep": 3})
    fast = _data(run_config=tune.RunConfig(failure_config=tune.FailureConfig(fail_fast=True)))
    assert fast["max_failed_trials"] == 0
    assert data["method"] == "random"
    data = _data(run_config=tune.RunConfig(stop=stopper))
    assert data["stopper"].endswith(":stopper")
    del stop_fn


def test_an_empty_or_finite_param_space_runs_each_configuration_once_as_said() -> None:
    script = study_data(objective, None, tune.TuneConfig(num_samples=3))
    study = load_study(text=script.text(), source="Tuner")  # Tune runs a trainable with no param_space
    assert study.space.params == {} and study.spec.run_cap == 3
    assert any("param_space has 1 configuration(s): each runs once" in n for n in script.notices)
    script = study_data(objective, {"x": tune.grid_search([1, 2])}, tune.TuneConfig(num_samples=1))
    assert script.data["run_cap"] == 2 and script.notices == []


def test_a_tune_callback_is_a_tracker_and_trusted_as_a_trainable_is() -> None:
    class Printer(tune.Callback):
        def on_trial_result(
            self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
        ) -> None:
            print(trial, result)

    printer = Printer()
    data = _data(run_config=tune.RunConfig(callbacks=[printer]))
    assert data["tracking"] == {"callbacks": [f"{__name__}:Printer"]}
    from tuner.config import import_named

    assert import_named(data["tracking"]["callbacks"][0]) is printer
    text = "trainable: trainables.toy:quadratic\nmethod: random\nparameters: {x: {min: 0.0, max: 1.0}}\n"
    with pytest.raises(ConfigError) as info:
        load_study(text=text + "tracking: {callbacks: [os.path:join]}\n")
    assert [p.path for p in info.value.problems] == ["tracking.callbacks[0]"]
    assert "module 'os.path' is not allowed to run" in info.value.problems[0].message


def test_schedulers_map_to_early_terminate() -> None:
    asha = ASHAScheduler(metric="loss", mode="min", max_t=20, grace_period=2, reduction_factor=3, brackets=2)
    data = _data(tune_config=tune.TuneConfig(scheduler=asha))
    assert data["early_terminate"] == {
        "type": "asha",
        "max_t": 20,
        "grace_period": 2,
        "reduction_factor": 3.0,
        "brackets": 2,
    }
    assert data["metric"] == {"name": "loss", "goal": "minimize"}  # said by the scheduler alone
    hb = _data(tune_config=tune.TuneConfig(metric="loss", mode="min", scheduler=HyperBandScheduler(max_t=81)))
    assert hb["early_terminate"] == {"type": "asha", "max_t": 81, "reduction_factor": 3.0}
    median = MedianStoppingRule(time_attr="training_iteration", grace_period=4, min_samples_required=5)
    data = _data(tune_config=tune.TuneConfig(metric="loss", mode="min", scheduler=median))
    assert data["early_terminate"] == {"type": "median", "grace_period": 4, "min_samples_required": 5}
    assert "early_terminate" not in _data(tune_config=tune.TuneConfig(scheduler=FIFOScheduler()))


def test_population_schedulers_with_their_mutations() -> None:
    pbt = PopulationBasedTraining(
        time_attr="training_iteration",
        perturbation_interval=4,
        hyperparam_mutations={"lr": tune.uniform(0.001, 0.1), "factor": [1, 2, 3]},
        quantile_fraction=0.5,
        resample_probability=0.1,
    )
    script = study_data(
        objective,
        {"lr": 0.01, "factor": 1},
        tune.TuneConfig(metric="loss", mode="min", num_samples=4, scheduler=pbt),
    )
    block = script.data["early_terminate"]
    assert block["type"] == "pbt" and block["perturbation_interval"] == 4 and block["quantile_fraction"] == 0.5
    assert block["mutations"]["factor"] == {"values": [1, 2, 3]}
    # a constant the population mutates becomes a parameter drawn from the mutation, which is said
    assert script.data["parameters"]["lr"] == {"distribution": "uniform", "min": 0.001, "max": 0.1}
    assert any("param_space.lr" in n and "start from draws" in n for n in script.notices)
    load_study(text=script.text(), source="Tuner")  # a valid study
    pb2 = PB2(time_attr="training_iteration", perturbation_interval=2, hyperparam_bounds={"lr": [0.0001, 0.02]})
    data = study_data(objective, {"lr": 0.001}, tune.TuneConfig(metric="loss", mode="max", scheduler=pb2)).data
    assert data["early_terminate"]["type"] == "pb2"
    assert data["early_terminate"]["mutations"]["lr"] == {"distribution": "uniform", "min": 0.0001, "max": 0.02}


def test_function_mutations_are_mutated_within_what_they_draw() -> None:
    import random

    import numpy as np

    random.seed(5)
    before = random.random(), np.random.get_state()[1][0]
    random.seed(5)
    pbt = PopulationBasedTraining(
        time_attr="training_iteration",
        hyperparam_mutations={
            "lr": lambda: random.uniform(0.0001, 0.02),  # as Ray's pbt_example
            "decay": lambda: 10 ** np.random.uniform(-6, -2),
            "batch": lambda: random.choice([16, 32, 64]),
            "layers": lambda: int(np.random.randint(1, 40)),
        },
    )
    config = tune.TuneConfig(metric="loss", mode="min", scheduler=pbt, num_samples=4)
    script = study_data(objective, {"lr": 0.001}, config)
    mutations = script.data["early_terminate"]["mutations"]
    assert mutations["lr"]["distribution"] == "uniform" and 0.0001 <= mutations["lr"]["min"] < 0.001
    assert mutations["decay"]["distribution"] == "log_uniform_values"
    assert mutations["batch"] == {"values": [16, 32, 64]}
    assert mutations["layers"]["distribution"] == "int_uniform" and mutations["layers"]["min"] >= 1
    assert any("hyperparam_mutations.lr: a function" in n for n in script.notices)
    assert (random.random(), np.random.get_state()[1][0]) == before  # the script's random state is untouched
    load_study(text=script.text(), source="Tuner")


def test_sample_from_of_nothing_is_searched_within_its_draws() -> None:
    import numpy as np

    script = study_data(
        objective,
        {
            "batch": tune.sample_from(lambda _: 2 ** np.random.randint(2, 9)),  # as Ray's cifar10_pytorch
            "opt": {"lr": tune.sample_from(lambda: 10 ** np.random.uniform(-5, -1))},
        },
    )
    block = script.data["parameters"]
    assert block["batch"] == {"values": [4, 8, 16, 32, 64, 128, 256]}
    assert block["opt"]["parameters"]["lr"]["distribution"] == "log_uniform_values"
    assert sum("tune.sample_from is searched within" in n for n in script.notices) == 2


def test_searchers_map_to_methods() -> None:
    limited = ConcurrencyLimiter(OptunaSearch(metric="loss", mode="min", seed=7), max_concurrent=2)
    data = _data(tune_config=tune.TuneConfig(search_alg=limited, num_samples=5))
    assert (data["method"], data["seed"], data["max_concurrent"]) == ("optuna", 7, 2)
    assert data["metric"] == {"name": "loss", "goal": "minimize"}
    import optuna

    gp = OptunaSearch(sampler=optuna.samplers.GPSampler(seed=1), metric="loss", mode="min")
    assert _data(tune_config=tune.TuneConfig(search_alg=gp))["searcher"] == {"sampler": "gp"}
    ours = OurSearcher(method="bayes", metric="loss", mode="min", seed=3)
    data = _data(tune_config=tune.TuneConfig(search_alg=ours))
    assert (data["method"], data["seed"]) == ("bayes", 3)
    basic = BasicVariantGenerator(points_to_evaluate=[{"x": 0.5}], random_state=11, max_concurrent=4)
    data = _data(tune_config=tune.TuneConfig(search_alg=basic))
    assert (data["method"], data["points_to_evaluate"], data["max_concurrent"]) == ("random", [{"x": 0.5}], 4)
    again = BasicVariantGenerator(random_state=11)
    assert _data(tune_config=tune.TuneConfig(search_alg=again))["seed"] == data["seed"]  # reproducible
    own = _OwnSearcher()
    data = _data(tune_config=tune.TuneConfig(search_alg=own, metric="loss", mode="min"))
    assert (data["method"], data["searcher"]) == ("tune", {"search_alg": f"{__name__}:OwnSearcher"})
    qmc = OptunaSearch(sampler=optuna.samplers.QMCSampler(seed=0))  # not one of tuner's: asked as Tune asks it
    assert _data(tune_config=tune.TuneConfig(search_alg=qmc, metric="loss", mode="min"))["method"] == "tune"


class _OwnSearcher(Searcher):
    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        return {"x": 0.5}

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        pass


def test_what_tuner_cannot_run_is_refused_naming_where() -> None:
    lines = _problems(
        trainable="PPO",
        param_space={"x": tune.sample_from(lambda spec: spec.config.y * 2)},
        tune_config=tune.TuneConfig(
            scheduler=ASHAScheduler(time_attr="time_total_s", max_t=10),
            num_samples=0,
        ),
    )
    assert any(line.startswith("trainable: a trainable registered by name") for line in lines)
    assert any(line.startswith("param_space.x: tune.sample_from reads the config") for line in lines)
    assert any(line.startswith("tune_config.scheduler.time_attr: must be training_iteration") for line in lines)
    assert any(line.startswith("tune_config.num_samples: must be a positive integer") for line in lines)
    lam = PopulationBasedTraining(time_attr="training_iteration", hyperparam_mutations={"lr": lambda spec: 0.1})
    lines = _problems(tune_config=tune.TuneConfig(metric="loss", mode="min", scheduler=lam))
    assert len(lines) == 1 and lines[0].startswith(
        "tune_config.scheduler.hyperparam_mutations.lr: must be a list of values, a tune domain or a function "
        "of no arguments"
    )
    assert _problems(param_space={"x": tune.choice([object()])})[0].startswith("param_space.x: must be plain data")


def test_older_spellings_of_run_config_are_read_alike(tmp_path: Any) -> None:
    import ray.train
    from ray import air

    old = air.RunConfig(  # ray.air's, as scripts written for Ray 2.0-2.6 spell it
        name="x",
        storage_path=str(tmp_path),
        stop={"training_iteration": 3},
        checkpoint_config=air.CheckpointConfig(num_to_keep=2),
        failure_config=air.FailureConfig(max_failures=1),
    )
    data = _data(run_config=old)
    assert (data["stop"], data["checkpoints"], data["max_failures"]) == ({"training_iteration": 3}, {"keep": 2}, 1)
    train = ray.train.RunConfig(name="y", storage_path=str(tmp_path))  # its stop is Ray's "DEPRECATED"
    assert "stop" not in _data(run_config=train) and _data(run_config=train)["name"] == "y"


def test_what_restore_and_tune_run_cannot_do_is_one_line(tmp_path: Any) -> None:
    from tuner.errors import UserError
    from tuner.integrations.ray_tune import Tuner, run

    with pytest.raises(UserError, match="no tuner run at"):
        Tuner.restore(str(tmp_path), trainable=objective)
    (tmp_path / "study.yaml").write_text("trainable: __main__:objective\n")
    (tmp_path / "journal.jsonl").write_text("")
    assert Tuner.can_restore(tmp_path)
    with pytest.raises(UserError, match="resume_errored=True is not supported"):
        Tuner.restore(str(tmp_path), trainable=objective, resume_errored=True)
    with pytest.raises(UserError, match=r"tune\.run: resume='ERRORED_ONLY' is not supported"):
        run(objective, config={"x": tune.uniform(0, 1)}, resume="ERRORED_ONLY")
