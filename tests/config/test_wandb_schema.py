"""W&B's whole sweep schema: every key and distribution read with W&B's meaning, or dropped with a
notice; files written for these tests, one class of the schema each."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import cli_here
from tuner import searchers
from tuner.config import load_study
from tuner.errors import ConfigError
from tuner.results import load
from tuner.searchers import Outcome
from tuner.space import Beta, Float, Normal, nest, parse_parameters

BASE = """
trainable: trainables.toy:quadratic
metric: {name: loss, goal: minimize}
method: random
run_cap: 4
parameters:
  x: {min: -1.0, max: 1.0}
"""
# W&B's sweep schema (wandb/sweeps, src/sweeps/config/schema.json): its top-level keys with a
# value, and its metric keys.
TOP_LEVEL = {
    "apiVersion": "v1",
    "kind": "sweep",
    "controller": {"type": "local"},
    "description": "a sweep",
    "program": "train.py",
    "job": "entity/project/job:latest",
    "image_uri": "docker.io/me/train:latest",
    "entity": "me",
    "project": "proj",
    "command": ["${env}", "${interpreter}", "${program}", "${args}"],
    "name": "Test sweep",
    "run_cap": 2,
}
METRIC = {"name": "loss", "goal": "minimize", "target": 0.0, "impute": "worst", "impute_while_running": "false"}


def text(extra: dict[str, Any] | None = None, **keys: Any) -> str:
    """BASE with these keys; a key given ``None`` is left out."""
    merged = {**yaml.safe_load(BASE), **(extra or {}), **keys}
    return yaml.safe_dump({k: v for k, v in merged.items() if v is not None}, sort_keys=False)


def problems(source: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_study(text=source)
    return [str(p) for p in info.value.problems]


# -- keys ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", list(TOP_LEVEL))
def test_every_top_level_key_of_wandbs_schema_is_accepted(key: str) -> None:
    study = load_study(text=text({key: TOP_LEVEL[key]}))
    assert study.spec.method == "random"


@pytest.mark.parametrize("key", ["impute", "impute_while_running"])
def test_metric_keys_of_wandbs_schema_are_dropped_with_a_notice(key: str) -> None:
    study = load_study(text=text(metric={"name": "loss", key: METRIC[key]}))
    assert study.metric == "loss"
    assert [n for n in study.notices if f"'metric.{key}'" in n]


def test_a_file_with_every_key_loads_and_says_what_it_ignores() -> None:
    study = load_study(text=text(TOP_LEVEL, metric=METRIC, method="bayes"))
    said = "\n".join(study.notices)
    for key in ("apiVersion", "kind", "controller", "job", "image_uri", "entity", "project", "metric.impute"):
        assert f"ignoring W&B key '{key}'" in said
    assert study.spec.description == "a sweep" and study.spec.run_cap == 2 and study.spec.primary.target == 0.0


def test_metrics_is_several_objectives() -> None:
    several = [{"name": "loss"}, {"name": "score", "goal": "maximize"}]
    study = load_study(text=text(metrics=several, metric=None, method="optuna"))
    assert study.objectives == [("loss", False), ("score", True)]
    one = load_study(text=text(metrics=[{"name": "score", "goal": "maximize"}], metric=None))
    assert one.objectives == [("score", True)]
    assert problems(text(metrics=several)) == [
        "metrics: give metric or metrics, not both (metrics is a list of several)"
    ]


@pytest.mark.parametrize(("engine", "method"), [("optuna", "optuna"), ("ax", "bayes"), ("wandb", "bayes")])
def test_method_custom_runs_its_schedulers_engine(engine: str, method: str) -> None:
    scheduler = {"engine": engine, "source": "opt.py", "optimizer": "make"}
    study = load_study(text=text(method="custom", scheduler=scheduler, run_cap=20))
    assert study.spec.method == method
    assert any("scheduler.source, scheduler.optimizer" in n for n in study.notices)


def test_wandbs_old_ray_tune_block_is_named_as_such() -> None:
    """wandb/examples' keras-cnn-fashion/sweep-tune-hyperopt.yaml: a ``tune:`` block of wandb 0.8."""
    legacy = {"tune": {"num_samples": 10, "search_alg": {"hyperopt.HyperOptSearch": {"metric": "loss"}}}}
    assert problems(text(legacy)) == [
        "tune: W&B's old Ray Tune sweep block is not read: write method and parameters instead"
    ]


