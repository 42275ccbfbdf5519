"""Conditional parameters (``when:``): parsed and checked, and searched by every method so that
a parameter exists exactly when its condition holds."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import cli_here
from tuner.searchers import Outcome, create
from tuner.space import parse_parameters

SPACE = {
    "optimizer": {"values": ["adam", "sgd", "rmsprop"]},
    "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1},
    "momentum": {"values": [0.0, 0.5, 0.9], "when": {"optimizer": ["sgd", "rmsprop"]}},
    "nesterov": {"values": [True, False], "when": {"optimizer": "sgd", "momentum": [0.5, 0.9]}},
    "sgd_extra": {"when": {"optimizer": "sgd"}, "parameters": {"dampening": {"min": 0.0, "max": 0.5}}},
}


def valid(config: dict[str, object]) -> bool:
    """The rule SPACE states, written out by hand."""
    opt = config["optimizer"]
    momentum_ok = ("momentum" in config) == (opt in ("sgd", "rmsprop"))
    nesterov_ok = ("nesterov" in config) == (opt == "sgd" and config.get("momentum") in (0.5, 0.9))
    damp_ok = ("sgd_extra.dampening" in config) == (opt == "sgd")
    return momentum_ok and nesterov_ok and damp_ok and "lr" in config


def test_conditions_are_parsed_and_every_mistake_is_located() -> None:
    space, problems = parse_parameters(SPACE)
    assert problems == []
    assert space.conditions["nesterov"] == (("optimizer", ("sgd",)), ("momentum", (0.5, 0.9)))
    assert space.conditions["sgd_extra.dampening"] == (("optimizer", ("sgd",)),)  # a nested block's when
    assert space.active({"optimizer": "adam", "lr": 0.1, "momentum": 0.9, "nesterov": True}) == {
        "optimizer": "adam",
        "lr": 0.1,
    }
    bad = {
        "optimizer": {"values": ["adam", "sgd"]},
        "lr": {"min": 0.0, "max": 1.0, "when": {"optimiser": "sgd"}},
        "momentum": {"min": 0.0, "max": 1.0, "when": {"optimizer": "SGD"}},
        "beta": {"min": 0.0, "max": 1.0, "when": {"lr": 0.5}},
        "gamma": {"min": 0.0, "max": 1.0, "when": {"delta": "x"}},
        "delta": {"values": ["x"]},
        "eps": {"min": 0.0, "max": 1.0, "when": "sgd"},
    }
    _, problems = parse_parameters(bad)
    assert [(p.path, p.message.split(";")[0]) for p in problems] == [
        ("parameters.lr.when.optimiser", "unknown parameter 'optimiser'"),
        ("parameters.momentum.when.optimizer", "'SGD' is not a value of optimizer"),
        (
            "parameters.beta.when.lr",
            "lr is not a parameter with values: a condition names a categorical (values: [...])",
        ),
        ("parameters.gamma.when.delta", "delta must be written before gamma, which depends on it"),
        ("parameters.eps.when", "must map parameters to value(s), e.g. {optimizer: sgd}, got 'sgd'"),
    ]


def test_grid_enumerates_only_valid_combinations() -> None:
    grid = {k: v for k, v in SPACE.items() if k not in ("lr", "sgd_extra")}
    space, _ = parse_parameters(grid)
    searcher = create("grid", space, 0, {}, None)
    cells = []
    while (config := searcher.suggest(f"t{len(cells)}")) is not None:
        cells.append(config)
    # adam: 1; sgd: momentum 0 (no nesterov) + momentum 0.5/0.9 x nesterov 2 = 5; rmsprop: 3
    assert len(cells) == 9 and len({str(sorted(c.items())) for c in cells}) == 9
    assert cells[0] == {"optimizer": "adam"}
    assert all(
        valid({**c, "lr": 1, "sgd_extra.dampening": 0} if c["optimizer"] == "sgd" else {**c, "lr": 1}) for c in cells
    )


@pytest.mark.parametrize("method", ["random", "optuna", "bayes"])
def test_each_method_proposes_only_active_parameters(method: str) -> None:
    space, _ = parse_parameters(SPACE)
    searcher = create(method, space, 3, {}, None)
    seen = set()
    for i in range(24):
        config = searcher.suggest(f"t{i}")
        assert config is not None and valid(config), config
        seen.add(config["optimizer"])
        loss = config["lr"] + (0.1 if config["optimizer"] == "adam" else config.get("momentum", 0.0))
        searcher.tell(f"t{i}", config, Outcome(loss, "complete"))
    assert seen == {"adam", "sgd", "rmsprop"}
    if method == "optuna":  # define-by-run: the sampler never saw an inactive parameter
        trials = searcher._study.trials  # type: ignore[attr-defined]
        assert all(("momentum" in t.params) == (t.params["optimizer"] != "adam") for t in trials)


def test_a_conditional_study_runs_end_to_end(no_ray: None, tmp_path: Path) -> None:
    """Through the command line on the simulated backend: the trainable gets ``layers`` exactly
    when ``act`` is relu (it fails the trial otherwise), the table leaves it empty for tanh."""
    (tmp_path / "cond.yaml").write_text(
        textwrap.dedent("""
        name: cond
        trainable: tests.engine.curves:conditional
        backend: simulated
        metric: {name: loss, goal: minimize}
        method: grid
        early_terminate: {type: asha, max_t: 2, grace_period: 2}
        parameters:
          act: {values: [relu, tanh]}
          layers: {values: [2, 4], when: {act: relu}}
          lr: {values: [0.01]}
        """)
    )
    done = cli_here("run", "cond.yaml", "--allow-module", "tests", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    trials = pd.read_parquet(tmp_path / "results" / "cond" / "trials.parquet")
    assert len(trials) == 3 and set(trials["status"]) == {"finished"}  # relu x 2 layers, tanh once
    tanh = trials[trials["params_act"] == "tanh"]
    assert len(tanh) == 1 and pd.isna(tanh["params_layers"].iloc[0])
    report = cli_here("report", "results/cond", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
