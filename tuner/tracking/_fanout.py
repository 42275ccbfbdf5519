"""The study's trackers, fed by the driver's recorder on a thread of their own."""

from __future__ import annotations

import json
import os
import queue
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tuner.tracking._base import StudyInfo, Tracker, TrialInfo

STATE_FILE = "tracking.json"  # in the results folder: each tracker's run ids, for resume


def read_state(folder: Path) -> dict[str, Any]:
    path = folder / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


class Tracking:
    """Hands the recorder's events to every tracker, in order, on one thread, so that a slow
    tracking server never holds up the study.

    The recorder tells it everything, a resumed study's replayed journal included (``live``
    false): replayed events are not sent again, and a step a trial already reported is never sent
    twice, so a resumed study, or a trial retried from a checkpoint, writes each step once (the
    first value stays). A tracker that raises is told nothing more; the study goes on.
    """

    def __init__(
        self, study: StudyInfo, trackers: Mapping[str, Callable[[], Tracker]], say: Callable[[str], None]
    ) -> None:
        self.study, self.say = study, say
        self._make = dict(trackers)  # made on the thread: importing MLflow takes seconds
        self.trackers: dict[str, Tracker] = {}
        self._lock = threading.Lock()
        self._high: dict[str, float] = {}  # trial -> the highest step seen
        self._count: dict[str, int] = {}  # trial -> reports kept
        self._known: dict[str, TrialInfo] = {}
        self._open: set[str] = set()  # trials this process has told the trackers of
        self._queue: queue.SimpleQueue[tuple[str, tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="tuner-tracking", daemon=True)
        self._thread.start()
        self._send("study_started", study)

    # -- from the recorder (the driver's loop) ---------------------------------------------
    def started(self, trial: TrialInfo, live: bool) -> None:
        with self._lock:
            self._known[trial.trial_id] = trial
            if live:
                self._open.add(trial.trial_id)
                self._send("trial_started", trial)
            else:
                self._send("trial_replayed", trial)

    def reported(self, trial_id: str, step: float, metrics: dict[str, float], live: bool) -> None:
        with self._lock:
            if trial_id in self._high and step <= self._high[trial_id]:
                return  # written before (a resumed or retried trial reports it again)
            self._high[trial_id] = step
            self._count[trial_id] = self._count.get(trial_id, 0) + 1
            if live:
                self._reopen(trial_id)
                self._send("trial_reported", trial_id, step, dict(metrics), self._count[trial_id])

    def rewound(self, trial_id: str) -> None:
        """A trial continues (a retry, or a resumed study's trial): its run is opened again."""
        with self._lock:
            self._reopen(trial_id)

    def ended(self, trial: TrialInfo, live: bool) -> None:
        with self._lock:
            self._known[trial.trial_id] = trial
            if live:
                self._reopen(trial.trial_id)
                self._open.discard(trial.trial_id)
                self._send("trial_ended", trial)
            else:
                self._send("trial_replayed", trial)

    def close(self, best: TrialInfo | None, running: list[str]) -> None:
        """The study's end (or its interruption, ``running`` left to continue); waits for the
        trackers to write everything."""
        self._send("study_ended", best, list(running))
        self._queue.put(None)
        self._thread.join()

    # -- the thread ------------------------------------------------------------------------
    def _reopen(self, trial_id: str) -> None:
        if trial_id not in self._open and trial_id in self._known:
            self._open.add(trial_id)
            self._send("trial_started", self._known[trial_id])

    def _send(self, method: str, *args: Any) -> None:
        self._queue.put((method, args))

    def _work(self) -> None:
        for name, make in self._make.items():
            try:
                self.trackers[name] = make()
            except Exception as exc:
                self._failed(name, exc)
        while (item := self._queue.get()) is not None:
            method, args = item
            for name, tracker in list(self.trackers.items()):
                try:
                    getattr(tracker, method)(*args)
                except Exception as exc:
                    del self.trackers[name]
                    self._failed(name, exc)
            if method in ("study_started", "trial_started", "study_ended"):
                self._save()

    def _failed(self, name: str, exc: Exception) -> None:
        line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        self.say(f"tracking: {name} stopped after an error ({line}); the study goes on")

    def _save(self) -> None:
        state = {**read_state(self.study.folder), **{name: t.state() for name, t in self.trackers.items()}}
        path = self.study.folder / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1, default=str))
        os.replace(tmp, path)
