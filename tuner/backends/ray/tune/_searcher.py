"""One of our searchers as a Ray Tune searcher."""

from __future__ import annotations

import copy
import math
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ray.tune.search import Searcher as RaySearcher

from tuner import searchers
from tuner.config import minimised
from tuner.errors import UserError
from tuner.searchers import Outcome
from tuner.space import Space, same

Mode = Literal["min", "max"]
Event = tuple[str, str, dict[str, Any], Outcome | None]  # ("start" | "end", trial, params, outcome)
STATE_VERSION = 1


@dataclass
class Live:
    """A trial in flight, as its reports tell it: the last step and value, the learning curve
    (minimised), and at its end whether it ended on its own."""

    step: float | None = None
    value: float | None = None
    values: tuple[float, ...] | None = None  # every objective's, minimised, when there are several
    curve: list[tuple[float, float]] = field(default_factory=list)
    reports: int = 0
    ended: bool = False


class TuneSearcher(RaySearcher):
    """A :class:`tuner.searchers.Searcher` over ``space``, asked and told by Ray Tune.

    ``suggest`` gives the configuration the default engine gives a trial (nested dicts, inactive
    parameters left out) merged over ``constants`` (a dict shaped like the trainable's config), or
    ``Searcher.FINISHED`` once the searcher has nothing new to propose. Each trial gets a tuner
    trial id (``t0001``, ``t0002``, ... in suggestion order; :meth:`trial_ids`). When a trial ends,
    the searcher is told an :class:`Outcome`: its last value of ``metric`` (minimised: negated
    for ``mode="max"``), ``failed`` on an error or without a finite value, ``complete`` when it
    reached ``max_step`` (its last ``step_key``), ended on its own, or when ``max_step`` is not
    given, else ``pruned`` at its last step; with ``max_step`` also its learning curve. With
    ``objectives`` (``(metric, mode)`` of each of several, ``metric`` first) each one's last value
    too, as the engine tells a multi-objective searcher.

    ``save``/``restore`` keep the history told (configurations, outcomes, trials in flight): a
    restored searcher is a fresh copy of the one given, told that history again, so that it
    proposes what the saved one would have.
    """

    def __init__(
        self,
        searcher: searchers.Searcher,
        space: Space,
        *,
        metric: str | None,
        mode: Mode | None,
        max_step: float | None = None,
        step_key: str = "training_iteration",
        constants: dict[str, Any] | None = None,
        objectives: Sequence[tuple[str, Mode]] = (),
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        self.max_step, self.step_key = max_step, step_key
        self.objectives = list(objectives) if len(objectives) > 1 else []
        self._reset()
        self._bind(searcher, space, constants or {})

    def _reset(self) -> None:
        self._events: list[Event] = []
        self._params: dict[str, dict[str, Any]] = {}  # tuner trial id -> the parameters suggested
        self._ids: dict[str, str] = {}  # Tune trial id -> tuner trial id
        self._live: dict[str, Live] = {}  # Tune trial id -> a trial in flight

    def _bind(self, searcher: searchers.Searcher, space: Space, constants: dict[str, Any]) -> None:
        # Never ``self.searcher``: Tune takes an object with that attribute for a wrapper of one.
        self._inner = searcher
        self._blank = copy.deepcopy(searcher)  # what restore tells the history to
        self.space, self.constants = space, constants

    # -- what the lead needs of it -------------------------------------------------------
    def trial_ids(self) -> dict[str, str]:
        """Tune trial id -> tuner trial id, for every trial suggested."""
        return dict(self._ids)

    def config(self, params: dict[str, Any]) -> dict[str, Any]:
        """The configuration a trial with these searched parameters receives."""
        return _merge(self.constants, self.space.nest(self.space.complete(params)))

    # -- Tune's calls ------------------------------------------------------------------------
    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]  # FINISHED
        inner = self._searcher()
        tuner_id = f"t{len(self._ids) + 1:04d}"
        params = inner.suggest(tuner_id)
        if params is None:
            return RaySearcher.FINISHED
        self._ids[trial_id] = tuner_id
        self._params[tuner_id] = params
        self._live[trial_id] = Live()
        self._events.append(("start", tuner_id, params, None))
        return self.config(params)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        live = self._live.get(trial_id) or self._rerun(trial_id, result)
        if live is not None:
            self._read(live, result)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if trial_id not in self._live:
            self._rerun(trial_id, result)
        live = self._live.pop(trial_id, None)
        if live is None:  # not ours, or told already
            return
        # Tune passes a report on to the searcher only when its scheduler (or a stopper) lets the
        # trial go on: a trial whose last report was passed on ended on its own.
        seen = live.step
        if result and self.step_key in result and result[self.step_key] == seen:
            live.ended = True
        elif result:
            self._read(live, result)
        tuner_id = self._ids[trial_id]
        params = self._params[tuner_id]
        told = self.outcome(live, error)
        self._searcher().tell(tuner_id, params, told)
        self._events.append(("end", tuner_id, params, told))

    def _rerun(self, trial_id: str, result: dict[str, Any] | None) -> Live | None:
        """A trial told failed that Tune runs again: ``Tuner.restore(..., restart_errored=True)``
        gives it a new Tune id (found by the configuration its results carry),
        ``resume_errored=True`` keeps the old one. It is in flight again, told ``running``, and its
        new outcome is told when it ends."""
        failed = {t for t, told in self._last_told().items() if told is not None and told.state == "failed"}
        tuner_id = self._ids.get(trial_id)
        config = _reported_config(result or {})
        if tuner_id is None and config:
            tuner_id = next((t for t in sorted(failed) if _within(self._nested(self._params[t]), config)), None)
        if tuner_id is None or tuner_id not in failed:
            return None
        self._ids[trial_id] = tuner_id
        params = self._params[tuner_id]
        live = self._live[trial_id] = Live()
        self._searcher().tell(tuner_id, params, Outcome(None, "running"))
        self._events.append(("start", tuner_id, params, None))
        return live

    def _last_told(self) -> dict[str, Outcome | None]:
        """Each tuner trial's last outcome told (``None`` while in flight)."""
        return {tuner_id: told for _, tuner_id, _, told in self._events}

    def _nested(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.space.nest(self.space.complete(params))

    # HyperBandForBOHB tells the searcher of each trial it pauses at a rung and resumes (Tune's
    # Searcher has no such methods; only TuneBOHB does). A paused trial is still in flight here:
    # its outcome is told when it ends.
    def on_pause(self, trial_id: str) -> None:
        pass

    def on_unpause(self, trial_id: str) -> None:
        pass

    def outcome(self, live: Live, error: bool) -> Outcome:
        if error or (live.value is None and self.metric is not None):
            return Outcome(None, "failed", live.step)
        full = self.max_step is None or live.ended or (live.step is not None and live.step >= self.max_step)
        curve = tuple(live.curve) if self.max_step is not None and live.curve else None
        return Outcome(live.value, "complete" if full else "pruned", live.step, live.values, curve)

    def _read(self, live: Live, result: dict[str, Any]) -> None:
        """A report: its step (``step_key``, else the count of reports) and value (``None`` when not
        finite; a report without the metric leaves the last one)."""
        live.reports += 1
        step = result.get(self.step_key, live.reports)
        if not isinstance(step, int | float) or isinstance(step, bool):
            step = live.reports
        if live.step is not None and step <= live.step:  # restarted (a retry from its checkpoint)
            live.curve = [(s, v) for s, v in live.curve if s < step]
        live.step = step
        if self.metric not in result:
            return
        live.value = _minimised(result[self.metric], self.mode)
        if live.value is not None:
            live.curve.append((float(step), live.value))
        found = [_minimised(result.get(name), mode) for name, mode in self.objectives]
        live.values = tuple(found) if found and None not in found else None  # type: ignore[arg-type]

    def _searcher(self) -> searchers.Searcher:
        return self._inner

    # -- checkpoints ---------------------------------------------------------------------
    def save(self, checkpoint_path: str) -> None:
        Path(checkpoint_path).write_bytes(pickle.dumps(self.get_state()))

    def restore(self, checkpoint_path: str) -> None:
        self.set_state(pickle.loads(Path(checkpoint_path).read_bytes()))

    def get_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "events": self._events,
            "ids": self._ids,
            "live": self._live,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise UserError(f"searcher checkpoint: version {state.get('version')!r}, this tuner reads {STATE_VERSION}")
        self._reset()
        self._inner = copy.deepcopy(self._blank)
        for _kind, tuner_id, params, told in state["events"]:
            self._inner.tell(tuner_id, params, told if told is not None else Outcome(None, "running"))
            self._params[tuner_id] = params
        self._events = list(state["events"])
        self._ids = dict(state["ids"])
        self._live = {k: copy.deepcopy(v) for k, v in state["live"].items()}


def _minimised(value: Any, mode: str) -> float | None:
    """A reported value as searchers see it (lower is better), or ``None`` when it is not a finite number."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return None
    return minimised(float(value), mode == "max")


def _reported_config(result: dict[str, Any]) -> dict[str, Any]:
    """The configuration a result carries: ``config``, or as Tune passes results to searchers,
    flattened into ``config/...`` keys."""
    if isinstance(result.get("config"), dict):
        return result["config"]
    out: dict[str, Any] = {}
    for key, value in result.items():
        if isinstance(key, str) and key.startswith("config/"):
            *path, last = key.split("/")[1:]
            node = out
            for part in path:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    break
            else:
                node[last] = value
    return out


def _within(part: Any, whole: Any) -> bool:
    """``part``'s values all found in ``whole`` (a trial's configuration), dict by dict."""
    if isinstance(part, dict) and isinstance(whole, dict):
        return all(key in whole and _within(value, whole[key]) for key, value in part.items())
    return same(part, whole)


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, dict by dict."""
    out = dict(base)
    for key, value in top.items():
        old = out.get(key)
        out[key] = _merge(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
    return out
