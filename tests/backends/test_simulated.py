"""The simulated backend: virtual time, stops, failures, checkpoints, flat memory; its YAML switch."""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import cli, study
from tuner.backends.simulated import SimulatedBackend, checkpoint_path
from tuner.config import Study
from tuner.engine._backend import End, Event, Launch, Report
from tuner.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

SIMULATED = """
    trainable: trainables.simulated:curve
    backend: simulated
    metric: {name: loss}
    method: random
    run_cap: 100
    early_terminate: {type: asha, max_t: 9}
    parameters:
      lr: {distribution: log_uniform_values, min: 1e-4, max: 1e-1}
      width: {values: [16, 64]}
"""


def _study(**extra: Any) -> Study:
    body = SIMULATED + "".join(f"    {k}: {v}\n" for k, v in extra.items())
    return study(body)


def _backend(fn: Callable[[dict[str, Any], int], Any], slots: int = 4, **extra: Any) -> SimulatedBackend:
    backend = SimulatedBackend(_study(**extra), trainable=fn)
    backend.open(slots)
    return backend


def _launch(trial_id: str, max_steps: int | None = 3, checkpoint: str | None = None, **config: Any) -> Launch:
    return Launch(trial_id, config, seed=0, max_steps=max_steps, checkpoint=checkpoint)


def _timed(config: dict[str, Any], step: int) -> dict[str, float]:
    return {"loss": 1.0 / step, "seconds": config["s"]}


def _idle(backend: SimulatedBackend) -> list[int]:
    """Every free slot, the one free longest first (``free()`` gives the first)."""
    return list(backend._idle)


def _drain(backend: SimulatedBackend) -> list[tuple[float, Event]]:
    out = []
    while events := backend.poll(1.0):
        out += [(backend.now(), e) for e in events]
    return out


def test_events_come_in_virtual_time_order_and_the_clock_jumps() -> None:
    backend = _backend(_timed)
    backend.start(0, _launch("slow", s=3.0))
    backend.start(1, _launch("fast", s=1.0))
    seen = [(t, e.trial_id, getattr(e, "step", "end"), getattr(e, "time", None)) for t, e in _drain(backend)]
    assert seen == [
        (1.0, "fast", 1, 1.0),
        (2.0, "fast", 2, 2.0),
        (3.0, "slow", 1, 3.0),
        (3.0, "fast", 3, 3.0),
        (3.0, "fast", "end", None),  # its budget (max_steps) reached: it ends when its last report is taken
        (6.0, "slow", 2, 6.0),
        (9.0, "slow", 3, 9.0),
        (9.0, "slow", "end", None),
    ]
    assert _idle(backend) == [2, 3, 1, 0] and backend.free() == 2  # the one free longest first
    assert backend.summary()["simulated_s"] == 9.0
    assert backend.wall() - time.time() == pytest.approx(9.0, abs=5.0)  # a virtual epoch: real start + virtual


def test_events_due_at_the_same_time_come_together() -> None:
    backend = _backend(_timed)
    for slot in range(3):
        backend.start(slot, _launch(f"t{slot}", s=2.0))
    first = backend.poll(1.0)
    assert [e.trial_id for e in first] == ["t0", "t1", "t2"] and backend.now() == 2.0


def test_a_stopped_trial_ends_now_and_reports_no_more() -> None:
    calls: list[int] = []

    def counted(config: dict[str, Any], step: int) -> dict[str, float]:
        calls.append(step)
        return {"loss": 1.0, "seconds": 5.0}

    backend = _backend(counted)
    backend.start(0, _launch("a", max_steps=100))
    (report,) = backend.poll(1.0)
    assert isinstance(report, Report) and report.step == 1 and backend.now() == 5.0
    backend.stop("a")
    backend.stop("a")  # asked twice: still one End
    assert backend.poll(1.0) == [End("a")] and backend.now() == 5.0
    assert backend.poll(1.0) == []
    assert calls == [1]  # the next step was never computed: the stop came first
    assert 0 in _idle(backend)


def test_a_stop_supersedes_a_pending_report() -> None:
    backend = _backend(_timed)
    backend.start(0, _launch("long", s=10.0))
    backend.start(1, _launch("short", s=1.0))
    assert [e.trial_id for e in backend.poll(1.0)] == ["short"]
    backend.stop("long")  # its report at t=10 is pending
    events = _drain(backend)
    assert (1.0, End("long")) in events
    assert not any(e.trial_id == "long" and isinstance(e, Report) for _, e in events)


