"""The study's own searcher, proposing Tune's trials: each configuration exactly as the engine
builds it, tagged with its tuner id and seed, and each outcome told as the engine tells it
(minimised, pruned or complete as the scheduler decided, its learning curve when the study prunes).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from ray.tune.search import Searcher as TuneSearcherBase

from tuner import searchers
from tuner.backends.ray.tune._callback import LIVE
from tuner.backends.ray.tune._trainable import RESERVED
from tuner.config import Study
from tuner.results import read_warm_start
from tuner.searchers import Outcome
from tuner.space import flatten, nest
from tuner.status import OutcomeState


class StudySearcher(TuneSearcherBase):
    """A ``ray.tune.search.Searcher`` over the study's searcher (``method``, ``searcher:``,
    ``points_to_evaluate``, ``warm_start``). Saved and restored with Tune's experiment, so
    ``Tuner.restore`` continues the same sequence of ids and suggestions."""

    def __init__(self, study: Study, seed: int, key: str, time_attr: str, trial_seed: int | None = None) -> None:
        super().__init__(metric=study.metric, mode="max" if study.maximize else "min")
        self.study, self.seed, self.key, self.time_attr = study, seed, key, time_attr
        self.trial_seed = trial_seed
        self.launched = 0
        self.pending: dict[str, tuple[str, dict[str, Any]]] = {}  # Tune id -> (tuner id, params)
        self.told: list[tuple[str, dict[str, Any], Outcome]] = []  # every tell, for save/restore
        self.inner = self._build()

    def _build(self) -> searchers.Searcher:
        spec, study = self.study.spec, self.study
        points = [flatten(p) for p in spec.points_to_evaluate]
        inner = searchers.create(spec.method, study.space, self.seed, spec.searcher, spec.run_cap, points=points)
        for k, folder in enumerate(spec.warm_starts):
            warm = read_warm_start(folder, study.space, study.metric)
            for i, (params, value, state, step, _curve) in enumerate(warm.observations):
                inner.tell(f"w{k}.{i:04d}", params, Outcome(study.minimised(value), state, step))  # type: ignore[arg-type]
        return inner

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any) -> bool:
        return True  # the study's metric, goal and parameters are this searcher's own

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        live = LIVE.get(self.key)
        if live is not None and live.halt is not None:
            return TuneSearcherBase.FINISHED
        params = self.inner.suggest(trial_id)
        if params is None:
            return TuneSearcherBase.FINISHED
        self.launched += 1
        flat = self.study.space.complete(params)
        seed = self.trial_seed if self.trial_seed is not None else (self.seed * 1_000_003 + self.launched) % 2**31
        ours = f"t{self.launched:04d}"
        self.pending[trial_id] = (ours, params)
        return {**nest(flat), RESERVED: {"id": ours, "seed": seed}}

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if trial_id not in self.pending:
            return
        ours, params = self.pending.pop(trial_id)
        told = self._outcome(ours, result, error)
        self.told.append((trial_id, params, told))
        self.inner.tell(trial_id, params, told)
        live = LIVE.get(self.key)
        target = self.study.spec.primary.target
        if live is not None and target is not None and told.state == "complete" and told.value is not None:
            if told.value <= self.study.minimised(target):
                live.halt = live.halt or f"target {self.study.metric} {target} reached by {ours}"

    def _outcome(self, ours: str, result: dict[str, Any] | None, error: bool) -> Outcome:
        live = LIVE.get(self.key)
        value = (result or {}).get(self.study.metric)
        step = (result or {}).get(self.time_attr)
        if error or value is None or (live is not None and ours in live.nan):
            return Outcome(None, "failed", step)
        state: OutcomeState = "pruned" if live is not None and ours in live.pruned else "complete"
        curve = None
        if live is not None and self.study.spec.scheduler is not None:
            curve = tuple((s, self.study.minimised(v)) for s, v in live.recorder.curve(ours)) or None
        return Outcome(self.study.minimised(float(value)), state, step, curve=curve)

    def __getstate__(self) -> dict[str, Any]:  # pickled with the Tuner: the searcher is rebuilt from its tells
        return {k: v for k, v in self.__dict__.items() if k != "inner"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._replay()

    def _replay(self) -> None:
        self.inner = self._build()
        for trial_id, params, told in self.told:
            self.inner.tell(trial_id, params, told)
        for trial_id, (_ours, params) in self.pending.items():
            self.inner.tell(trial_id, params, Outcome(None, "running"))

    # -- Tune's experiment checkpoints ----------------------------------------------------------
    def save(self, checkpoint_path: str) -> None:
        state = {"launched": self.launched, "pending": self.pending, "told": self.told}
        Path(checkpoint_path).write_bytes(pickle.dumps(state))

    def restore(self, checkpoint_path: str) -> None:
        """Rebuilt from its tells (as a resumed engine rebuilds its searcher): never asked again for
        what it proposed before; a trial still pending is told ``running`` until it ends."""
        state = pickle.loads(Path(checkpoint_path).read_bytes())
        self.launched, self.pending, self.told = state["launched"], state["pending"], state["told"]
        self._replay()
