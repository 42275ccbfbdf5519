"""``results --tensorboard``: one run per trial, read back from TensorBoard's own event files."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.conftest import cli
from tuner.results import Recorder, TrialRecord


def events(run: Path) -> Iterator[Any]:
    """Every event of a run, from the TFRecord files TensorBoard reads."""
    from tensorboardX.proto import event_pb2

    for path in sorted(run.glob("events.out.tfevents.*")):
        data, i = path.read_bytes(), 0
        while i < len(data):
            (length,) = struct.unpack("<Q", data[i : i + 8])
            event = event_pb2.Event()
            event.ParseFromString(data[i + 12 : i + 12 + length])
            i += 12 + length + 4
            yield event


def test_one_run_per_trial_with_curves_and_hparams(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "study", "loss", maximize=False)
    (tmp_path / "study").mkdir()
    for trial_id, lr, act in (("t0001", 0.01, "relu"), ("t0002", 0.1, "tanh")):
        rec.start(TrialRecord(trial_id, {"lr": lr, "act": act}, {"lr": lr, "act": act}, seed=1))
        for step in (1, 2, 3):
            rec.report(trial_id, step, 0.1 * step, {"loss": lr * 10 / step, "acc": 1 - lr / step})
        rec.end(trial_id, "finished")
    rec.flush(force=True)
    rec.save_study({"name": "study", "metric": {"name": "loss", "goal": "minimize"}, "method": "random"})
    done = cli("results", str(tmp_path / "study"), "--tensorboard", str(tmp_path / "tb"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "tb").iterdir()) == ["t0001", "t0002"]
    found = list(events(tmp_path / "tb" / "t0002"))
    curve = [(e.step, v.simple_value) for e in found for v in e.summary.value if v.tag == "loss"]
    assert curve == [(1, 1.0), (2, 0.5), (3, 1 / 3)] or [round(x, 5) for _, x in curve] == [1.0, 0.5, 0.33333]
    plugins = {v.metadata.plugin_data.plugin_name for e in found for v in e.summary.value}
    assert "hparams" in plugins
    hparams = b"".join(
        v.metadata.plugin_data.content for e in found for v in e.summary.value if v.metadata.plugin_data.plugin_name
    )
    assert b"lr" in hparams and b"act" in hparams and b"hparam/loss" in hparams
