"""W&B's hyperband deciding for Ray Tune: the engine's own rule (:class:`tuner.engine.WandbHyperband`)
behind Tune's scheduler interface, so a study prunes the same trials on either backend."""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import Any

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from tuner.backends.ray.tune._callback import LIVE, ours
from tuner.config import Hyperband
from tuner.engine import WandbHyperband
from tuner.results import read_journal


class TuneHyperband(FIFOScheduler):
    """Judges each result of a Tune trial by W&B's rule, over tuner ids; remembers the trials it
    stopped, and refills its bands from the study's journal when ``Tuner.restore`` brings it back."""

    def __init__(self, *, key: str, time_attr: str, metric: str, mode: str, spec: Hyperband) -> None:
        super().__init__()
        self.key, self._time_attr, self._name = key, time_attr, metric
        self._metric = metric
        self._rule = WandbHyperband(bands=spec.bands(), eta=spec.eta, strict=spec.strict, maximize=mode == "max")
        self.replayed = False

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return True  # the study's metric and goal are this scheduler's own

    def _id(self, trial: Any) -> str:
        if not self.replayed:
            self.replayed = True
            for ev in read_journal(Path(self.key)):
                if ev.get("e") == "report" and self._name in ev.get("metrics", {}):
                    self._rule.record(ev["trial"], ev["step"], ev["metrics"][self._name])
        return ours(trial)

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._rule.add(self._id(trial))

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        trial_id = self._id(trial)
        value, step = result.get(self._name), result.get(self._time_attr)
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or not isinstance(step, numbers.Real):
            return TrialScheduler.CONTINUE  # not a report of the metric: not counted, as in W&B
        if self._rule.report(trial_id, float(step), float(value)):
            LIVE[self.key].pruned.add(trial_id)
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def debug_string(self) -> str:
        return f"Using W&B's hyperband: bands {', '.join(map(str, self._rule.bands[:4]))}"
