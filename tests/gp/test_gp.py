"""The GP machinery: the encoding as a table, the model's gradients, the acquisition's tails."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import ndtr

from tuner.gp import GP, Acquisition, Encoding, fit
from tuner.gp._acquisition import log_h, propose
from tuner.gp._model import Hyper, _Objective
from tuner.space import parse_parameters

SPACE, _ = parse_parameters(
    {
        "lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1},
        "layers": {"min": 1, "max": 4},
        "width": {"distribution": "q_uniform", "min": 32, "max": 256, "q": 32},
        "batch": {"distribution": "q_log_uniform_values", "min": 16, "max": 256, "q": 16},
        "act": {"values": ["relu", "tanh", "gelu"]},
        "drop": {"min": 0.0, "max": 0.5},
    }
)


@pytest.mark.parametrize(
    ("name", "kind", "value", "unit"),
    [
        ("lr", "continuous", 1e-3, 0.5),  # the middle of [1e-5, 1e-1] in log space
        ("drop", "continuous", 0.25, 0.5),
        ("layers", "discrete", 1, 1 / 8),  # four integers, each owning a quarter of [0, 1]
        ("layers", "discrete", 4, 7 / 8),
        ("width", "discrete", 32, 1 / 16),
        ("act", "categorical", "gelu", 2.0),  # the index: compared for equality only
    ],
)
def test_each_parameter_kind_is_one_column(name: str, kind: str, value: object, unit: float) -> None:
    enc = Encoding(SPACE)
    column = enc.columns[[c.name for c in enc.columns].index(name)]
    assert column.kind == kind
    assert column.to_unit(value) == pytest.approx(unit)


def test_decode_gives_values_of_the_space_with_their_types() -> None:
    enc = Encoding(SPACE)
    rng = np.random.default_rng(0)
    for row in rng.random((200, enc.dim)) * [1, 1, 1, 1, 3, 1]:
        config = enc.decode(row)
        assert 1e-5 <= config["lr"] <= 1e-1 and 0 <= config["drop"] <= 0.5
        assert type(config["layers"]) is int and 1 <= config["layers"] <= 4
        assert type(config["width"]) is int and config["width"] % 32 == 0
        assert type(config["batch"]) is int and config["batch"] % 16 == 0
        assert config["act"] in ("relu", "tanh", "gelu")
        assert enc.decode(enc.encode([config])[0]) == config  # a round trip changes nothing


def test_every_value_of_a_discrete_column_is_drawn_about_equally_often() -> None:
    enc = Encoding(SPACE)
    rows = enc.sample(8000, np.random.default_rng(1))
    j = [c.name for c in enc.columns].index("layers")
    counts = np.unique(rows[:, j], return_counts=True)[1]
    assert len(counts) == 4 and counts.min() > 0.8 * counts.max()  # the ends are not under-sampled


def data(n: int = 25, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, 3))
    x[:, 2] = rng.integers(0, 3, n)  # a categorical column
    y = np.sin(6 * x[:, 0]) + x[:, 1] ** 2 + 0.5 * (x[:, 2] == 1)
    return x, (y - y.mean()) / y.std(), np.array([False, False, True])


def test_the_marginal_likelihoods_gradient_is_exact() -> None:
    x, y, cat = data()
    objective = _Objective(x, y, cat)
    v = np.array([0.3, -0.5, 1.0, 0.2, -3.0])
    _, grad = objective(v)
    numeric = [(objective(v + e)[0] - objective(v - e)[0]) / 2e-6 for e in np.eye(len(v)) * 1e-6]
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-6)


def test_a_fitted_gp_interpolates_a_deterministic_function_and_is_unsure_far_away() -> None:
    x, y, cat = data(40)
    gp = fit(x, y, cat)
    mean, var = gp.predict(x)
    np.testing.assert_allclose(mean, y, atol=1e-2)
    assert var.max() < 1e-3 * gp.hyper.scale
    far = np.array([[5.0, 5.0, 0.0]])
    assert gp.predict(far)[1][0] > 0.9 * gp.hyper.scale
    assert gp.hyper.lengthscales[0] < gp.hyper.lengthscales[1] * 3  # sin(6x) varies on a short scale


@pytest.mark.parametrize("kind", ["ei", "poi", "ucb"])
def test_acquisition_gradients_are_exact(kind: str) -> None:
    x, y, cat = data()
    gp = GP(x, y, cat, Hyper(np.array([1.0, 0.5, 0.0]), 0.1, -6.0))
    acq = Acquisition(gp, float(y.min()), kind)  # type: ignore[arg-type]
    q = np.random.default_rng(3).random((6, 3))
    q[:, 2] = [0, 1, 2, 0, 1, 2]
    columns = np.array([0, 1])
    value, grad = acq.with_gradient(q, columns)
    np.testing.assert_allclose(value, acq(q))
    for c in columns:
        e = np.zeros(3)
        e[c] = 1e-6
        numeric = (acq(q + e) - acq(q - e)) / 2e-6
        np.testing.assert_allclose(grad[:, list(columns).index(c)], numeric, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("z", [-60.0, -30.0, -25.001, -24.999, -10.0, -1.0, 0.0, 4.0])
def test_log_expected_improvement_is_accurate_far_into_the_tail(z: float) -> None:
    if z > -20:
        expected = math.log(z * ndtr(z) + math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi))
    else:  # h(z) = phi(z)/z^2 (1 - 3/z^2 + 15/z^4 - 105/z^6 + ...), to the order that matters here
        expected = -0.5 * z * z - 0.5 * math.log(2 * math.pi) - 2 * math.log(-z) + math.log1p(-3 / z**2 + 15 / z**4)
    assert log_h(np.array([z]))[0] == pytest.approx(expected, rel=1e-7, abs=1e-9)


def test_the_maximiser_finds_the_acquisitions_peak() -> None:
    """On a known 2-D bowl the proposal beats the best of 20000 random candidates' acquisition."""
    space, _ = parse_parameters({"a": {"min": 0.0, "max": 1.0}, "b": {"min": 0.0, "max": 1.0}})
    enc = Encoding(space)
    rng = np.random.default_rng(0)
    x = rng.random((15, 2))
    y = ((x - [0.3, 0.7]) ** 2).sum(1)
    y = (y - y.mean()) / y.std()
    gp = fit(x, y, np.array([False, False]))
    acq = Acquisition(gp, float(y.min()))
    best = propose(acq, enc, rng, incumbents=x[np.argsort(y)[:3]])[0]
    assert acq(best[None])[0] >= acq(rng.random((20000, 2))).max() - 1e-9
