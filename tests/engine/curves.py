"""Learning curves for engine tests on the simulated backend: ``f(config, step) -> metrics``."""

from __future__ import annotations

import math
from typing import Any


def falling(config: dict[str, Any], step: int) -> dict[str, float]:
    """``loss = x + 1/step``: the smallest ``x`` is best at every step, so ASHA's choices are plain."""
    return {"loss": config["x"] + 1.0 / step, "seconds": config.get("seconds", 1.0)}


def breaks(config: dict[str, Any], step: int) -> dict[str, float]:
    """Fails at step 3 when ``x`` is over 0.5 (every attempt: a deterministic bug)."""
    if config["x"] > 0.5 and step == 3:
        raise ValueError(f"bad x {config['x']}")
    return falling(config, step)


def oom(config: dict[str, Any], step: int) -> dict[str, float]:
    """Runs out of CUDA memory at step 2 when ``x`` is over 0.5."""
    if config["x"] > 0.5 and step == 2:
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    return falling(config, step)


def nan(config: dict[str, Any], step: int) -> dict[str, float]:
    """``nan`` from step 2 when ``x`` is over 0.5."""
    return {"loss": math.nan if config["x"] > 0.5 and step >= 2 else config["x"]}


def wrong_metric(config: dict[str, Any], step: int) -> dict[str, float]:
    return {"val_loss": config["x"]}


def hangs(config: dict[str, Any], step: int) -> dict[str, float]:
    """Step 2 of a trial with ``x`` over 0.5 takes an hour (a stalled trial)."""
    return {"loss": config["x"], "seconds": 3600.0 if config["x"] > 0.5 and step == 2 else 1.0}


def interrupted(config: dict[str, Any], step: int) -> dict[str, float]:
    """Ctrl-C arrives while the trial with ``x`` in [0.45, 0.55] is at step 3."""
    if 0.45 <= config["x"] <= 0.55 and step == 3:
        raise KeyboardInterrupt
    return falling(config, step)


def score(config: dict[str, Any], step: int) -> dict[str, float]:
    """A maximised metric that rises with the step, best for ``x`` near 0.3."""
    return {"score": 1.0 - abs(config["x"] - 0.3) - 1.0 / step}


def always_fails(config: dict[str, Any], step: int) -> dict[str, float]:
    raise RuntimeError("boom")


def conditional(config: dict[str, Any], step: int) -> dict[str, float]:
    """A curve over ``act``, ``lr`` and ``layers``, where ``layers`` must be given exactly when
    ``act`` is relu (a conditional parameter): any other configuration fails the trial."""
    if ("layers" in config) != (config["act"] == "relu"):
        raise ValueError(f"layers must be given exactly when act is relu, got {config}")
    return {"loss": config["lr"] + 0.1 * config.get("layers", 3) + 1.0 / step}


def _wiggle(config: dict[str, Any], step: int) -> float:
    """A deterministic wiggle in [-0.15, 0.15] of the configuration and the step."""
    return 0.15 * math.sin(997.0 * config["x"] + 7.0 * step)


def noisy(config: dict[str, Any], step: int) -> dict[str, float]:
    """``falling`` with a wiggle: a curve's value at a step is not its best so far."""
    return {"loss": config["x"] + 1.0 / step + _wiggle(config, step)}


def noisy_score(config: dict[str, Any], step: int) -> dict[str, float]:
    """``score`` with a wiggle, maximised."""
    return {"score": 1.0 - abs(config["x"] - 0.3) - 1.0 / step + _wiggle(config, step)}


def hydra_style(config: dict[str, Any], step: int) -> dict[str, float]:
    """Reads W&B parameter names written with dots as the flat keys they are
    (``optimizer.config.learning_rate``), beside a nested block (``model.width``)."""
    lr, width = config["optimizer.config.learning_rate"], config["model"]["width"]
    return {"loss": abs(math.log10(lr) + 2) + 1.0 / width + 1.0 / step}


def hungry(config: dict[str, Any], step: int) -> dict[str, float]:
    """Holds ``batch`` x 1000 MB of a simulated GPU (``gpu_mb``), twice that from step 3 when
    ``grows`` is set (an appetite its first reports understate); a step takes ``seconds`` (1)."""
    mb = config["batch"] * 1000.0 * (2.0 if config.get("grows") and step >= 3 else 1.0)
    return {"loss": config["x"] + 1.0 / step, "gpu_mb": mb, "seconds": config.get("seconds", 1.0)}
