"""The W&B ``parameters`` vocabulary -> our space model, as a table."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tuner.space import Categorical, Constant, Float, Int, Normal, grid_product, nest, parse_parameters


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"value": 3}, Constant(3)),
        ({"values": ["a", "b"]}, Categorical(("a", "b"))),
        ({"values": [1, 2], "probabilities": [0.25, 0.75]}, Categorical((1, 2), (0.25, 0.75))),
        ({"min": 1, "max": 5}, Int(1, 5)),
        ({"min": 0.0, "max": 1}, Float(0.0, 1.0)),
        ({"distribution": "uniform", "min": 1, "max": 5}, Float(1.0, 5.0)),
        ({"distribution": "int_uniform", "min": -2, "max": 2}, Int(-2, 2)),
        ({"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1}, Float(1e-5, 1e-1, log=True)),
        ({"distribution": "log_uniform", "min": 0, "max": 1}, Float(1.0, math.e, log=True)),
        ({"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.25}, Float(0.0, 1.0, q=0.25)),
        ({"distribution": "q_uniform", "min": 32, "max": 256, "q": 32}, Float(32.0, 256.0, q=32, integer=True)),
        (
            {"distribution": "q_log_uniform_values", "min": 1, "max": 100, "q": 1},
            Float(1.0, 100.0, log=True, q=1, integer=True),
        ),
        (
            {"distribution": "q_log_uniform_values", "min": 1e-3, "max": 1.0, "q": 1e-3},
            Float(1e-3, 1.0, log=True, q=1e-3),
        ),
        ({"distribution": "q_log_uniform", "min": 0, "max": 5}, Float(1.0, math.exp(5), log=True, q=1, integer=True)),
        ({"distribution": "q_log_uniform", "min": 0, "max": 5, "q": 0.5}, Float(1.0, math.exp(5), log=True, q=0.5)),
        ({"distribution": "normal", "mu": 1, "sigma": 2}, Normal(1.0, 2.0)),
        ({"distribution": "log_normal"}, Normal(0.0, 1.0, log=True)),
        ({"distribution": "q_normal", "q": 2}, Normal(0.0, 1.0, q=2)),
        ({"values": [1, 2], "grid": True}, Categorical((1, 2), grid=True)),
    ],
)
def test_parameter_kinds(spec: dict, expected: object) -> None:
    space, problems = parse_parameters({"p": spec})
    assert problems == []
    assert space.params["p"] == expected


@pytest.mark.parametrize(
    ("spec", "path", "match"),
    [
        ({"values": []}, "parameters.p.values", "non-empty list"),
        ({"min": 5, "max": 1}, "parameters.p.min", "less than max"),
        ({"distribution": "log_uniform_values", "min": 0, "max": 1}, "parameters.p.min", "> 0 for a log scale"),
        ({"distribution": "q_log_uniform_values", "min": -1, "max": 1}, "parameters.p.min", "> 0"),
        ({"values": [1, 2], "probabilities": [0.5, 0.6]}, "parameters.p.probabilities", "sum to 1"),
        ({"values": [1, 2], "probabilities": [1.0]}, "parameters.p.probabilities", "2 numbers"),
        ({"distribution": "nope", "min": 0, "max": 1}, "parameters.p.distribution", "unknown distribution"),
        ({"distribution": "uniform", "min": 0, "max": 1, "mu": 0}, "parameters.p", "mu not used"),
        ({"distribution": "int_uniform", "min": 0.5, "max": 3}, "parameters.p", "integer min and max"),
        ({"min": 0, "max": float("nan")}, "parameters.p.max", "finite number"),
        ({"min": "0", "max": 1}, "parameters.p.min", "finite number"),
        ({"min": True, "max": 3}, "parameters.p.min", "finite number"),
        ({"distribution": "normal", "sigma": 0}, "parameters.p.sigma", "> 0"),
        ({"distribution": "q_uniform", "min": 0.1, "max": 0.2, "q": 1}, "parameters.p.q", "no multiple"),
        ({"mystery": 1}, "parameters.p", "unknown key"),
        ({"grid": "yes", "values": [1]}, "parameters.p.grid", "true or false"),
        ({}, "parameters.p", "needs one of"),
        (3, "parameters.p", "must be a mapping"),
    ],
)
def test_parameter_errors_name_the_field(spec: object, path: str, match: str) -> None:
    _, problems = parse_parameters({"p": spec})
    assert len(problems) == 1
    assert problems[0].path == path
    assert match in problems[0].message


def test_all_problems_reported_at_once() -> None:
    _, problems = parse_parameters({"a": {"values": []}, "b": {"min": 2, "max": 1}, "c": {"value": 1}})
    assert [p.path for p in problems] == ["parameters.a.values", "parameters.b.min"]


def test_nested_blocks_flatten_and_nest_back() -> None:
    space, problems = parse_parameters(
        {
            "lr": {"value": 0.1},
            "optimizer": {"parameters": {"name": {"values": ["adam"]}, "beta": {"parameters": {"b1": {"value": 0.9}}}}},
        }
    )
    assert problems == []
    assert list(space) == ["lr", "optimizer.name", "optimizer.beta.b1"]
    flat = space.complete({"optimizer.name": "adam"})
    assert nest(flat) == {"lr": 0.1, "optimizer": {"name": "adam", "beta": {"b1": 0.9}}}


def test_samples_stay_in_bounds_and_respect_q() -> None:
    rng = np.random.default_rng(0)
    f = Float(1e-4, 1e-1, log=True)
    q = Float(0.0, 1.0, q=0.25)
    draws = [f.sample(rng) for _ in range(500)]
    assert min(draws) >= 1e-4 and max(draws) <= 1e-1
    # log scale: about half the draws fall below the geometric midpoint
    assert 0.4 < np.mean([d < math.sqrt(1e-4 * 1e-1) for d in draws]) < 0.6
    assert {q.sample(rng) for _ in range(200)} <= {0.0, 0.25, 0.5, 0.75, 1.0}
    assert Float(32, 256, q=32, integer=True).sample(rng) in range(32, 257, 32)


def test_grid_values() -> None:
    assert Float(0.0, 0.3, q=0.1).grid_values() == [0.0, 0.1, 0.2, 0.3]
    assert Int(1, 3).grid_values() == [1, 2, 3]
    assert Float(0.0, 1.0).grid_values() is None
    assert Normal(0, 1).grid_values() is None
    space, _ = parse_parameters({"a": {"values": [1, 2]}, "b": {"values": ["x", "y", "z"]}})
    assert len(grid_product(space)) == 6


@pytest.mark.parametrize(
    "spec",
    [
        {"distribution": "q_uniform", "min": 32, "max": 256, "q": 32},
        {"distribution": "q_log_uniform_values", "min": 16, "max": 512, "q": 16},
        {"distribution": "q_log_uniform", "min": 2, "max": 6, "q": 2},
    ],
)
def test_whole_number_quantised_values_are_integers(spec: dict) -> None:
    """The README promises integers, not 192.0, whether sampled, decoded from a searcher or gridded."""
    space, problems = parse_parameters({"p": spec})
    assert problems == []
    p = space.params["p"]
    rng = np.random.default_rng(0)
    values = [p.sample(rng) for _ in range(50)] + [p.decode(100.3)] + (p.grid_values() or [])
    assert all(type(v) is int and v % spec["q"] == 0 for v in values), values
