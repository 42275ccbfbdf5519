"""The searcher thread and the disk writer: what the loop must never wait for."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from tuner.engine._offload import SearcherThread, Writer
from tuner.searchers import Outcome, create
from tuner.space import parse_parameters


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