def test_a_scheduler_without_method_custom_is_refused() -> None:
    assert problems(text(scheduler={"engine": "optuna"})) == [
        "scheduler: engine 'optuna' is for method: custom (W&B's rule), got method 'random'"
    ]
    assert problems(text(method="custom", scheduler={"engine": "hyperopt"})) == [
        "scheduler.engine: must be one of optuna, ax, wandb for method: custom, got 'hyperopt'"
    ]


@pytest.mark.parametrize("method", ["grid", "random", "bayes"])
def test_scheduler_engine_wandb_runs_the_method_as_written(method: str) -> None:
    """wandb/sweeps' config/cfg.py: engine wandb supports methods grid, bayes and random."""
    grid = {"parameters": {"x": {"values": [0.1, 0.2]}}} if method == "grid" else {}
    study = load_study(text=text(grid, method=method, scheduler={"engine": "wandb"}, run_cap=12))
    assert study.spec.method == method
    assert f"<string>: scheduler engine wandb is W&B's own search: method {method} runs here as written" in (
        study.notices
    )


@pytest.mark.parametrize(
    ("keys", "said"),
    [
        (
            {"scheduler": {"engine": "wandb"}, "early_terminate": {"type": "hyperband", "min_iter": 1}},
            "scheduler: cannot be used together with early_terminate (W&B's rule)",
        ),
        (
            {"method": "custom", "scheduler": {"engine": "optuna", "source": "opt.py", "search_space": "space"}},
            "parameters: is required: scheduler.search_space (a function in scheduler.source) is not read here; "
            "write the space as parameters",
        ),
        ({"scheduler": "optuna"}, "scheduler: must be a mapping with engine (one of optuna, ax, wandb), got 'optuna'"),
        ({"method": "custom", "scheduler": {"engine": "optuna", "budget": 3}}, "scheduler.budget: unknown key"),
    ],
)
def test_what_wandb_refuses_of_a_scheduler_is_refused_in_one_line(keys: dict[str, Any], said: str) -> None:
    source = text(**keys) if "search_space" not in str(keys) else text(keys, parameters=None)
    assert problems(source) == [said]


@pytest.mark.parametrize(
    ("written", "meant"),
    [("lognormal", "log_normal"), ("q_lognormal", "q_log_normal"), ("categorical_w", "categorical_w_probabilities")],
)
def test_a_misspelt_distribution_names_wandbs_spelling(written: str, meant: str) -> None:
    _, found = parse_parameters({"p": {"distribution": written}})
    assert len(found) == 1 and f"unknown distribution {written!r} (did you mean {meant}?)" in str(found[0])


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ({"distribution": "constant"}, "parameters.p.value: is required by distribution constant"),
        (
            {"distribution": "int_uniform", "min": 1, "max": 9, "q": 2},
            "parameters.p: q not used by distribution int_uniform",
        ),
        ({"value": 1, "values": [1, 2]}, "parameters.p: values not used by distribution constant"),
        ({"distribution": "categorical", "value": 3}, "parameters.p: value not used by distribution categorical"),
    ],
)
def test_what_wandbs_schema_refuses_of_a_parameter_is_refused_in_one_line(spec: dict[str, Any], said: str) -> None:
    _, found = parse_parameters({"p": spec})
    assert [str(p) for p in found] == [said]


@pytest.mark.parametrize("key", ["min_iter", "max_iter", "s"])
def test_hyperband_counts_written_as_whole_floats_are_read_as_integers(key: str) -> None:
    """W&B's schema checks them as JSON schema integers, which 27.0 is."""
    block = {"type": "hyperband", "min_iter": 1, "max_iter": 27, "s": 2, key: 3.0 if key != "max_iter" else 27.0}
    study = load_study(text=text(early_terminate=block))
    assert isinstance(getattr(study.spec.early_terminate, key), int)
    assert (
        "early_terminate.min_iter: Input should be a valid integer, got 1.5"
        in problems(text(early_terminate={"type": "hyperband", "min_iter": 1.5}))[0]
    )


# -- a display name --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "folder"),
    [
        ("Test sweep", "test-sweep"),
        ("Tune Optimizer & Schedule", "tune-optimizer-schedule"),
        ("mnist_v2.1", "mnist_v2.1"),
    ],
)
def test_a_display_name_keeps_its_title_and_names_a_safe_folder(name: str, folder: str) -> None:
    study = load_study(text=text(name=name))
    assert (study.name, study.title) == (folder, name)
    assert any(folder in n and "title" in n for n in study.notices) == (name != folder)


