"""A Ray Tune-style trial's ranks (two gloo processes, no Ray) agree at each report on the stop
and on ``done``: a checkpoint the ranks copied before they learnt of the stop is not left in
the store, as a single rank told to stop copies none."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

from benchmarks.strategies import spawn


def _trial(rank: int, world: int, folder: str, trial_id: str, stop_at: int, done_at: int) -> list[dict]:
    """Reports 1, 2, ... with a checkpoint each; rank 1 alone is told to stop from report
    ``stop_at`` on, and says done at ``done_at``. Rank 0's events, and how the trial ended."""
    from ray.tune import Checkpoint

    from tuner.backends.ray._tune_api import Done, Session
    from tuner.errors import TrialPruned
    from tuner.storage import CheckpointStore
    from tuner.trial import Trial

    events: list[dict] = []
    step = 0
    session = Session(
        Trial(trial_id, 0, rank=rank, world_size=world),
        events.append,
        lambda: rank == 1 and step >= stop_at,
        CheckpointStore(os.path.join(folder, "ckpt")),
    )
    session.begin()
    try:
        for step in range(1, 6):
            with tempfile.TemporaryDirectory() as d:
                Path(d, f"rank{rank}.json").write_text(json.dumps({"step": step}))
                metrics = {"loss": 1.0 / step, "done": rank == 1 and step >= done_at}
                session.report(metrics, Checkpoint.from_directory(d))
        end = "returned"
    except TrialPruned:
        end = "pruned"
    except Done:
        end = "done"
    return [*events, {"end": end}]


def _ranks(rank: int, world: int, folder: str) -> None:
    out = {"stopped": _trial(rank, world, folder, "t1", 2, 99), "done": _trial(rank, world, folder, "t2", 99, 3)}
    Path(folder, f"events{rank}.json").write_text(json.dumps(out))


@pytest.mark.slow
def test_ranks_agree_on_the_stop_and_on_done_and_leave_no_unrecorded_checkpoint(tmp_path: Path) -> None:
    spawn(_ranks, 2, str(tmp_path))
    ranks = [json.loads((tmp_path / f"events{r}.json").read_text()) for r in (0, 1)]
    assert [r["stopped"][-1] for r in ranks] == [{"end": "pruned"}] * 2
    reports = ranks[0]["stopped"][:-1]
    assert [r["step"] for r in reports] == [1, 2]
    assert "checkpoint_path" in reports[0] and "checkpoint_path" not in reports[1]
    kept = tmp_path / "ckpt" / "t1"
    assert sorted(p.name for p in kept.iterdir()) == ["checkpoint_000001"]  # the stopped report's copy is gone
    assert sorted(p.name for p in (kept / "checkpoint_000001").iterdir()) == ["rank0.json", "rank1.json"]
    # rank 1's done ends both ranks there, finished, with that report's checkpoint kept
    assert [r["done"][-1] for r in ranks] == [{"end": "done"}] * 2
    reports = ranks[0]["done"][:-1]
    assert [r["step"] for r in reports] == [1, 2, 3] and reports[-1]["checkpoint_path"].endswith("checkpoint_000003")
    assert sorted(p.name for p in (tmp_path / "ckpt" / "t2").iterdir()) == [f"checkpoint_00000{i}" for i in (1, 2, 3)]
