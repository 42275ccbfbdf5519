"""The long-lived process that runs trials one after another (one per concurrency slot).

Reusing it across trials is what makes a short trial cheap: the interpreter, torch and the
trainable's module are loaded once. Each trial runs in a thread of the actor so that the
driver can ask it to stop while it trains; events stream back as a Ray generator.
"""

from __future__ import annotations

import gc
import queue
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

from tuner.errors import TrialPruned
from tuner.trial import Trial


class TrialWorker:
    """Made a Ray actor by the engine; plain Python here so it can be tested without Ray."""

    def __init__(self, path_entries: list[str] | None = None) -> None:
        for entry in reversed(path_entries or []):
            if entry not in sys.path:
                sys.path.insert(0, entry)
        self._stops: dict[str, threading.Event] = {}

    def warm(self, trainable: str) -> float:
        """Import the trainable ahead of the first trial; returns the seconds it took."""
        from tuner.config import import_trainable

        start = time.perf_counter()
        import_trainable(trainable)
        return time.perf_counter() - start

    def stop(self, trial_id: str) -> None:
        event = self._stops.get(trial_id)
        if event is not None:
            event.set()

    def run(
        self, trial_id: str, trainable: str, config: dict[str, Any], seed: int, max_steps: int | None, gpus: float
    ) -> Iterator[dict[str, Any]]:
        """Run one trial; yield ``report`` events, then one of ``done``/``pruned``/``error``."""
        from tuner.config import import_trainable

        stop = self._stops[trial_id] = threading.Event()
        events: queue.Queue[dict[str, Any]] = queue.Queue()
        started = time.time()

        def sink(record: dict[str, Any]) -> bool:
            events.put({"kind": "report", "time": time.time() - started, **record})
            return not stop.is_set()

        def target() -> None:
            try:
                fn = import_trainable(trainable)
                fn(config, Trial(trial_id, seed, max_steps=max_steps, gpus=gpus, sink=sink))
                events.put({"kind": "done"})
            except TrialPruned:
                events.put({"kind": "pruned"})
            except BaseException as exc:
                events.put(
                    {
                        "kind": "error",
                        "error": _last_line(exc),
                        "oom": _is_oom(exc),
                        "traceback": traceback.format_exc(),
                    }
                )

        thread = threading.Thread(target=target, name=f"trial-{trial_id}", daemon=True)
        thread.start()
        try:
            while True:
                event = events.get()
                yield event
                if event["kind"] != "report":
                    break
        finally:
            thread.join()
            self._stops.pop(trial_id, None)
            _free_memory()


def _last_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[-1] if text else type(exc).__name__


def _is_oom(exc: BaseException) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError)


def _free_memory() -> None:
    """Drop what the last trial left behind, so the next one starts clean."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
