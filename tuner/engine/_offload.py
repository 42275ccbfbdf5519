"""What the study loop must never wait for: the searcher and the disk, each on a thread of its own.

The loop hands them work and goes on reading trial events and timing stops, so that a slow
Gaussian-process suggestion or a large checkpoint write never delays a pruning decision or
gets a healthy worker group killed for not stopping in time.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from tuner.searchers import Outcome, Searcher


class SearcherThread:
    """Runs a searcher's calls one at a time, in the order they were made, off the loop.

    Until :meth:`start`, calls run inline (a resume replays its history this way).
    """

    def __init__(self, searcher: Searcher) -> None:
        self.searcher = searcher
        self._pool: ThreadPoolExecutor | None = None
        self._tells: list[Future[None]] = []
        self.suggest_s: list[float] = []  # time each suggestion took to compute

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="searcher")

    def suggest(self, trial_id: str) -> Future[dict[str, Any] | None]:
        def timed() -> dict[str, Any] | None:
            begun = time.perf_counter()
            try:
                return self.searcher.suggest(trial_id)
            finally:
                self.suggest_s.append(time.perf_counter() - begun)

        return self._submit(timed)

    def tell(self, trial_id: str, config: dict[str, Any], outcome: Outcome) -> None:
        self._tells.append(self._submit(lambda: self.searcher.tell(trial_id, config, outcome)))

    def _submit(self, fn: Callable[[], Any]) -> Future[Any]:
        if self._pool is not None:
            return self._pool.submit(fn)
        done: Future[Any] = Future()
        try:
            done.set_result(fn())
        except BaseException as exc:
            done.set_exception(exc)
        return done

    def check(self) -> None:
        """Raise here, on the loop, what a ``tell`` raised on the thread (a searcher's bug)."""
        finished = [f for f in self._tells if f.done()]
        self._tells = [f for f in self._tells if not f.done()]
        for future in finished:
            future.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


class Writer:
    """Disk writes in submission order on one thread; a job submitted under a key that is still
    waiting replaces the waiting one (only the latest snapshot or checkpoint of a trial matters)."""

    def __init__(self) -> None:
        self._jobs: OrderedDict[str, Callable[[], None]] = OrderedDict()
        self._cv = threading.Condition()
        self._busy = False
        self._closed = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="writer", daemon=True)
        self._thread.start()

    def submit(self, key: str, job: Callable[[], None]) -> None:
        with self._cv:
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            self._jobs[key] = job
            self._cv.notify()

    def waiting(self) -> int:
        with self._cv:
            return len(self._jobs) + self._busy

    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._jobs and not self._closed:
                    self._cv.wait()
                if not self._jobs:
                    return
                _, job = self._jobs.popitem(last=False)
                self._busy = True
            try:
                job()
            except BaseException as exc:  # raised on the loop at the next submit or at close
                with self._cv:
                    self._error = exc
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()

    def drain(self) -> None:
        """Wait until every job submitted so far has been written."""
        with self._cv:
            while self._jobs or self._busy:
                self._cv.wait()

    def close(self) -> None:
        """Write what is waiting, then stop; raise a job's error, if any."""
        self.drain()
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._thread.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
