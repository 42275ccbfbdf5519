"""A rank's process as plain Python (no Ray): every trial ends with an event, whatever breaks."""

from __future__ import annotations

from typing import Any

import pytest

from tuner.backends.ray import _worker
from tuner.backends.ray._worker import TrialTask, TrialWorker


def events(task: TrialTask) -> list[dict[str, Any]]:
    return list(TrialWorker([]).run(task))


def task(mode: str) -> TrialTask:
    return TrialTask("t1", "trainables.toy:faulty", {"mode": mode, "x": 2.0}, seed=0, max_steps=None, gpus=0)


def test_a_finished_trial_streams_its_reports_then_done() -> None:
    out = events(task("ok"))
    assert [e["kind"] for e in out] == ["report", "report", "report", "done"]
    assert [e["step"] for e in out[:3]] == [1, 2, 3]


def test_a_failure_is_reported_even_when_reading_the_gpu_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: object) -> dict[str, float]:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(_worker.Usage, "stop", broken)
    out = events(task("raise"))
    assert out[-1]["kind"] == "error" and "boom" in out[-1]["error"]
    assert "RuntimeError: boom" in out[-1]["traceback"]


def test_a_rank_gets_the_masters_address_from_its_argument() -> None:
    worker = TrialWorker([])
    out = list(worker.run(task("ok"), master=("10.0.0.1", 29500)))
    assert out[-1]["kind"] == "done"  # world size 1: the address is kept, never dialled


def test_every_end_carries_what_the_rank_used() -> None:
    out = events(task("ok"))
    usage = out[-1]["usage"]
    assert usage["peak_rss_mb"] > 50  # this process has torch and pandas loaded
    assert usage["cpu_s"] >= 0
    assert all(e["rss_mb"] > 50 for e in out[:-1])
    assert all(e["gpu_mb"] is None for e in out[:-1])  # the GPU series of the leak check: only on CUDA
    assert "peak_gpu_mb" not in usage  # no GPU here: no GPU figures, rather than zeros
