"""``tracking: {callbacks: [pkg.module:name]}``: Ray Tune callbacks, told of the study as Tune tells them.

A ``ray.tune.Callback`` (a ``LoggerCallback`` too: its ``log_trial_*`` methods are called by
Callback's own) is asked ``setup``, then for each trial ``on_trial_start``, ``on_trial_result``
with each report, and ``on_trial_complete`` or ``on_trial_error``, and ``on_experiment_end`` at
the study's end, with Ray's arguments: ``iteration`` (a count of the calls), ``trials`` (every
trial so far) and ``trial``, a :class:`TuneTrial` carrying the names a Ray ``Trial`` is read by
(``trial_id``, ``config``, ``last_result``, ``status``, ``trainable_name``, ``path``...), and
``result``, the report as Tune hands it over (:func:`tuner.config.tune_result`). It runs on the
driver, off the study's loop, as every tracker does; one that raises is said (naming it), and the
callbacks are told nothing more.
A class with no constructor arguments is made once per study. No Ray is imported here.
"""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from typing import Any

from tuner.config import import_named, tune_result
from tuner.space import flatten, nest
from tuner.status import FAILED
from tuner.tracking._base import StudyInfo, Tracker, TrialInfo


class TuneTrial:
    """A trial as a Ray Tune callback reads one: Ray's ``Trial``'s names, with tuner's values."""

    def __init__(self, trial_id: str, config: dict[str, Any], trainable_name: str, path: str) -> None:
        self.trial_id = trial_id
        self.config = config
        self.trainable_name = trainable_name
        self.experiment_tag = trial_id
        self.path = self.local_path = path
        self.experiment_dir_name = Path(path).parent.parent.name  # the study's results folder
        self.status = "RUNNING"  # RUNNING, TERMINATED or ERROR, as Ray's
        self.last_result: dict[str, Any] = {}
        self.evaluated_params = flatten(config)
        self.error: str | None = None
        self.error_file = None
        self.checkpoint = None
        self.storage = None
        self.num_failures = 0
        self.started = time.monotonic()

    def init_local_path(self) -> None:
        Path(self.path).mkdir(parents=True, exist_ok=True)

    def get_error(self) -> str | None:
        return self.error

    def is_finished(self) -> bool:
        return self.status in ("TERMINATED", "ERROR")

    def __str__(self) -> str:
        return f"{self.trainable_name}_{self.trial_id}"

    __repr__ = __str__


class TuneCallbacks(Tracker):
    """The study's Ray Tune callbacks (``options``: their dotted names)."""

    def __init__(self, options: Any, state: dict[str, Any]) -> None:
        super().__init__(options, state)
        self.callbacks = [self._made(import_named(name)) for name in options]
        self.trials: dict[str, TuneTrial] = {}
        self.iteration = 0
        self.study: StudyInfo | None = None

    @staticmethod
    def _made(obj: Any) -> Any:
        return obj() if inspect.isclass(obj) else obj

    def _call(self, method: str, *args: Any, **kwargs: Any) -> None:
        self.iteration += 1
        for callback in self.callbacks:
            hook = getattr(callback, method, None)
            if hook is not None:
                try:
                    hook(*args, **kwargs)
                except Exception as exc:  # said by the tracking thread, naming the callback
                    raise RuntimeError(f"{type(callback).__name__}.{method}: {type(exc).__name__}: {exc}") from exc

    def _listed(self) -> list[TuneTrial]:
        return list(self.trials.values())

    def study_started(self, study: StudyInfo) -> None:
        self.study = study
        for callback in self.callbacks:
            setup = getattr(callback, "setup", None)
            if setup is not None:
                setup(stop=None, num_samples=None, total_num_samples=None)

    def _trial(self, trial: TrialInfo) -> TuneTrial:
        assert self.study is not None
        name = self.study.trainable.replace(":", ".").rpartition(".")[2] or self.study.name
        path = str(self.study.folder / "checkpoints" / trial.trial_id)
        tune_trial = self.trials.get(trial.trial_id) or TuneTrial(trial.trial_id, nest(trial.params, {}), name, path)
        self.trials[trial.trial_id] = tune_trial
        return tune_trial

    def trial_replayed(self, trial: TrialInfo) -> None:
        """A resumed study's earlier trials are among ``trials`` again, as they ended."""
        tune_trial = self._trial(trial)
        ended = trial.status != "running"
        tune_trial.status = ("ERROR" if trial.status in FAILED else "TERMINATED") if ended else "RUNNING"
        tune_trial.last_result = {**trial.metrics, "trial_id": trial.trial_id, "config": tune_trial.config}

    def trial_started(self, trial: TrialInfo) -> None:
        tune_trial = self._trial(trial)
        tune_trial.status = "RUNNING"
        self._call("on_trial_start", iteration=self.iteration, trials=self._listed(), trial=tune_trial)

    def trial_reported(self, trial_id: str, step: float, metrics: dict[str, float], index: int) -> None:
        trial = self.trials[trial_id]
        result = tune_result(trial_id, index, time.monotonic() - trial.started, metrics, trial.config)
        result["training_iteration"] = index  # a count, as Ray's (the recorded metric is a float)
        trial.last_result = result
        self._call("on_trial_result", iteration=self.iteration, trials=self._listed(), trial=trial, result=result)

    def trial_ended(self, trial: TrialInfo) -> None:
        tune_trial = self.trials.get(trial.trial_id)
        if tune_trial is None:
            return
        failed = trial.status in FAILED
        tune_trial.status = "ERROR" if failed else "TERMINATED"
        if failed:
            tune_trial.error = trial.error
            self._call("on_trial_error", iteration=self.iteration, trials=self._listed(), trial=tune_trial)
        else:
            tune_trial.last_result = {**tune_trial.last_result, "done": True}
            self._call("on_trial_complete", iteration=self.iteration, trials=self._listed(), trial=tune_trial)

    def study_ended(self, best: TrialInfo | None, running: list[str]) -> None:
        self._call("on_experiment_end", trials=self._listed())
