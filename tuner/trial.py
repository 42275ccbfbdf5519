"""The object a trainable receives: ``train(config, trial)``. It never exposes Ray."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

from tuner.errors import TrialPruned

Sink = Callable[[dict[str, Any]], bool]  # takes a report, answers whether to go on


class Trial:
    """Identity, budget and reporting for one trial.

    ``report(step, **metrics)`` hands metrics to the study once per step; when the
    scheduler has stopped the trial it raises :class:`tuner.errors.TrialPruned`, which the
    trainable should let propagate (it is a ``BaseException``, so ``except Exception``
    does not catch it).
    """

    def __init__(
        self,
        trial_id: str,
        seed: int,
        *,
        max_steps: int | None = None,
        gpus: float = 0.0,
        sink: Sink | None = None,
    ) -> None:
        self.trial_id = trial_id
        self.seed = seed
        self.max_steps = max_steps
        self._gpus = gpus
        self._sink = sink
        self._last_step: float | None = None
        self.reports: list[dict[str, Any]] = []  # kept when no sink is given (direct calls)

    @property
    def device(self) -> Any:
        """``torch.device('cuda')`` when the trial was given a GPU and CUDA works, else CPU."""
        import torch

        return torch.device("cuda" if self._gpus > 0 and torch.cuda.is_available() else "cpu")

    def report(self, step: float, **metrics: Any) -> None:
        """Report ``metrics`` at ``step`` (an epoch or iteration number, increasing)."""
        if not isinstance(step, numbers.Real) or isinstance(step, bool) or not math.isfinite(step):
            raise TypeError(f"trial.report: step must be a finite number, got {step!r}")
        if self._last_step is not None and step <= self._last_step:
            raise ValueError(f"trial.report: step must increase, got {step} after {self._last_step}")
        if not metrics:
            raise ValueError("trial.report: no metrics given")
        clean: dict[str, Any] = {}
        for key, value in metrics.items():
            if hasattr(value, "item"):  # numpy scalars, 0-d tensors
                value = value.item()
            if not isinstance(value, numbers.Real) or isinstance(value, bool):
                raise TypeError(f"trial.report: metric {key!r} must be a number, got {value!r}")
            clean[key] = float(value)
        self._last_step = float(step)
        record = {"step": step, "metrics": clean}
        if self._sink is None:
            self.reports.append(record)
        elif not self._sink(record):
            raise TrialPruned(self.trial_id)
