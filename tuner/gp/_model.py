"""A Gaussian process with a Matern-5/2 kernel and one length scale per input, fitted by MAP.

The kernel is ``scale * matern52(r)`` with ``r^2 = sum_i ils_i * d_i``, where ``ils_i`` is the
inverse squared length scale of input ``i`` and ``d_i`` its squared difference (for a
categorical input: 0 if equal, else 1, a Hamming distance). The hyperparameters (``ils``,
``scale``, the noise variance) maximise the marginal likelihood times the priors Optuna's
GPSampler uses (they keep length scales near the unit cube's size and the noise small unless the
data say otherwise). Gradients are analytic; everything is numpy and LAPACK.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.optimize
from scipy.linalg import lapack

MIN_NOISE = 1e-8  # the noise variance's floor, in units of the standardised target's variance
_SQRT5 = math.sqrt(5.0)


@dataclass(frozen=True)
class Hyper:
    """Hyperparameters in log space: ``ils = exp(log_ils)``, ``noise = MIN_NOISE + exp(log_noise)``."""

    log_ils: np.ndarray
    log_scale: float
    log_noise: float

    @classmethod
    def default(cls, dim: int) -> Hyper:
        return cls(np.zeros(dim), 0.0, 0.0)

    @classmethod
    def from_vector(cls, v: np.ndarray) -> Hyper:
        return cls(np.array(v[:-2]), float(v[-2]), float(v[-1]))

    def vector(self) -> np.ndarray:
        return np.concatenate([self.log_ils, [self.log_scale, self.log_noise]])

    @property
    def ils(self) -> np.ndarray:
        return np.exp(self.log_ils)

    @property
    def scale(self) -> float:
        return math.exp(self.log_scale)

    @property
    def noise(self) -> float:
        return MIN_NOISE + math.exp(self.log_noise)

    @property
    def lengthscales(self) -> np.ndarray:
        return 1.0 / np.sqrt(self.ils)


def matern52(sq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``k(r)`` for ``r^2 = sq`` (unit scale), and its derivative with respect to ``sq``."""
    r = _SQRT5 * np.sqrt(np.maximum(sq, 0.0))
    e = np.exp(-r)
    return e * (1.0 + r + r * r / 3.0), -(5.0 / 6.0) * (1.0 + r) * e


def squared_differences(a: np.ndarray, b: np.ndarray, is_categorical: np.ndarray) -> np.ndarray:
    """``(len(a), len(b), dim)``: per-input squared differences (Hamming for categorical inputs)."""
    diff = a[:, None, :] - b[None, :, :]
    out = diff * diff
    out[..., is_categorical] = (out[..., is_categorical] > 0).astype(float)
    return out


def weighted_distances(a: np.ndarray, b: np.ndarray, ils: np.ndarray, is_categorical: np.ndarray) -> np.ndarray:
    """``r^2`` between every row of ``a`` and of ``b`` without the ``(m, n, dim)`` array."""
    cont = ~is_categorical
    sa, sb = a[:, cont] * np.sqrt(ils[cont]), b[:, cont] * np.sqrt(ils[cont])
    sq = (sa * sa).sum(1)[:, None] + (sb * sb).sum(1)[None, :] - 2.0 * sa @ sb.T
    np.maximum(sq, 0.0, out=sq)
    for j in np.flatnonzero(is_categorical):
        sq += ils[j] * (a[:, j, None] != b[None, :, j])
    return sq


def _cholesky(k: np.ndarray) -> np.ndarray:
    chol, info = lapack.dpotrf(k, lower=1, clean=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"kernel matrix not positive definite (info {info})")
    return chol


