"""A trainable outside ``trainables``: runs only when its module is allowed."""

from __future__ import annotations

from typing import Any


def train(config: dict[str, Any], trial: Any) -> None:
    trial.report(1, loss=1.0)