def test_a_display_name_runs_into_its_folder(no_ray: None, tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        textwrap.dedent("""
        name: "My sweep: lr / width"
        trainable: tests.engine.curves:falling
        backend: simulated
        metric: {name: loss}
        method: grid
        early_terminate: {type: hyperband, max_iter: 2, s: 1.0}
        parameters:
          x: {values: [0.1, 0.2]}
        """)
    )
    done = cli_here("run", "s.yaml", "--allow-module", "tests", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "its results folder is my-sweep-lr-width" in done.stderr
    folder = tmp_path / "results" / "my-sweep-lr-width"
    assert yaml.safe_load((folder / "study.yaml").read_text())["name"] == "My sweep: lr / width"
    assert list((tmp_path / "results").iterdir()) == [folder]


# -- small ones ------------------------------------------------------------------------------


def test_hyperband_s_may_be_a_whole_number_written_as_a_float() -> None:
    study = load_study(text=text(early_terminate={"type": "hyperband", "max_iter": 27, "s": 2.0}))
    assert study.spec.early_terminate is not None and study.spec.early_terminate.s == 2  # type: ignore[union-attr]
    assert problems(text(early_terminate={"type": "hyperband", "max_iter": 27, "s": 2.5})) == [
        "early_terminate.s: Input should be a valid integer, got 2.5"
    ]


def test_grid_refuses_probabilities() -> None:
    grid = {"method": "grid", "parameters": {"opt": {"values": ["a", "b"], "probabilities": [0.5, 0.5]}}}
    found = problems(text(grid))
    assert len(found) == 1 and found[0].startswith("parameters.opt.probabilities: grid runs every value alike")


# -- names with dots -------------------------------------------------------------------------

DOTTED = {
    "optimizer.config.learning_rate": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1},
    "optimizer.name": {"values": ["adam", "sgd"]},
    "momentum": {"distribution": "normal", "mu": 0.9, "sigma": 0.02, "when": {"optimizer.name": "sgd"}},
    "model": {"parameters": {"width": {"values": [16, 32]}, "head.dropout": {"values": [0.0, 0.1]}}},
}


def test_names_with_dots_reach_the_trainable_as_written() -> None:
    space, found = parse_parameters(DOTTED)
    assert not found
    assert list(space.params) == [
        "optimizer.config.learning_rate",
        "optimizer.name",
        "momentum",
        "model.width",
        "model.head.dropout",
    ]
    flat = {"optimizer.config.learning_rate": 0.01, "optimizer.name": "sgd", "momentum": 0.9}
    flat |= {"model.width": 16, "model.head.dropout": 0.1}
    assert space.nest(flat) == {
        "optimizer.config.learning_rate": 0.01,
        "optimizer.name": "sgd",
        "momentum": 0.9,
        "model": {"width": 16, "head.dropout": 0.1},
    }
    assert nest({"model.width": 16}) == {"model": {"width": 16}}  # without the space: nested
    assert space.active({**flat, "optimizer.name": "adam"}).keys() == flat.keys() - {"momentum"}


@pytest.mark.parametrize("method", list(searchers.OWN))
def test_every_method_searches_names_with_dots(method: str) -> None:
    finite = {"optimizer.config.learning_rate": {"values": [0.1, 0.01, 0.001]}}
    finite["momentum"] = {"values": [0.8, 0.9], "when": {"optimizer.name": "sgd"}}
    space, found = parse_parameters({**DOTTED, **finite})
    assert not found
    searcher = searchers.create(method, space, 0, {}, run_cap=None)
    for i in range(6):
        config = searcher.suggest(f"t{i}")
        assert config is not None and not space.problems(config)
        searcher.tell(f"t{i}", config, Outcome(config["optimizer.config.learning_rate"], "complete", 1))


