"""Stoppers a study names with ``stopper:`` (tests/engine/test_stopper.py), and a curve that levels off.
No Ray here: Ray's own stoppers are in ray_stoppers.py."""

from __future__ import annotations

from typing import Any

SEEN: list[tuple[str, dict[str, Any]]] = []  # what below_half was asked with, in order


def flattens(config: dict[str, Any], step: int) -> dict[str, float]:
    """``loss = max(x, 1/step)``: falls until ``1/step`` reaches ``x``, then stays at ``x``."""
    return {"loss": max(config["x"], 1.0 / step)}


def below_half(trial_id: str, result: dict[str, Any]) -> bool:
    """A Ray Tune stop function: a trial is done once its loss is below 0.5."""
    SEEN.append((trial_id, result))
    return bool(result["loss"] < 0.5)


def takes_one(result: dict[str, Any]) -> bool:
    return False


class Needs:
    def __init__(self, patience: int) -> None:
        self.patience = patience

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False


NOT_CALLABLE = 3


def raises(trial_id: str, result: dict[str, Any]) -> bool:
    if result["training_iteration"] == 2:
        raise KeyError("val_loss")
    return False


def flattens_interrupted(config: dict[str, Any], step: int) -> dict[str, float]:
    """:func:`flattens`, with Ctrl-C arriving while the trial with ``x`` 0.1 is at step 11."""
    if config["x"] == 0.1 and step == 11:
        raise KeyboardInterrupt
    return flattens(config, step)
