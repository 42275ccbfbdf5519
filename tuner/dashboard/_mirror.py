"""A results folder's journal, mirrored into an Optuna storage as it grows.

:class:`Mirror` reads ``journal.jsonl`` from where it last stopped (a line still being written
waits for its newline) and keeps one Optuna study in step with it: a trial per ``start`` event,
in start order, with its searched parameters and their distributions, the study's metric (its
first, with several) at each reported step as an intermediate value, every metric's last value
as a user attribute, and its end as Optuna's state. The driver is never involved: the journal
is what every backend writes, and it is only read.

Statuses map as Optuna has them: ``running`` is RUNNING, ``finished`` COMPLETE (its last value
of each metric), ``pruned`` and ``stopped`` PRUNED (with the last value, as Optuna records a
pruned trial), ``errored``, ``nan`` and ``oom`` FAIL; tuner's own word stays in the ``status``
attribute, with the ``cause`` and ``error`` of a failure.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from tuner.dashboard._space import distribution, value
from tuner.errors import UserError
from tuner.results import JOURNAL, STUDY, alive, objectives, read_state
from tuner.space import Parameter, parse_parameters
from tuner.status import FAILED, FINISHED, RUNNING

OWN = ("trial_id", "status", "seed", "step", "attempts", "cause", "error", "hint")  # attributes besides metrics


@dataclass
class _Trial:
    """What the journal says of one trial so far."""

    trial_id: str
    params: dict[str, Any]
    seed: Any
    started: float
    status: str = RUNNING
    ended: float | None = None
    steps: dict[int, float] = field(default_factory=dict)  # the intermediate values
    metrics: dict[str, float] = field(default_factory=dict)  # the last value of each
    step: float | None = None
    reports: int = 0
    attempts: int = 0
    error: str | None = None
    cause: str | None = None
    hint: str | None = None
    held: int | None = None  # its id in the storage, once created
    changed: bool = True


class Mirror:
    """One study's results folder as an Optuna study in :attr:`storage`; :meth:`sync` catches up."""

    def __init__(self, folder: str | os.PathLike[str], storage: Any = None) -> None:
        import optuna

        self.folder = Path(folder)
        path = self.folder / STUDY
        if not path.is_file():
            raise UserError(f"{folder}: not a tuner results folder (no {STUDY})")
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        self.name = str(spec.get("name") or self.folder.name)
        self.objectives = objectives(spec)
        space, problems = parse_parameters(spec.get("parameters"))
        if problems:
            raise UserError(f"{path}: {problems[0]}")
        self.params: dict[str, Parameter] = dict(space.searchable)
        self._dists = {name: distribution(p) for name, p in self.params.items()}
        self.storage = storage if storage is not None else optuna.storages.InMemoryStorage()
        directions = [
            optuna.study.StudyDirection.MAXIMIZE if up else optuna.study.StudyDirection.MINIMIZE
            for _, up in self.objectives or [("", False)]
        ]
        self.study_id = self.storage.create_new_study(directions, study_name=self.name)
        if self.objectives:
            with warnings.catch_warnings():  # set_metric_names is experimental
                warnings.simplefilter("ignore")
                study = optuna.load_study(study_name=self.name, storage=self.storage)
                study.set_metric_names([name for name, _ in self.objectives])
        self.trials: dict[str, _Trial] = {}
        self._offset = 0
        self._rest = b""  # the start of a line not yet ended

    @property
    def metric(self) -> str | None:
        return self.objectives[0][0] if self.objectives else None

    def sync(self) -> int:
        """Read what the journal gained and bring the storage up to it; the number of new events."""
        events = self._read()
        for event in events:
            self._apply(event)
        for trial in self.trials.values():
            if trial.changed:
                self._push(trial)
                trial.changed = False
        return len(events)

    def state(self) -> str:
        """How the run stands: ``running``, ``interrupted``, ``done`` (``state.json``), or ``unknown``;
        a run whose driver died is ``interrupted``."""
        state = read_state(self.folder)
        if state is None:
            return "unknown"
        if state.get("state") == "running" and not alive(state):
            return "interrupted"
        return str(state.get("state", "unknown"))

    def _read(self) -> list[dict[str, Any]]:
        path = self.folder / JOURNAL
        try:
            with path.open("rb") as file:
                file.seek(self._offset)
                data = file.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        *lines, self._rest = (self._rest + data).split(b"\n")
        events = []
        for line in lines:
            try:
                events.append(json.loads(line))
            except ValueError:
                continue  # the line being written when a driver died
        return events

    def _apply(self, event: dict[str, Any]) -> None:
        kind, trial_id = event.get("e"), str(event.get("trial", ""))
        if kind == "start" and trial_id not in self.trials:
            started = float(event.get("t") or time.time())
            self.trials[trial_id] = _Trial(trial_id, dict(event.get("params") or {}), event.get("seed"), started)
            return
        trial = self.trials.get(trial_id)
        if trial is None:
            return
        trial.changed = True
        if kind == "report":
            self._report(trial, event)
        elif kind == "retry":  # continues from ``step`` (from the start for None)
            step = event.get("step")
            trial.steps = {s: v for s, v in trial.steps.items() if step is not None and s <= step}
            trial.reports = len(trial.steps)
            trial.attempts += event.get("error") != "resumed"
        elif kind == "exploit":  # population-based training: new values from here on
            trial.params.update(event.get("new") or {})
        elif kind == "end":
            trial.status, trial.ended = str(event["status"]), event.get("t")
            trial.error, trial.cause, trial.hint = event.get("error"), event.get("cause"), event.get("hint")

    def _report(self, trial: _Trial, event: dict[str, Any]) -> None:
        metrics = event.get("metrics") or {}
        step = float(event["step"])
        trial.reports += 1
        trial.step = step
        trial.metrics.update({k: v for k, v in metrics.items() if isinstance(v, int | float)})
        if self.metric is not None and isinstance(metrics.get(self.metric), int | float):
            # Optuna's steps are whole numbers: a fractional step is shown as the report's number
            at = int(step) if step.is_integer() else trial.reports
            trial.steps[at] = float(metrics[self.metric])

    def _push(self, trial: _Trial) -> None:
        """Create ``trial`` in the storage, or bring the one there up to date."""
        import optuna
        from optuna.trial import TrialState

        state, values = self._outcome(trial)
        params = self._params(trial)
        attrs = self._attrs(trial)
        if trial.held is None:
            done = state != TrialState.RUNNING
            template = optuna.trial.FrozenTrial(
                number=-1,
                trial_id=-1,
                state=state,
                value=None,
                values=values,
                datetime_start=datetime.fromtimestamp(trial.started),
                datetime_complete=datetime.fromtimestamp(trial.ended or trial.started) if done else None,
                params={name: v for name, (v, _) in params.items()},
                distributions={name: d for name, (_, d) in params.items()},
                user_attrs=attrs,
                system_attrs={},
                intermediate_values=dict(trial.steps),
            )
            trial.held = self.storage.create_new_trial(self.study_id, template_trial=template)
            return
        stored = self.storage.get_trial(trial.held)
        if stored.state != TrialState.RUNNING:
            return  # ended in the storage already: Optuna's trials never change after
        for name, (v, dist) in params.items():
            if stored.params.get(name) != v:
                self.storage.set_trial_param(trial.held, name, dist.to_internal_repr(v), dist)
        for step, v in trial.steps.items():
            if stored.intermediate_values.get(step) != v:
                self.storage.set_trial_intermediate_value(trial.held, step, v)
        for key, v in attrs.items():
            if stored.user_attrs.get(key) != v:
                self.storage.set_trial_user_attr(trial.held, key, v)
        if state != TrialState.RUNNING:
            self.storage.set_trial_state_values(trial.held, state, values)

    def _outcome(self, trial: _Trial) -> tuple[Any, list[float] | None]:
        """Optuna's state of ``trial`` and its values (see the module's docstring)."""
        from optuna.trial import TrialState

        if trial.status == RUNNING:
            return TrialState.RUNNING, None
        if trial.status in FAILED:
            return TrialState.FAIL, None
        ended = TrialState.COMPLETE if trial.status == FINISHED else TrialState.PRUNED
        if not self.objectives:  # a study with no metric: nothing to score
            return ended, None
        values = [_number(trial.metrics.get(name)) for name, _ in self.objectives]
        scored = [v for v in values if v is not None]
        if len(scored) < len(values):  # a finished trial that lacks a value failed; a pruned one has none
            return (TrialState.FAIL if ended == TrialState.COMPLETE else ended), None
        if ended == TrialState.PRUNED and len(scored) > 1:
            return ended, None  # Optuna keeps no values for a pruned trial of several objectives
        return ended, scored

    def _params(self, trial: _Trial) -> dict[str, tuple[Any, Any]]:
        """Each searched parameter the trial has: ``(value, distribution)``."""
        out = {}
        for name, raw in trial.params.items():
            dist = self._dists.get(name)
            if dist is None:
                continue
            v = value(self.params[name], raw)
            try:
                dist.to_internal_repr(v)
            except ValueError:
                continue  # a value the distribution cannot hold (the space changed)
            out[name] = (v, dist)
        return out

    def _attrs(self, trial: _Trial) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "trial_id": trial.trial_id,
            "status": trial.status,
            "seed": trial.seed,
            "step": trial.step,
            "attempts": trial.attempts,
        }
        if trial.status in FAILED:
            attrs.update(cause=trial.cause, error=_last_line(trial.error), hint=trial.hint)
        for name, v in trial.metrics.items():
            key = f"metric_{name}" if name in OWN else name
            attrs[key] = v if math.isfinite(v) else str(v)
        return attrs


def _number(v: Any) -> float | None:
    """A value Optuna can score: a number, not NaN."""
    return float(v) if isinstance(v, int | float) and not math.isnan(v) else None


def _last_line(text: str | None) -> str | None:
    """The line of an error that says what it was (a traceback's last), cut to 300 characters."""
    lines = (text or "").strip().splitlines()
    return lines[-1][:300] if lines else None
