"""The live view of a running study: a few lines updated in place on a terminal; in a Ray job's
log (or with ``--progress plain``), the same lines printed anew every ``PLAIN_EVERY_S`` seconds;
silent otherwise. ``TUNER_PROGRESS`` (set by ``--progress``): auto, live, plain or off."""

from __future__ import annotations

import os
import sys
import time
from typing import Any, TextIO

from tuner.results import Recorder
from tuner.status import FAILED


class Progress:
    """Trials by status, the best so far with its parameters, elapsed time and what is left."""

    def __init__(
        self,
        recorder: Recorder,
        *,
        stream: TextIO | None = None,
        quiet: bool = False,
        time_limit: float | None = None,
        run_cap: int | None = None,
        until_stopped: str | None = None,
        searched: list[str] | None = None,
        every: float = 0.5,
    ) -> None:
        self.recorder = recorder
        self.stream = stream or sys.stderr
        self.time_limit = time_limit
        self.run_cap = run_cap
        self.until_stopped = until_stopped  # what ends a study with no run_cap, shown beside the count
        self.searched = searched
        self.every = every
        self.started = time.monotonic()
        self._last = 0.0
        self._live: Any = None
        self.mode = "off" if quiet else _mode(self.stream)
        self.enabled = self.mode != "off"
        if self.mode == "plain":
            self.every = max(self.every, PLAIN_EVERY_S)
            self._last = time.monotonic()  # the first lines after PLAIN_EVERY_S, not at once

    def lines(self) -> list[str]:
        c = self.recorder.counts()
        elapsed = time.monotonic() - self.started
        clock = f"{elapsed:.0f}s"
        if self.time_limit:
            clock += f" ({max(self.time_limit - elapsed, 0):.0f}s left)"
        started = len(self.recorder.trials)
        left = f" ({self.run_cap - started} left)" if self.run_cap else ""
        budget = f"{started} trials started" + (f" ({self.until_stopped})" if self.until_stopped else left)
        status = (
            f"running {c['running']}  finished {c['finished']}  pruned {c['pruned']}  "
            f"failed {sum(c[s] for s in FAILED)}" + (f"  stopped {c['stopped']}" if c["stopped"] else "")
        )
        out = [f"{clock}  |  {budget}  |  {status}"]
        running = [r for r in self.recorder.trials.values() if r.status == "running" and r.step is not None]
        if running:
            shown = [_usage(r) for r in running[:RUNNING_SHOWN]]
            more = f"  (+{len(running) - RUNNING_SHOWN})" if len(running) > RUNNING_SHOWN else ""
            out.append("running: " + "  |  ".join(shown) + more)
        best = self.recorder.best()
        if best is not None and best.value is not None:
            params = ", ".join(
                f"{k}={_short(v)}" for k, v in best.params.items() if self.searched is None or k in self.searched
            )
            out.append(f"best {self.recorder.metric}={best.value:.4g} ({best.trial_id}, {best.status}): {params}")
        return out

    def update(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < self.every):
            return
        self._last = now
        if self.mode == "plain":
            print("\n".join(self.lines()), file=self.stream, flush=True)
            return
        from rich.console import Console
        from rich.live import Live
        from rich.text import Text

        text = Text("\n".join(self.lines()), overflow="ellipsis", no_wrap=True)
        if self._live is None:
            self._live = Live(text, console=Console(file=self.stream), auto_refresh=False, transient=False)
            self._live.start()
        self._live.update(text, refresh=True)

    def close(self) -> None:
        """The final lines: in place on a terminal, once more in a log."""
        if self.mode in ("live", "plain"):
            self.update(force=True)
        if self._live is not None:
            self._live.stop()


PLAIN_EVERY_S = 10.0
RUNNING_SHOWN = 4


def _usage(rec: Any) -> str:
    """``t0004 step 7, 412 MB, 0.21 s/step``: a running trial and what it uses."""
    text = f"{rec.trial_id} step {rec.step:g}"
    if rec.usage.get("peak_rss_mb"):
        text += f", {rec.usage['peak_rss_mb']:.0f} MB"
    if rec.s_per_step is not None:
        text += f", {rec.s_per_step:.2g} s/step"
    if rec.leak_mb_per_step is not None:
        text += f", LEAK {rec.leak_mb_per_step:.0f} MB/step"
    return text


def _mode(stream: TextIO) -> str:
    """live on a terminal; plain in a Ray job's log (the job supervisor sets its config variable)."""
    chosen = os.environ.get("TUNER_PROGRESS", "auto")
    if chosen != "auto":
        return chosen
    if stream.isatty():
        return "live"
    return "plain" if "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ else "off"


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
