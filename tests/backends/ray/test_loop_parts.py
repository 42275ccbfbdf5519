"""Pieces of the study loop without Ray running: root causes, replay, the offloaded searcher and writer."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import study
from tuner.backends.ray._engine import _Engine, _root_cause
from tuner.engine._offload import SearcherThread, Writer
from tuner.searchers import Outcome, create
from tuner.space import parse_parameters

BAYES = """
name: replayed
trainable: trainables.toy:quadratic
metric: {name: loss, goal: minimize}
method: bayes
seed: 4
run_cap: 10
searcher: {init_points: 2}
early_terminate: {type: asha, max_t: 9, grace_period: 1, reduction_factor: 3}
parameters:
  lr: {distribution: log_uniform_values, min: 1e-4, max: 1e-1}
  act: {values: [relu, tanh]}
  steps: {value: 9}
"""


def error(rank_error: str, dead: bool = False) -> dict[str, Any]:
    return {"kind": "error", "error": rank_error, "dead": dead}


@pytest.mark.parametrize(
    ("ended", "cause"),
    [
        ({0: error("RuntimeError: Gloo connectFullMesh failed"), 1: error("rank 1 process died", dead=True)}, 1),
        ({0: error("RuntimeError: [gloo] Connection closed by peer"), 1: error("ValueError: bad shape")}, 1),
        ({0: error("ValueError: bad shape"), 1: error("RuntimeError: nccl timed out")}, 0),
        ({0: error("RuntimeError: gloo timed out"), 1: error("RuntimeError: connection reset")}, 0),
        ({0: {"kind": "done"}, 1: {"kind": "done"}}, None),
    ],
)
def test_root_cause_is_the_rank_that_failed_first_not_its_peers(ended: dict, cause: int | None) -> None:
    found = _root_cause(ended)
    assert found == ({"kind": "done"} if cause is None else ended[cause])


def journal_with_a_foreign_config() -> list[dict[str, Any]]:
    """Two finished trials and one still running, with configurations no searcher proposed."""
    return [
        {"e": "start", "trial": "t0001", "params": {"lr": 0.05, "act": "tanh", "steps": 9}, "seed": 1, "t": 1.0},
        {"e": "report", "trial": "t0001", "step": 9, "time": 0.1, "metrics": {"loss": 3.0}},
        {"e": "end", "trial": "t0001", "status": "finished", "error": None, "t": 2.0},
        {"e": "start", "trial": "t0002", "params": {"lr": 0.01, "act": "relu", "steps": 9}, "seed": 2, "t": 2.0},
        {"e": "report", "trial": "t0002", "step": 1, "time": 0.1, "metrics": {"loss": 1.1}},
        {"e": "end", "trial": "t0002", "status": "pruned", "error": None, "t": 3.0},
        {"e": "start", "trial": "t0003", "params": {"lr": 0.002, "act": "relu", "steps": 9}, "seed": 3, "t": 3.0},
        {"e": "report", "trial": "t0003", "step": 1, "time": 0.1, "metrics": {"loss": 1.0}},
    ]


def test_replay_credits_each_result_to_the_configuration_that_produced_it(tmp_path: Path) -> None:
    engine = _Engine(study(BAYES), 4, tmp_path, quiet=True)
    left = engine.replay(journal_with_a_foreign_config())
    assert left == ["t0003"]
    searcher: Any = engine.searcher.searcher
    assert searcher.known.configs["t0001"] == {"lr": 0.05, "act": "tanh"}
    assert searcher.observed() == {"t0001": 3.0, "t0002": 1.1}
    assert searcher.known.pending == {"t0003": {"lr": 0.002, "act": "relu"}}
    assert engine.launched == 3 and engine.recorder.trials["t0002"].status == "pruned"
    assert engine.recorder.trials["t0003"].step == 1  # its report replayed: it continues from there
    engine.writer.close()


def test_a_replayed_searcher_proposes_what_the_uninterrupted_one_would(tmp_path: Path) -> None:
    live = _Engine(study(BAYES), 4, tmp_path / "a", quiet=True)
    live.replay(journal_with_a_foreign_config())
    again = _Engine(study(BAYES), 4, tmp_path / "b", quiet=True)
    again.replay(journal_with_a_foreign_config())
    assert live.searcher.searcher.suggest("t0004") == again.searcher.searcher.suggest("t0004")
    live.writer.close()
    again.writer.close()


def test_the_searcher_thread_keeps_call_order_and_does_not_block_the_caller() -> None:
    space, _ = parse_parameters({"x": {"values": [1, 2, 3]}})
    inner = create("grid", space, 0, {}, run_cap=None)
    release = threading.Event()
    slow_suggest = inner.suggest

    def suggest(trial_id: str) -> Any:
        release.wait(5)
        return slow_suggest(trial_id)

    inner.suggest = suggest  # type: ignore[method-assign]
    thread = SearcherThread(inner)
    thread.start()
    first = thread.suggest("a")
    assert not first.done()  # the caller goes on while the searcher works
    thread.tell("a", {"x": 1}, Outcome(1.0, "complete", 1))
    second = thread.suggest("b")
    release.set()
    assert first.result(5) == {"x": 1} and second.result(5) == {"x": 2}
    thread.check()
    assert len(thread.suggest_s) == 2
    thread.close()


def test_the_writer_writes_in_order_and_keeps_only_the_latest_waiting_job() -> None:
    writer = Writer()
    written: list[str] = []
    gate = threading.Event()

    def first() -> None:
        gate.wait(5)
        written.append("first")

    writer.submit("first", first)
    for i in range(5):  # queued behind the first: each replaces the one waiting under its key
        writer.submit("snapshot", lambda i=i: written.append(f"snapshot{i}"))
    writer.submit("checkpoint:t1", lambda: written.append("checkpoint"))
    gate.set()
    writer.close()
    assert written == ["first", "snapshot4", "checkpoint"]


def test_a_failed_write_is_raised_on_the_loop() -> None:
    writer = Writer()

    def broken() -> None:
        raise OSError("disk full")

    writer.submit("a", broken)
    deadline = time.monotonic() + 5
    while writer.waiting() and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(OSError, match="disk full"):
        writer.close()