class GP:
    """The posterior of a zero-mean GP given rows ``x`` (in the unit cube) and targets ``y``."""

    def __init__(self, x: np.ndarray, y: np.ndarray, is_categorical: np.ndarray, hyper: Hyper) -> None:
        self.x, self.y, self.is_categorical, self.hyper = x, y, is_categorical, hyper
        k = hyper.scale * matern52(weighted_distances(x, x, hyper.ils, is_categorical))[0]
        k[np.diag_indices_from(k)] += hyper.noise
        jitter = 0.0
        for _ in range(5):
            try:
                self.chol = _cholesky(k + jitter * np.eye(len(k)))
                break
            except np.linalg.LinAlgError:
                jitter = max(jitter * 10, 1e-8)
        else:
            raise np.linalg.LinAlgError("kernel matrix not positive definite even with jitter")
        self.alpha = lapack.dpotrs(self.chol, y, lower=1)[0]

    def condition(self, x: np.ndarray, y: np.ndarray) -> GP:
        """The same model with more (pretended) observations; the hyperparameters stay."""
        return GP(np.vstack([self.x, x]), np.concatenate([self.y, y]), self.is_categorical, self.hyper)

    def predict(self, xq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and variance of the latent function at ``xq``."""
        h = self.hyper
        kq = h.scale * matern52(weighted_distances(xq, self.x, h.ils, self.is_categorical))[0]
        v = lapack.dtrtrs(self.chol, kq.T, lower=1)[0]
        var = np.maximum(h.scale - (v * v).sum(0), 1e-12 * h.scale)
        return kq @ self.alpha, var

    def predict_with_gradient(
        self, xq: np.ndarray, columns: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Mean, variance, and their gradients with respect to the continuous ``columns`` of ``xq``."""
        h = self.hyper
        ils = h.ils
        sq = weighted_distances(xq, self.x, ils, self.is_categorical)
        k, dk_dsq = matern52(sq)
        kq, dkq = h.scale * k, h.scale * dk_dsq  # (m, n)
        # d sq / d xq_c = 2 ils_c (xq_c - x_c): (m, n, c)
        diff = xq[:, None, columns] - self.x[None, :, columns]
        dkdx = dkq[:, :, None] * 2.0 * ils[columns] * diff
        v = lapack.dtrtrs(self.chol, kq.T, lower=1)[0]
        var = np.maximum(h.scale - (v * v).sum(0), 1e-12 * h.scale)
        w = lapack.dtrtrs(self.chol, v, lower=1, trans=1)[0]  # K^-1 kq^T: (n, m)
        mean = kq @ self.alpha
        dmean = np.einsum("mnc,n->mc", dkdx, self.alpha)
        dvar = -2.0 * np.einsum("mnc,nm->mc", dkdx, w)
        return mean, var, dmean, dvar


def _log_prior(v: np.ndarray, dim: int) -> tuple[float, np.ndarray]:
    """Optuna's GPSampler priors on (log ils, log scale, log noise), with their gradient."""
    ils, scale, noise_raw = np.exp(v[:dim]), math.exp(v[dim]), math.exp(v[dim + 1])
    noise = MIN_NOISE + noise_raw
    value = -(0.1 / ils + 0.1 * ils).sum() + (math.log(scale) - scale) + (0.1 * math.log(noise) - 30.0 * noise)
    grad = np.empty(dim + 2)
    grad[:dim] = 0.1 / ils - 0.1 * ils  # d/dlog ils of -(0.1/ils + 0.1 ils)
    grad[dim] = 1.0 - scale
    grad[dim + 1] = (0.1 / noise - 30.0) * noise_raw
    return value, grad


class _Objective:
    """Minus the log posterior of the hyperparameters, and its gradient."""

    def __init__(self, x: np.ndarray, y: np.ndarray, is_categorical: np.ndarray) -> None:
        n, dim = x.shape
        self.y, self.dim = y, dim
        self.d2 = squared_differences(x, x, is_categorical).reshape(n * n, dim)
        self.n = n

    def __call__(self, v: np.ndarray) -> tuple[float, np.ndarray]:
        n, dim = self.n, self.dim
        ils, scale, noise_raw = np.exp(v[:dim]), math.exp(v[dim]), math.exp(v[dim + 1])
        sq = (self.d2 @ ils).reshape(n, n)
        m, dm = matern52(sq)
        k = scale * m
        k[np.diag_indices(n)] += MIN_NOISE + noise_raw
        try:
            chol = _cholesky(k)
        except np.linalg.LinAlgError:
            return 1e10, np.zeros_like(v)
        alpha = lapack.dpotrs(chol, self.y, lower=1)[0]
        inv = lapack.dpotri(chol, lower=1)[0]
        inv = np.tril(inv) + np.tril(inv, -1).T
        mll = -0.5 * float(self.y @ alpha) - float(np.log(np.diag(chol)).sum())
        weights = 0.5 * (np.outer(alpha, alpha) - inv)  # dMLL/dK
        grad = np.empty(dim + 2)
        grad[:dim] = ((weights * (scale * dm)).reshape(-1) @ self.d2) * ils
        grad[dim] = float((weights * (scale * m)).sum())
        grad[dim + 1] = float(np.trace(weights)) * noise_raw
        prior, dprior = _log_prior(v, dim)
        return -(mll + prior), -(grad + dprior)


def fit(x: np.ndarray, y: np.ndarray, is_categorical: np.ndarray, start: Hyper | None = None, maxiter: int = 200) -> GP:
    """The GP with MAP hyperparameters, searched by L-BFGS-B from ``start`` (default: unit values)."""
    objective = _Objective(x, y, is_categorical)
    v0 = (start or Hyper.default(x.shape[1])).vector()
    bounds = [(-12.0, 12.0)] * x.shape[1] + [(-10.0, 10.0), (-20.0, 5.0)]
    best = scipy.optimize.minimize(
        objective, np.clip(v0, [b[0] for b in bounds], [b[1] for b in bounds]), jac=True, method="L-BFGS-B",
        bounds=bounds, options={"maxiter": maxiter, "gtol": 1e-3},
    )  # fmt: skip
    return GP(x, y, is_categorical, Hyper.from_vector(best.x))
