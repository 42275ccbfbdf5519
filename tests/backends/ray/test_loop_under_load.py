"""A searcher and a disk slower than the grace a stopped trial's ranks get before they are killed
(the grace shortened from 2 s to 1.5 s here, every delay with it) must not disturb the study loop:
no group is killed for not stopping in time, and ASHA prunes at the same steps as without them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import tuner
from tests.conftest import study
from tuner import searchers, storage
from tuner.backends.ray import _backend as ray_backend
from tuner.results import _recorder
from tuner.searchers._grid import GridSearcher

pytestmark = pytest.mark.slow

GRACE_S = 1.5  # how long a stopped trial's ranks get before they are killed (2 s in the product)
SLOW_S = 1.25 * GRACE_S  # a write or a delete: longer than the grace
THINK_S = GRACE_S  # a suggestion: as long as the grace


class SlowGrid(GridSearcher):
    """Grid search that takes ``THINK_S`` to think."""

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        time.sleep(THINK_S)
        return super().suggest(trial_id)


BODY = """
name: loaded
trainable: trainables.toy:ranks
metric: {{name: loss, goal: minimize}}
method: {method}
max_concurrent: {slots}
run_cap: 4
early_terminate: {{type: asha, max_t: 4, grace_period: 1, reduction_factor: 2}}
parameters:
  offset: {{values: [2, 0, 5, 6]}}
  steps: {{value: 4}}
  sleep: {{value: 0.1}}
"""


def outcome(folder: Path) -> pd.DataFrame:
    trials = tuner.load_results(folder).set_index("params_offset")
    return trials[["status", "step"]].sort_index()


def test_slow_searcher_and_slow_disk_change_nothing(
    ray_local: None, in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ray_backend, "STOP_GRACE_S", GRACE_S)
    reference = tuner.run(study(BODY.format(method="grid", slots=1), name="fast"), quiet=True)

    monkeypatch.setitem(searchers.SEARCHERS, "slow_grid", f"{__name__}:SlowGrid")
    real_write, real_delete = _recorder.write_frame, storage.CheckpointStore.delete

    def slow_write(*args: Any) -> None:
        time.sleep(SLOW_S)
        real_write(*args)

    def slow_delete(*args: Any) -> None:  # the driver prunes old checkpoints (ranks write them)
        time.sleep(SLOW_S)
        real_delete(*args)

    monkeypatch.setattr(_recorder, "write_frame", slow_write)
    monkeypatch.setattr(storage.CheckpointStore, "delete", slow_delete)

    loaded = tuner.run(study(BODY.format(method="slow_grid", slots=1), name="slow"), quiet=True)
    assert loaded.summary["respawns"] == 0
    pd.testing.assert_frame_equal(outcome(loaded.folder), outcome(reference.folder))
    assert (outcome(loaded.folder)["status"] == "pruned").sum() >= 2  # pruning really happened
    assert loaded.summary["searcher"]["suggest_s_median"] >= THINK_S
    assert (loaded.folder / "checkpoints").exists()

    # Two at a time: while one trial is being stopped, the searcher thinks for the other slot.
    both = tuner.run(study(BODY.format(method="slow_grid", slots=2), name="slow2"), quiet=True)
    assert both.summary["respawns"] == 0
    trials = tuner.load_results(both.folder)
    assert set(trials["status"]) <= {"finished", "pruned"} and len(trials) == 4


def test_a_loop_held_past_the_grace_still_sees_the_ranks_end(
    ray_local: None, in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stopped trial's ranks end at once, but the loop only polls after more than the grace
    (held up by a write or a searcher): their end is read before the grace is judged, so the
    group is not killed and started again."""
    from tuner.backends.ray._backend import RayBackend
    from tuner.engine import End, Launch, Report

    monkeypatch.setattr(ray_backend, "STOP_GRACE_S", 0.5)
    s = study(BODY.format(method="grid", slots=1), name="held")
    backend = RayBackend(s)
    backend.open(1, in_tmp, storage.CheckpointStore(str(in_tmp / "checkpoints")))
    try:
        backend.start(0, Launch("t0001", {"offset": 0, "steps": 50, "sleep": 0.05}, seed=0, max_steps=None))
        deadline = time.monotonic() + 60
        while not any(isinstance(e, Report) for e in backend.poll(0.2)):
            assert time.monotonic() < deadline, "no report"
        backend.stop("t0001")
        time.sleep(2.0)  # the loop is held up far past the grace; the ranks stop meanwhile
        ended: list[End] = []
        while not ended:
            ended = [e for e in backend.poll(0.2) if isinstance(e, End)]
            assert time.monotonic() < deadline, "no end"
        assert ended[0].error is None and backend.respawns == 0
    finally:
        backend.close()