def test_a_study_with_dotted_names_runs_and_its_best_round_trips(no_ray: None, tmp_path: Path) -> None:
    (tmp_path / "dots.yaml").write_text(
        yaml.safe_dump(
            sort_keys=False,
            data={
                "name": "dots",
                "trainable": "tests.engine.curves:hydra_style",
                "backend": "simulated",
                "metric": {"name": "loss"},
                "method": "bayes",
                "run_cap": 6,
                "searcher": {"init_points": 3},
                "early_terminate": {"type": "asha", "max_t": 2, "grace_period": 2},
                "parameters": {k: v for k, v in DOTTED.items() if k != "model"}
                | {"model": {"parameters": {"width": {"values": [16, 32]}}}},
            },
        )
    )
    done = cli_here("run", "dots.yaml", "--allow-module", "tests", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "results" / "dots"
    trials = pd.read_parquet(folder / "trials.parquet")
    assert len(trials) == 6 and set(trials["status"]) == {"finished"}
    assert "params_optimizer.config.learning_rate" in trials.columns
    best = yaml.safe_load((folder / "best.yaml").read_text())
    assert set(best["config"]) >= {"optimizer.config.learning_rate", "optimizer.name", "model"}
    assert best["config"]["model"] == {"width": best["params"]["model.width"]}
    # read back from the results folder, and through `best`: the same configuration
    assert load(folder).get_best_config() == best["config"]
    shown = cli_here("best", "results/dots", cwd=tmp_path)
    assert shown.returncode == 0 and yaml.safe_load(shown.stdout) == best["config"]
    # `train --config best.yaml` fixes each value of that configuration: the trainable gets it back
    from tuner._api import _constants

    study = load_study(tmp_path / "dots.yaml", allow_modules=["tests"])
    final = study.derive(parameters=_constants(best["config"]), method="grid")
    assert final.space.nest(final.space.complete({})) == best["config"]


def test_plan_accepts_a_w_and_b_file_with_every_class(no_ray: None, tmp_path: Path) -> None:
    (tmp_path / "wb.yaml").write_text(
        textwrap.dedent("""
        name: Tune Optimizer & Schedule
        program: train.py
        controller: {type: local}
        method: bayes
        run_cap: 8
        metric: {name: loss, goal: minimize, impute: worst}
        early_terminate: {type: hyperband, min_iter: 1, max_iter: 9, s: 2.0}
        parameters:
          optimizer.config.learning_rate: {distribution: inv_log_uniform_values, min: 0.0001, max: 0.1}
          x: {distribution: normal, mu: 0, sigma: 1}
          dropout: {distribution: beta, a: 2, b: 5}
          width: {distribution: q_beta, a: 2, b: 2, q: 0.25}
        """)
    )
    done = cli_here("plan", "wb.yaml", "--trainable", "trainables.toy:quadratic", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout + done.stderr
    assert "tune-optimizer-schedule" in out and "ignoring W&B key 'controller'" in out


# -- distributions ---------------------------------------------------------------------------


def draws(spec: dict[str, Any], n: int = 20_000) -> np.ndarray:
    space, found = parse_parameters({"p": spec})
    assert not found
    rng = np.random.default_rng(0)
    return np.array([space.params["p"].sample(rng) for _ in range(n)])


def test_beta_draws_have_its_mean() -> None:
    x = draws({"distribution": "beta", "a": 2, "b": 5})
    assert x.min() >= 0 and x.max() <= 1
    assert abs(x.mean() - 2 / 7) < 0.01
    q = draws({"distribution": "q_beta", "a": 2, "b": 2, "q": 0.25})
    assert set(np.round(q, 9)) <= {0.0, 0.25, 0.5, 0.75, 1.0} and abs(q.mean() - 0.5) < 0.01


def test_inv_log_uniform_is_log_uniform_in_1_over_x() -> None:
    # W&B: log(1/X) is uniform in [min, max], so X lies in [e^-max, e^-min]
    x = draws({"distribution": "inv_log_uniform", "min": 0, "max": 4})
    assert math.exp(-4) <= x.min() and x.max() <= 1.0
    assert abs(np.median(np.log(1 / x)) - 2) < 0.05
    # W&B's _values form takes the bounds of X itself, log-uniform between them
    v = draws({"distribution": "inv_log_uniform_values", "min": 1e-4, "max": 1e-1})
    assert v.min() >= 1e-4 and v.max() <= 1e-1
    assert abs(np.median(np.log10(v)) + 2.5) < 0.05


def test_log_normal_and_log_uniform_as_wandb_reads_them() -> None:
    assert abs(np.median(draws({"distribution": "log_normal", "mu": 1, "sigma": 0.5})) - math.e) < 0.05
    x = draws({"distribution": "log_uniform", "min": 0, "max": 2})  # bounds are exponents
    assert x.min() >= 1 and x.max() <= math.exp(2)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"distribution": "inv_log_uniform", "min": 0, "max": 2}, Float(math.exp(-2), 1.0, log=True)),
        ({"distribution": "inv_log_uniform_values", "min": 0.01, "max": 1}, Float(0.01, 1.0, log=True)),
        ({"distribution": "beta", "a": 2, "b": 3}, Beta(2.0, 3.0)),
        ({"distribution": "beta"}, Beta(1.0, 1.0)),
        ({"distribution": "q_beta", "a": 1, "b": 1, "q": 0.1}, Beta(1.0, 1.0, q=0.1)),
        ({"distribution": "q_log_normal", "q": 2}, Normal(0.0, 1.0, log=True, q=2)),
    ],
)
def test_every_wandb_distribution_parses(spec: dict[str, Any], expected: Any) -> None:
    space, found = parse_parameters({"p": spec})
    assert not found and space.params["p"] == expected