@pytest.mark.parametrize(
    ("error", "line", "oom"),
    [
        (ValueError("bad lr"), "ValueError: bad lr", False),
        (MemoryError("no room"), "MemoryError: no room", True),
    ],
)
def test_a_trainable_that_raises_ends_with_its_error(error: Exception, line: str, oom: bool) -> None:
    def failing(config: dict[str, Any], step: int) -> dict[str, float]:
        if step == 2:
            raise error
        return {"loss": 1.0}

    backend = _backend(failing)
    backend.start(0, _launch("x"))
    assert isinstance(backend.poll(1.0)[0], Report)
    (end,) = backend.poll(1.0)
    assert isinstance(end, End) and end.error == line and end.oom is oom
    assert end.traceback is not None and "failing" in end.traceback and line in end.traceback
    backend.stop("x")  # a stop after the failure neither hides it nor adds an End
    assert backend.poll(1.0) == []


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        (3.0, "returns a dict of metrics, got float"),
        ({"loss": "low"}, "metric 'loss' must be a number"),
        ({"loss": 1.0, "seconds": -1}, "seconds must be a finite number >= 0"),
    ],
)
def test_what_cannot_be_a_step_ends_the_trial(returned: Any, message: str) -> None:
    backend = _backend(lambda config, step: returned)
    backend.start(0, _launch("x"))
    (end,) = backend.poll(1.0)
    assert isinstance(end, End) and end.error is not None and message in end.error


def test_a_trainable_returning_none_ends_its_trial() -> None:
    backend = _backend(lambda config, step: {"loss": 1.0} if step < 3 else None)
    backend.start(0, _launch("x", max_steps=None))
    events = [e for _, e in _drain(backend)]
    assert [getattr(e, "step", None) for e in events] == [1, 2, None] and events[-1] == End("x")


def test_a_launch_with_a_checkpoint_continues_after_its_step() -> None:
    backend = _backend(lambda config, step: {"loss": 1.0 / step, "seconds": 2.0})
    backend.start(0, _launch("x", max_steps=7))
    first = backend.poll(1.0)[0]
    assert isinstance(first, Report) and first.checkpoint == checkpoint_path("x", 1) == "sim://x/1"
    backend.abort("x")  # no End follows; the slot is free again
    assert backend.poll(1.0) == [] and 0 in _idle(backend)
    backend.start(0, _launch("x", max_steps=7, checkpoint="sim://x/5"))
    events = [e for _, e in _drain(backend)]
    assert [(e.step, e.time, e.checkpoint) for e in events if isinstance(e, Report)] == [
        (6, 2.0, "sim://x/6"),
        (7, 4.0, "sim://x/7"),
    ]
    assert events[-1] == End("x")


def test_a_busy_slot_or_trial_is_refused() -> None:
    backend = _backend(_timed, slots=1)
    backend.start(0, _launch("a", s=1.0))
    with pytest.raises(ValueError, match="slot 0 is not free"):
        backend.start(0, _launch("b", s=1.0))


def _drive(backend: SimulatedBackend, trials: int) -> int:
    """A minimal engine: a trial per free slot, stopped at a report of step 2 when its number is odd."""
    launched = done = 0
    while done < trials:
        while launched < trials and (slot := backend.free()) is not None:
            launched += 1
            backend.start(slot, _launch(f"t{launched}", max_steps=4, n=launched))
        for event in backend.poll(1.0):
            if isinstance(event, End):
                done += 1
            elif event.step == 2 and int(event.trial_id[1:]) % 2:
                backend.stop(event.trial_id)
    return done


def test_memory_stays_flat_in_the_trials_seen() -> None:
    backend = _backend(lambda config, step: {"loss": 1.0, "seconds": 1.0 + config["n"] % 7}, slots=50)
    _drive(backend, 1_000)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        assert _drive(backend, 4_000) == 4_000
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 20_000, f"{grown} bytes kept after 4,000 more trials"
    assert not backend._trials and not backend._heap


@pytest.mark.parametrize(
    ("extra", "capacity"),
    [({"max_concurrent": 7}, 7), ({}, 100), ({"resources": "{workers: 2}"}, 200)],
)
def test_capacity_is_the_study_limit_in_workers(extra: dict[str, Any], capacity: int) -> None:
    backend = SimulatedBackend(_study(**extra))
    assert backend.capacity() == capacity
    backend.open(2)
    assert backend.watch(5) == 5 and _idle(backend) == [0, 1, 2, 3, 4]


