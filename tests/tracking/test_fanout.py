"""The trackers' contract as the recorder drives it: order, each step once, replayed events not
sent again, a failing tracker dropped with one line while the study goes on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tuner.results import Recorder, TrialRecord
from tuner.tracking import StudyInfo, Tracker, Tracking, TrialInfo, read_state


class Calls(Tracker):
    """A tracker that keeps what it is told (the interface's own reference implementation)."""

    def __init__(self, options: Any = None, state: dict[str, Any] | None = None) -> None:
        super().__init__(options, state or {})
        self.calls: list[tuple[Any, ...]] = []
        self.resumed = state

    def study_started(self, study: StudyInfo) -> None:
        self.calls.append(("study", study.name))

    def trial_started(self, trial: TrialInfo) -> None:
        self.calls.append(("start", trial.trial_id, trial.params))

    def trial_reported(self, trial_id: str, step: float, metrics: dict[str, float], index: int) -> None:
        self.calls.append(("report", trial_id, step, metrics["loss"], index))

    def trial_ended(self, trial: TrialInfo) -> None:
        self.calls.append(("end", trial.trial_id, trial.status, trial.cause))

    def study_ended(self, best: TrialInfo | None, running: list[str]) -> None:
        self.calls.append(("done", best.trial_id if best else None, running))

    def state(self) -> dict[str, Any]:
        return {"seen": len(self.calls)}


class Breaks(Calls):
    def trial_reported(self, trial_id: str, step: float, metrics: dict[str, float], index: int) -> None:
        raise ConnectionError("tracking server unreachable\nsecond line")


def _recorder(folder: Path, trackers: dict[str, Tracker], said: list[str]) -> Recorder:
    folder.mkdir(exist_ok=True)
    info = StudyInfo(name="s", folder=folder, metric="loss")
    tracking = Tracking(info, {name: (lambda t=t: t) for name, t in trackers.items()}, said.append)
    return Recorder(folder, "loss", maximize=False, tracking=tracking)


def _trial(rec: Recorder, trial_id: str, x: float) -> None:
    rec.start(TrialRecord(trial_id, {"x": x}, {"x": x}, seed=0))


def test_events_come_in_order_and_a_retried_trial_writes_each_step_once(tmp_path: Path) -> None:
    calls, said = Calls(), []
    rec = _recorder(tmp_path / "s", {"calls": calls}, said)
    _trial(rec, "t1", 0.5)
    for step in (1, 2, 3):
        rec.report("t1", step, float(step), {"loss": 1.0 / step})
    rec.rewind("t1", 1.0, "boom")  # a retry from its checkpoint at step 1
    for step in (2, 3, 4):
        rec.report("t1", step, float(step), {"loss": 9.0})
    rec.end("t1", "errored", "boom", cause="user_exception")
    rec.finish({})
    reports = [c for c in calls.calls if c[0] == "report"]
    assert [c[2:] for c in reports] == [(1, 1.0, 1), (2, 0.5, 2), (3, 1 / 3, 3), (4, 9.0, 4)]  # 2, 3: the first
    assert calls.calls[0] == ("study", "s") and calls.calls[1] == ("start", "t1", {"x": 0.5})
    assert calls.calls[-2:] == [("end", "t1", "errored", "user_exception"), ("done", None, [])]
    assert read_state(tmp_path / "s")["calls"]["seen"] >= 2 and not said


def test_a_replayed_journal_is_not_sent_again_and_continued_trials_are_reopened(tmp_path: Path) -> None:
    first = Calls()
    rec = _recorder(tmp_path / "s", {"calls": first}, [])
    _trial(rec, "t1", 0.1)
    _trial(rec, "t2", 0.2)
    for step in (1, 2):
        rec.report("t1", step, 0.0, {"loss": 1.0})
        rec.report("t2", step, 0.0, {"loss": 2.0})
    rec.end("t1", "finished")
    rec.finish({})  # interrupted: t2 still running
    assert first.calls[-1] == ("done", "t1", ["t2"])

    again = Calls(state=read_state(tmp_path / "s")["calls"])
    rec = _recorder(tmp_path / "s", {"calls": again}, [])
    rec.replaying = True  # what resume does with the journal
    _trial(rec, "t1", 0.1)
    _trial(rec, "t2", 0.2)
    for step in (1, 2):
        rec.report("t1", step, 0.0, {"loss": 1.0})
        rec.report("t2", step, 0.0, {"loss": 2.0})
    rec.end("t1", "finished")
    rec.replaying = False
    rec.rewind("t2", None, "resumed")  # no checkpoint: it starts again from step 1
    for step in (1, 2, 3):
        rec.report("t2", step, 0.0, {"loss": 2.0})
    rec.end("t2", "finished")
    rec.finish({})
    assert again.resumed == {"seen": len(first.calls)}  # what it saved last, handed back
    assert again.calls == [
        ("study", "s"),
        ("start", "t2", {"x": 0.2}),
        ("report", "t2", 3, 2.0, 3),
        ("end", "t2", "finished", None),
        ("done", "t1", []),
    ]


def test_a_failing_tracker_is_dropped_with_one_line_and_the_others_go_on(tmp_path: Path) -> None:
    calls, said = Calls(), []
    rec = _recorder(tmp_path / "s", {"broken": Breaks(), "calls": calls}, said)
    _trial(rec, "t1", 0.5)
    for step in (1, 2):
        rec.report("t1", step, 0.0, {"loss": 1.0})
    rec.end("t1", "finished")
    rec.finish({})
    assert said == ["tracking: broken stopped after an error (tracking server unreachable); the study goes on"]
    assert [c[0] for c in calls.calls] == ["study", "start", "report", "report", "end", "done"]


@pytest.mark.parametrize(("name", "extra"), [("mlflow", "mlflow"), ("wandb", "wandb")])
def test_a_tracker_whose_library_is_missing_is_refused_when_the_file_is_read(
    tmp_path: Path, name: str, extra: str
) -> None:
    import subprocess
    import sys

    from tests.conftest import cli_env

    options = {"mlflow": "{experiment: e}", "wandb": "{project: p, mode: offline}"}[name]
    (tmp_path / "s.yaml").write_text(
        "trainable: trainables.simulated:curve\nbackend: simulated\nmetric: {name: loss}\nmethod: random\n"
        "run_cap: 2\nearly_terminate: {type: asha, max_t: 3}\nparameters:\n  lr: {min: 0.001, max: 0.1}\n"
        f"tracking:\n  {name}: {options}\n"
    )
    hide = f"import sys; sys.modules[{name!r}] = None; from tuner.cli import main; sys.exit(main(['run', 's.yaml']))"
    done = subprocess.run(
        [sys.executable, "-c", hide], cwd=tmp_path, env=cli_env(None), capture_output=True, text=True, check=False
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"tracking.{name}" in lines[0] and f"pip install 'tuner[{extra}]'" in lines[0]
    assert not (tmp_path / "results").exists()  # refused before anything ran
