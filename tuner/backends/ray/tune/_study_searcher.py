"""The study's own searcher proposing Tune's trials: a :class:`TuneSearcher` built from the study
(``method``, ``searcher:``, ``points_to_evaluate``, ``warm_start``), each configuration tagged with
its tuner id and seed, and no new trial once the study halts (a reached ``target``, too many
failed trials)."""

from __future__ import annotations

from typing import Any

from ray.tune.search import Searcher as RaySearcher

from tuner import searchers
from tuner.backends.ray.tune._callback import LIVE
from tuner.backends.ray.tune._searcher import TuneSearcher
from tuner.backends.ray.tune._trainable import RESERVED
from tuner.config import Asha, Study
from tuner.results import read_warm_start
from tuner.searchers import Outcome
from tuner.space import flatten


def build(study: Study, seed: int) -> searchers.Searcher:
    """The searcher the engine would run for ``study``, told the trials of its warm starts."""
    spec = study.spec
    points = [flatten(p) for p in spec.points_to_evaluate]
    inner = searchers.create(spec.method, study.space, seed, spec.searcher, spec.run_cap, points=points)
    for k, folder in enumerate(spec.warm_starts):
        assert study.metric is not None  # a warm start needs a metric (load_study)
        warm = read_warm_start(folder, study.space, study.metric)
        for i, (params, value, state, step, _curve) in enumerate(warm.observations):
            inner.tell(f"w{k}.{i:04d}", params, Outcome(study.minimised(value), state, step))  # type: ignore[arg-type]
    return inner


class StudySearcher(TuneSearcher):
    """Saved and restored with Tune's experiment, so ``Tuner.restore`` continues the same ids and
    suggestions."""

    def __init__(self, study: Study, seed: int, key: str, time_attr: str, trial_seed: int | None = None) -> None:
        sched = study.spec.scheduler
        super().__init__(
            build(study, seed),
            study.space,
            metric=study.metric,
            mode=None if study.metric is None else "max" if study.maximize else "min",
            max_step=sched.max_t if isinstance(sched, Asha) else None,
            step_key=time_attr,
        )
        self.study, self.seed, self.key, self.trial_seed = study, seed, key, trial_seed

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any) -> bool:
        return True  # the study's metric, goal and parameters are this searcher's own

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]  # FINISHED
        live = LIVE.get(self.key)
        if live is not None and live.halt is not None:
            return RaySearcher.FINISHED
        config = super().suggest(trial_id)
        if not isinstance(config, dict):
            return config
        n = len(self.trial_ids())
        seed = self.trial_seed if self.trial_seed is not None else (self.seed * 1_000_003 + n) % 2**31
        return {**config, RESERVED: {"id": self.trial_ids()[trial_id], "seed": seed}}

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        ended = len(self._events)
        super().on_trial_complete(trial_id, result, error)
        primary, live = self.study.spec.primary, LIVE.get(self.key)
        target = None if primary is None else primary.target
        if target is None or live is None or len(self._events) == ended:
            return
        _kind, tuner_id, _params, told = self._events[-1]
        value = None if told is None or told.state != "complete" else told.value
        if value is not None and value <= self.study.minimised(target):
            live.halt = live.halt or f"target {self.study.metric} {target} reached by {tuner_id}"