def test_the_shipped_curve_runs_to_its_budget() -> None:
    backend = SimulatedBackend(_study())
    backend.open(1)
    backend.start(0, _launch("x", max_steps=9, lr=3e-3, width=64))
    reports = [e for _, e in _drain(backend) if isinstance(e, Report)]
    assert [r.step for r in reports] == list(range(1, 10))
    assert reports[-1].metrics["loss"] < reports[0].metrics["loss"]
    assert reports[0].time == 1.0  # 0.5 + width / 128 seconds a step
    assert "seconds" not in reports[0].metrics


# -- the YAML switch ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"backend": "slurm"}, "backend: Input should be 'ray', 'tune' or 'simulated'"),
        ({"early_terminate": "{type: median}"}, "early_terminate: backend simulated needs the number of steps"),
        ({"early_terminate": "{type: asha}"}, "early_terminate.max_t: backend simulated needs the number of steps"),
        ({"early_terminate": "{type: hyperband}"}, "early_terminate.max_iter: backend simulated needs"),
        ({"trainable": "trainables.toy:quadratic"}, "reports through trial.report: backend simulated calls f"),
        ({"metric": "{name: accuracy}"}, "'accuracy' is never returned by trainables.simulated:curve"),
    ],
)
def test_what_cannot_be_simulated_is_refused_in_one_line(change: dict[str, str], message: str) -> None:
    lines = [line for line in SIMULATED.splitlines() if line.strip().split(":")[0] not in change]
    body = "\n".join(lines) + "\n" + "".join(f"    {k}: {v}\n" for k, v in change.items())
    with pytest.raises(ConfigError, match=message):
        study(body)


def test_backend_defaults_to_ray_and_a_simulated_study_notes_its_resources() -> None:
    assert study(SIMULATED.replace("backend: simulated", "")).spec.backend == "ray"
    noted = _study(resources="{workers: 4}")
    assert any("resources are not used" in n for n in noted.notices)
    assert study(SIMULATED.replace("backend: simulated", ""), backend="simulated").spec.backend == "simulated"


# -- end to end, through the command line -------------------------------------------------------------
def test_a_simulated_study_of_2000_trials_runs_from_the_command_line(tmp_path: Path, ray_tmp: Path) -> None:
    import pandas as pd

    done = cli(
        "run", str(ROOT / "search_spaces/simulated_asha.yaml"), "--progress", "off", cwd=tmp_path, ray_tmp=ray_tmp
    )
    assert done.returncode == 0, done.stderr
    assert "s simulated in" in done.stderr
    folder = tmp_path / "results" / "simulated_asha"
    trials = pd.read_parquet(folder / "trials.parquet")
    assert len(trials) == 2000 and set(trials["status"]) == {"finished", "pruned"}
    assert set(trials.loc[trials["status"] == "finished", "step"]) == {27}
    history = pd.read_parquet(folder / "history.parquet")
    assert len(history) == trials["iterations"].sum()
    best = yaml.safe_load((folder / "best.yaml").read_text())
    assert best["step"] == 27 and best["checkpoint"] == f"sim://{best['trial_id']}/27"
    assert best["metric"]["value"] == trials.loc[trials["status"] == "finished", "value"].min()
    assert not any(ray_tmp.iterdir()), "a Ray was started"
    report = cli("report", str(folder), cwd=tmp_path, ray_tmp=ray_tmp)
    assert report.returncode == 0, report.stderr
    assert (folder / "report.html").stat().st_size > 0


def test_backend_on_the_command_line_overrides_the_file(tmp_path: Path, ray_tmp: Path) -> None:
    text = (ROOT / "search_spaces/simulated_asha.yaml").read_text().replace("backend: simulated\n", "")
    (tmp_path / "study.yaml").write_text(text)
    args = ("study.yaml", "--run-cap", "30", "--progress", "off")
    done = cli("run", *args, "--backend", "simulated", cwd=tmp_path, ray_tmp=ray_tmp)
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load((tmp_path / "results/simulated_asha/study.yaml").read_text())["backend"] == "simulated"
    assert not any(ray_tmp.iterdir())
    wrong = cli("run", *args, "--backend", "slurm", cwd=tmp_path, ray_tmp=ray_tmp)
    assert wrong.returncode == 2 and "invalid choice: 'slurm' (choose from 'ray', 'tune', 'simulated')" in wrong.stderr