def test_categorical_w_probabilities_is_wandbs_name_for_a_weighted_categorical() -> None:
    space, found = parse_parameters(
        {"p": {"distribution": "categorical_w_probabilities", "values": [1, 2], "probabilities": [0.2, 0.8]}}
    )
    assert not found and space.params["p"].probabilities == (0.2, 0.8)  # type: ignore[union-attr]
    _, found = parse_parameters({"p": {"distribution": "categorical_w_probabilities", "values": [1, 2]}})
    assert [str(p) for p in found] == [
        "parameters.p.probabilities: is required by distribution categorical_w_probabilities"
    ]


EVERY = {
    "c": {"value": 3},
    "cat": {"values": ["a", "b"]},
    "w": {"distribution": "categorical_w_probabilities", "values": [1, 2], "probabilities": [0.5, 0.5]},
    "i": {"distribution": "int_uniform", "min": 1, "max": 8},
    "u": {"distribution": "uniform", "min": 0.0, "max": 1.0},
    "qu": {"distribution": "q_uniform", "min": 0, "max": 10, "q": 2},
    "lu": {"distribution": "log_uniform", "min": -4, "max": 0},
    "luv": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
    "qlu": {"distribution": "q_log_uniform", "min": 0, "max": 4, "q": 1},
    "qluv": {"distribution": "q_log_uniform_values", "min": 1, "max": 64, "q": 1},
    "ilu": {"distribution": "inv_log_uniform", "min": 0, "max": 4},
    "iluv": {"distribution": "inv_log_uniform_values", "min": 1e-3, "max": 1.0},
    "n": {"distribution": "normal", "mu": 0, "sigma": 1},
    "qn": {"distribution": "q_normal", "mu": 0, "sigma": 3, "q": 1},
    "ln": {"distribution": "log_normal", "mu": 0, "sigma": 1},
    "qln": {"distribution": "q_log_normal", "mu": 2, "sigma": 1, "q": 1},
    "b": {"distribution": "beta", "a": 2, "b": 5},
    "qb": {"distribution": "q_beta", "a": 2, "b": 2, "q": 0.1},
}


@pytest.mark.parametrize("method", [m for m in searchers.OWN if m != "grid"])
def test_every_method_searches_every_wandb_distribution(method: str) -> None:
    """Model-based methods included: normal and beta are searched by their quantile (W&B's bayes)."""
    study = load_study(text=text(method=method, parameters=EVERY, run_cap=20))
    space = study.space
    searcher = searchers.create(method, space, 0, dict(study.spec.searcher), run_cap=None)
    seen = []
    for i in range(14):
        config = searcher.suggest(f"t{i}")
        assert config is not None and not space.problems(config), config
        seen.append(config)
        searcher.tell(f"t{i}", config, Outcome((config["n"] - 1) ** 2 + config["b"], "complete", 1))
    assert len({c["n"] for c in seen}) > 5
    # a trial it never proposed (a warm start's) is told too
    other = searchers.create(method, space, 1, dict(study.spec.searcher), run_cap=None)
    for i, config in enumerate(seen):
        other.tell(f"w{i}", config, Outcome(float(i), "complete", 1))
    assert other.suggest("next") is not None


def test_bayes_over_a_normal_moves_towards_the_best_quantile() -> None:
    """The GP works in [0, 1] (the normal's CDF): its proposals home in on the optimum at mu + sigma."""
    space, _ = parse_parameters({"x": {"distribution": "normal", "mu": 0, "sigma": 1}})
    searcher = searchers.create("bayes", space, 0, {"init_points": 4}, run_cap=None)
    xs = []
    for i in range(16):
        config = searcher.suggest(f"t{i}")
        assert config is not None
        xs.append(config["x"])
        searcher.tell(f"t{i}", config, Outcome((config["x"] - 1) ** 2, "complete", 1))
    assert min(abs(x - 1) for x in xs[4:]) < 0.05
