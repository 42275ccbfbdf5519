"""Learning curves for the simulated backend whose best trial depends on the scope asked.

Over 12 steps: ``down`` ends lowest, ``early`` is low first and higher later (the lowest mean),
``dip`` touches the lowest value once, ``late`` drops at its last step only, ``nan_end`` is the
lowest until it turns NaN. Each trial's ``offset`` shifts its curve, so trials of one shape differ.
"""

from __future__ import annotations

import math
from typing import Any

SHAPES = ("down", "early", "dip", "late", "nan_end", "flat")


def scoped(config: dict[str, Any], step: int) -> dict[str, float]:
    shape, offset = config["shape"], float(config.get("offset", 0.0))
    loss = {
        "down": 1.0 / step,
        "early": 0.1 if step <= 6 else 0.15,
        "dip": 0.005 if step == 2 else 0.6,
        "late": 0.01 if step == 12 else 0.5,
        "nan_end": math.nan if step >= 5 else 0.02,
        "flat": 0.3,
    }[shape]
    return {"loss": loss + offset, "accuracy": 1.0 - loss - offset, "seconds": 1.0}


BROKEN: set[str] = set()  # the tags whose first attempt has failed (the simulated backend runs in this process)


def broken_then_silent(config: dict[str, Any], step: int) -> dict[str, float]:
    """The first attempt raises at step 3; the retry reports no ``loss`` from step 3 (an error
    the engine decides: no traceback of its own)."""
    if step == 3 and config["tag"] not in BROKEN:
        BROKEN.add(config["tag"])
        raise ValueError("first attempt broke")
    return {"other": 1.0} if step >= 3 else {"loss": 1.0 / step}
