"""Learning curves for the simulated backend: ``f(config, step) -> metrics``, no training.

Each returns the metrics a trial would report at ``step`` and ``seconds``, the time that step
would have taken; the noise is seeded by the configuration and the step, so a configuration's
curve is the same in every run.
"""

from __future__ import annotations

import math
import zlib
from statistics import NormalDist
from typing import Any

BEST_LR = 3e-3
_NORMAL = NormalDist()


def _noise(config: dict[str, Any], step: int, scale: float) -> float:
    """Gaussian noise drawn from a hash of the configuration and the step (a few microseconds:
    a benchmark of the driver should not time a random generator's seeding)."""
    u = (zlib.crc32(f"{sorted(config.items())}:{step}".encode()) + 0.5) / 2**32
    return scale * _NORMAL.inv_cdf(u)


def curve(config: dict[str, Any], step: int) -> dict[str, float]:
    """``loss = a + b * step**-c``: the floor ``a`` is lowest near lr 3e-3 and for wide models,
    the rate ``c`` highest near it; a step's time grows with the width."""
    lr, width = float(config["lr"]), float(config.get("width", 128))
    off = math.log10(lr / BEST_LR)
    a = 0.05 + 0.25 * off**2 + 4.0 / width
    c = 0.2 + 0.6 * math.exp(-(off**2))
    loss = a + 2.0 * step**-c + _noise(config, step, 0.01)
    return {"loss": loss, "seconds": 0.5 + width / 128}


def crossing(config: dict[str, Any], step: int) -> dict[str, float]:
    """Curves that cross: a large learning rate learns fast and settles high, a small one learns
    slowly and settles low, so the early leaders (whom ASHA keeps) are not the final ones."""
    lr = float(config["lr"])
    rate = min(1.0, 100 * lr)
    floor = 0.05 + 2.0 * lr
    loss = floor + (1.0 - floor) * math.exp(-rate * step) + _noise(config, step, 0.005)
    return {"loss": loss, "seconds": 1.0}


def schedule(config: dict[str, Any], step: int, state: dict[str, Any]) -> dict[str, float]:
    """A problem whose best answer is a schedule: each step shrinks the distance ``x`` to the
    optimum by the factor ``1 - lr``, and the loss is ``x + 0.5 * lr`` (a large rate moves fast
    and settles high). A fixed rate is best near 0.1 over 40 steps (loss about 0.065); a rate
    that starts high and falls reaches far lower. ``state`` carries ``x`` from step to step."""
    lr = float(config["lr"])
    x = state.get("x", 1.0) * (1.0 - min(lr, 0.9))
    state["x"] = x
    return {"loss": x + 0.5 * lr + _noise(config, step, 0.0005), "seconds": 1.0}
