"""Resume: a journal fed back through the engine's own decisions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tuner.diagnose import diagnose, journaled
from tuner.searchers import Outcome
from tuner.status import Status

if TYPE_CHECKING:
    from tuner.engine._loop import Engine


def replay(engine: Engine, events: list[dict[str, Any]]) -> list[str]:
    """Rebuild the state a journal describes; returns the trials left to continue.

    The searcher is told the recorded configurations and outcomes (never asked again), so every
    result is credited to the configuration that produced it; the scheduler sees every report
    again, so its rungs are where they were.
    """
    study, recorder = engine.study, engine.recorder
    decided: dict[str, tuple[Status, str | None]] = {}
    recorder.replaying = True
    try:
        for ev in events:
            kind, trial_id = ev.get("e"), ev.get("trial", "")
            if kind == "start":
                params = {k: v for k, v in ev["params"].items() if k in study.space.searchable}
                record = engine._open(trial_id, params, ev["t"])
                record.suggest_s = ev.get("suggest_s")
                recorder.start(record)
                engine.searcher.tell(trial_id, params, Outcome(None, "running"))
            elif kind == "report" and trial_id not in decided:
                status, error = engine.judge.report(trial_id, ev["step"], ev["time"], ev["metrics"])
                if status is not None:
                    decided[trial_id] = (status, error)
            elif kind == "ckpt" and ev.get("path"):
                rec = recorder.trials[trial_id]
                value = rec.value if rec.step == ev["step"] else None
                engine.checkpoints.saved(
                    trial_id, ev["step"], ev["path"], None if value is None else study.minimised(value)
                )
            elif kind == "retry":
                decided.pop(trial_id, None)
                engine.rewind(trial_id, ev["step"], ev.get("error"), cause=ev.get("cause"))
                if ev.get("error") != "resumed":
                    recorder.trials[trial_id].attempts += 1
                if ev.get("cause") == "node_lost":
                    recorder.trials[trial_id].infra_retries += 1
            elif kind == "exploit":
                engine.changes.replay(ev)
            elif kind == "leak":
                recorder.trials[trial_id].leak_mb_per_step = ev.get("mb")
            elif kind == "placed":
                recorder.trials[trial_id].nodes = list(ev.get("nodes") or [])
            elif kind == "end":
                decided.pop(trial_id, None)
                found = journaled(ev, recorder.trials[trial_id].config)  # an older journal's end: diagnosed now
                engine.finish(
                    trial_id,
                    ev["status"],
                    ev.get("error"),
                    at=ev.get("t"),
                    stop_s=ev.get("stop_s"),
                    usage=ev.get("usage") or {"peak_gpu_mb": ev.get("peak_gpu_mb")},
                    cause=found.cause if found else None,
                    hint=found.hint if found else None,
                )
    finally:
        recorder.replaying = False
    for trial_id, (status, error) in decided.items():  # decided, but the driver died before the end
        found = diagnose(status, error, recorder.trials[trial_id].config)
        engine.finish(trial_id, status, error, cause=found.cause if found else None, hint=found.hint if found else None)
    engine.admission.exhausted = False
    return [t for t, r in recorder.trials.items() if r.status == "running"]
