"""Ray Tune callbacks (``tracking.callbacks``) driven by the recorder as a study drives them: Ray's
own ``Callback`` and ``LoggerCallback`` classes, told in Tune's order with Tune's arguments, and a
resumed study's earlier trials among ``trials`` again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.logger import LoggerCallback

from tuner.config import by_value
from tuner.results import Recorder, TrialRecord
from tuner.tracking import StudyInfo, Tracking, create


class Seen(tune.Callback):
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def setup(self, stop: Any = None, num_samples: Any = None, total_num_samples: Any = None, **info: Any) -> None:
        self.calls.append(("setup",))

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.calls.append(("start", str(trial), trial.config, trial.status))

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        self.calls.append(("result", trial.trial_id, result["training_iteration"], result["loss"], result["config"]))

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.calls.append(("complete", trial.trial_id, trial.last_result["done"]))

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.calls.append(("error", trial.trial_id, trial.status))

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self.calls.append(("end", sorted((t.trial_id, t.status) for t in trials)))


class Logged(LoggerCallback):  # Ray's LoggerCallback: its own on_trial_* call these
    def __init__(self) -> None:
        self.lines: list[str] = []

    def log_trial_start(self, trial: Any) -> None:
        self.lines.append(f"start {trial}")

    def log_trial_result(self, iteration: int, trial: Any, result: dict[str, Any]) -> None:
        self.lines.append(f"result {trial.trial_id} {result['loss']}")

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        self.lines.append(f"end {trial.trial_id} failed={failed}")


def _recorder(folder: Path, names: list[str]) -> Recorder:
    folder.mkdir(exist_ok=True)
    info = StudyInfo(name="s", folder=folder, metric="loss", trainable="mypkg.train:fit")
    tracking = Tracking(info, {"callbacks": lambda: create("callbacks", names)}, print)
    return Recorder(folder, "loss", maximize=False, tracking=tracking)


def _trial(rec: Recorder, trial_id: str, x: float) -> None:
    rec.start(TrialRecord(trial_id, {"opt.x": x}, {"opt.x": x}, seed=0))


def test_callbacks_are_told_as_tune_tells_them(tmp_path: Path) -> None:
    seen, logged = Seen(), Logged()
    names = [by_value.give(seen, "seen"), by_value.give(logged, "logged")]
    rec = _recorder(tmp_path / "s", names)
    _trial(rec, "t0001", 0.5)
    for step in (1, 2):
        rec.report("t0001", step, 0.1, {"loss": 1.0 / step})
    rec.end("t0001", "finished")
    _trial(rec, "t0002", 0.7)
    rec.end("t0002", "errored", "boom", cause="user_exception")
    rec.finish({})
    assert seen.calls == [
        ("setup",),
        ("start", "fit_t0001", {"opt": {"x": 0.5}}, "RUNNING"),
        ("result", "t0001", 1, 1.0, {"opt": {"x": 0.5}}),
        ("result", "t0001", 2, 0.5, {"opt": {"x": 0.5}}),
        ("complete", "t0001", True),
        ("start", "fit_t0002", {"opt": {"x": 0.7}}, "RUNNING"),
        ("error", "t0002", "ERROR"),
        ("end", [("t0001", "TERMINATED"), ("t0002", "ERROR")]),
    ]
    assert logged.lines == [
        "start fit_t0001",
        "result t0001 1.0",
        "result t0001 0.5",
        "end t0001 failed=False",
        "start fit_t0002",
        "end t0002 failed=True",
    ]


def test_a_resumed_study_tells_its_earlier_trials_among_trials(tmp_path: Path) -> None:
    seen = Seen()
    names = [by_value.give(seen, "seen_again")]
    rec = _recorder(tmp_path / "s", names)
    rec.replaying = True  # what resume does with the journal
    _trial(rec, "t0001", 0.1)
    rec.report("t0001", 1, 0.0, {"loss": 1.0})
    rec.end("t0001", "finished")
    _trial(rec, "t0002", 0.2)
    rec.replaying = False
    rec.rewind("t0002", None, "resumed")
    rec.report("t0002", 1, 0.0, {"loss": 2.0})
    rec.end("t0002", "finished")
    rec.finish({})
    assert [c[0] for c in seen.calls] == ["setup", "start", "result", "complete", "end"]
    assert seen.calls[1][1] == "fit_t0002"  # only the continued trial is told again
    assert seen.calls[-1] == ("end", [("t0001", "TERMINATED"), ("t0002", "TERMINATED")])
