"""Where to evaluate next: an acquisition function of the GP, maximised over a mixed space.

Values are minimised. ``ei`` is the logarithm of expected improvement over ``best`` (stable far
into the tails, after Ament et al., "Unexpected improvements to expected improvement", 2023),
``poi`` the log probability of improvement, ``ucb`` the negated lower confidence bound.

The maximiser: random rows and perturbations of the best observed rows are scored, the best
few are climbed together by L-BFGS-B over the continuous columns (one problem over the batch,
as BoTorch does), then every discrete and categorical column is searched around each climber,
and the climb runs once more for those that moved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.optimize
from scipy.special import log_ndtr, ndtr

from tuner.gp._encoding import Encoding
from tuner.gp._model import GP

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
EXHAUSTIVE = 16  # a discrete column with at most this many values is searched value by value


def log_h(z: np.ndarray) -> np.ndarray:
    """``log(z * Phi(z) + phi(z))``, accurate for very negative ``z`` too."""
    z = np.asarray(z, dtype=float)
    out = np.empty_like(z)
    small = z < -25
    zs = z[~small]
    out[~small] = np.log(zs * ndtr(zs) + np.exp(-0.5 * zs * zs - _LOG_SQRT_2PI))
    zt = z[small]
    # h(z) = phi(z) / z^2 * (1 - 3/z^2 + 15/z^4 - ...), from the asymptotic series of Mills' ratio
    out[small] = -0.5 * zt * zt - _LOG_SQRT_2PI - 2 * np.log(-zt) + np.log1p(-3 / zt**2 + 15 / zt**4 - 105 / zt**6)
    return out


@dataclass(frozen=True)
class Acquisition:
    gp: GP
    best: float  # the value to improve on (standardised)
    kind: Literal["ei", "ucb", "poi"] = "ei"
    kappa: float = 2.576
    xi: float = 0.0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        mean, var = self.gp.predict(x)
        return self._value(mean, np.sqrt(var))[0]

    def _value(self, mean: np.ndarray, sd: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The acquisition and its derivatives with respect to the mean and the standard deviation."""
        if self.kind == "ucb":
            return -(mean - self.kappa * sd), -np.ones_like(mean), np.full_like(mean, self.kappa)
        z = (self.best - self.xi - mean) / sd
        if self.kind == "poi":
            value = log_ndtr(z)
            ratio = np.exp(-0.5 * z * z - _LOG_SQRT_2PI - value)  # phi / Phi
            return value, -ratio / sd, -ratio * z / sd
        lh = log_h(z)
        ratio = np.exp(log_ndtr(z) - lh)  # Phi(z) / h(z) = d log h / dz
        return np.log(sd) + lh, -ratio / sd, (1.0 - ratio * z) / sd

    def with_gradient(self, x: np.ndarray, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The acquisition at ``x`` and its gradient with respect to ``columns``."""
        mean, var, dmean, dvar = self.gp.predict_with_gradient(x, columns)
        sd = np.sqrt(var)
        value, d_mean, d_sd = self._value(mean, sd)
        return value, d_mean[:, None] * dmean + (d_sd / (2 * sd))[:, None] * dvar


def propose(
    acq: Acquisition,
    enc: Encoding,
    rng: np.random.Generator,
    *,
    incumbents: np.ndarray,
    fixed: dict[int, float] | None = None,
    n_random: int = 1024,
    n_local: int = 512,
    n_starts: int = 8,
) -> list[np.ndarray]:
    """Rows worth evaluating, best first: the maximiser's results, then the best of the scored
    candidates (so that a caller who must skip a row, a repeat, has the next one at hand).

    ``incumbents``: the best observed rows, around which local candidates are drawn. ``fixed``:
    columns held at a value (a fidelity column at the full budget), beyond ``enc.dim``.
    """
    fixed = fixed or {}
    dim = enc.dim + len(fixed)
    cands = np.vstack([enc.sample(n_random, rng), _around(incumbents[:, : enc.dim], enc, rng, n_local)])
    cands = _with_fixed(cands, dim, fixed)
    scores = acq(cands)
    order = np.argsort(-scores)
    starts = _distinct(cands[order], n_starts)
    climbed = _climb(acq, enc, starts, dim, fixed)
    rest = cands[order[: 4 * n_starts]]
    values = np.concatenate([acq(climbed), scores[order[: 4 * n_starts]]])
    rows = np.vstack([climbed, rest])
    return [rows[i] for i in np.argsort(-values, kind="stable")]


def _with_fixed(x: np.ndarray, dim: int, fixed: dict[int, float]) -> np.ndarray:
    out = np.zeros((len(x), dim))
    out[:, : x.shape[1]] = x
    for j, value in fixed.items():
        out[:, j] = value
    return out


def _around(centres: np.ndarray, enc: Encoding, rng: np.random.Generator, n: int) -> np.ndarray:
    """Perturbations of the best rows at several radii; discrete columns jump to a random value
    with probability 1/dim."""
    if len(centres) == 0 or n == 0:
        return np.empty((0, enc.dim))
    picks = centres[rng.integers(len(centres), size=n)]
    radius = np.array([0.002, 0.01, 0.05, 0.2])[rng.integers(4, size=n)][:, None]
    out = np.clip(picks + radius * rng.standard_normal(picks.shape), 0.0, 1.0)
    jump = rng.random(picks.shape) < 1.0 / max(enc.dim, 1)
    fresh = enc.sample(n, rng)
    for j in enc.discrete:
        out[:, j] = np.where(jump[:, j], fresh[:, j], picks[:, j])
    return enc.snap(out)


def _distinct(rows: np.ndarray, k: int) -> np.ndarray:
    chosen: list[np.ndarray] = []
    for row in rows:
        if all(np.abs(row - c).max() > 1e-6 for c in chosen):
            chosen.append(row)
            if len(chosen) == k:
                break
    return np.array(chosen)


def _climb(acq: Acquisition, enc: Encoding, starts: np.ndarray, dim: int, fixed: dict[int, float]) -> np.ndarray:
    """Continuous ascent, discrete search, and the ascent again for the rows that moved."""
    x = _ascend(acq, enc, starts, dim, fixed)
    x, moved = _discrete_search(acq, enc, x)
    if moved.any():
        x[moved] = _ascend(acq, enc, x[moved], dim, fixed)
        x[moved] = _discrete_search(acq, enc, x[moved])[0]
    return x


def _ascend(acq: Acquisition, enc: Encoding, x0: np.ndarray, dim: int, fixed: dict[int, float]) -> np.ndarray:
    """L-BFGS-B on the sum of the batch's acquisition values over the continuous columns
    (discrete ones relaxed, then snapped), each scaled by its length scale."""
    columns = np.array([j for j in range(enc.dim) if not enc.is_categorical[j] and j not in fixed], dtype=int)
    if len(columns) == 0 or len(x0) == 0:
        return _snap(enc, x0)
    scale = acq.gp.hyper.lengthscales[columns]
    base = x0.copy()

    def negative(u: np.ndarray) -> tuple[float, np.ndarray]:
        x = base.copy()
        x[:, columns] = u.reshape(len(base), len(columns)) * scale
        value, grad = acq.with_gradient(x, columns)
        return -float(value.sum()), -(grad * scale).reshape(-1)

    bounds = [(0.0, 1.0 / s) for s in scale] * len(base)
    found = scipy.optimize.minimize(
        negative, (base[:, columns] / scale).reshape(-1), jac=True, method="L-BFGS-B", bounds=bounds,
        options={"maxiter": 100},
    )  # fmt: skip
    x = base.copy()
    x[:, columns] = np.clip(found.x.reshape(len(base), len(columns)) * scale, 0.0, 1.0)
    return _snap(enc, x)


def _snap(enc: Encoding, x: np.ndarray) -> np.ndarray:
    """Snap the encoded columns of rows that may carry extra (fixed) columns."""
    out = x.copy()
    out[:, : enc.dim] = enc.snap(x[:, : enc.dim])
    return out


def _discrete_search(acq: Acquisition, enc: Encoding, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each discrete or categorical column in turn, the best value near each row's."""
    x = x.copy()
    moved = np.zeros(len(x), dtype=bool)
    if len(x) == 0:
        return x, moved
    best = acq(x)
    for j in enc.discrete:
        choices = enc.choices(j)
        for i in range(len(x)):
            if enc.is_categorical[j] or len(choices) <= EXHAUSTIVE:
                options = choices
            else:
                at = int(np.abs(choices - x[i, j]).argmin())
                near = at + np.array([-8, -4, -2, -1, 1, 2, 4, 8])
                options = choices[near[(near >= 0) & (near < len(choices))]]
            trial = np.repeat(x[i : i + 1], len(options), axis=0)
            trial[:, j] = options
            values = acq(trial)
            k = int(np.argmax(values))
            if values[k] > best[i] + 1e-12:
                x[i], best[i], moved[i] = trial[k], values[k], True
    return x, moved
