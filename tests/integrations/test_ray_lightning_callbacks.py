"""Ray Tune's Lightning callbacks (``ray.tune.integration.pytorch_lightning``) in trainables
written as Ray's Lightning examples use them (``tests/integrations/ray_lightning_trainables.py``),
run by tuner: reports, checkpoints, and a retry that goes on from the callback's checkpoint, in
this process on tuner's Ray Tune session, and once under Ray Tune."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

import tuner
from tests.conftest import study
from tuner.backends.ray._tune_api import Session, run
from tuner.storage import CheckpointStore
from tuner.trial import Trial

CONFIG = {"hidden": 16, "lr": 3e-2, "batch_size": 64}


def session(trial: Trial, reports: list[dict[str, Any]], store: CheckpointStore | None, at: str | None = None) -> Any:
    return Session(trial, reports.append, lambda: False, store, checkpoint=at)


def test_each_validation_is_reported_under_the_callback_s_names(tmp_path: Path, monkeypatch: Any) -> None:
    from tests.integrations import ray_lightning_trainables as ex

    monkeypatch.chdir(tmp_path)
    reports: list[dict[str, Any]] = []
    run(functools.partial(ex.train_reports_only, num_epochs=2), dict(CONFIG), session(Trial("t0", 0), reports, None))
    assert [r["step"] for r in reports] == [1, 2]
    assert set(reports[0]["metrics"]) == {"loss", "acc", "training_iteration"}  # Ray's names, from ptl/val_*
    assert all("checkpoint_path" not in r for r in reports)  # save_checkpoints=False

    reports.clear()
    with pytest.warns(UserWarning, match="TuneReportCallback` is deprecated"):
        fn = functools.partial(ex.train_with_report_callback, num_epochs=2)
        run(fn, dict(CONFIG), session(Trial("t1", 0), reports, None))
    assert [sorted(r["metrics"]) for r in reports] == [["loss", "mean_accuracy", "training_iteration"]] * 2


def test_a_retry_goes_on_from_the_callback_s_checkpoint(tmp_path: Path, monkeypatch: Any) -> None:
    """The module fails once at the end of epoch 2, after the callback reported it with the
    Trainer's checkpoint; the retry gets it from ``tune.get_checkpoint()`` and trains epoch 3."""
    from tests.integrations import ray_lightning_trainables as ex

    monkeypatch.chdir(tmp_path)
    store = CheckpointStore(str(tmp_path / "store"))
    config = {**CONFIG, "crash_dir": str(tmp_path)}
    reports: list[dict[str, Any]] = []
    with pytest.raises(RuntimeError, match="failed once, at the end of epoch 2"):
        run(ex.train_failing_once, dict(config), session(Trial("t0", 0), reports, store))
    assert [(r["step"], r["metrics"]["epoch"]) for r in reports] == [(1, 1.0), (2, 2.0)]
    latest = reports[-1]["checkpoint_path"]
    assert (Path(latest) / "checkpoint").is_file()  # the callback's temporary folder, kept by the store

    again: list[dict[str, Any]] = []
    run(ex.train_failing_once, dict(config), session(Trial("t0", 0), again, store, at=latest))
    assert [(r["step"], r["metrics"]["epoch"]) for r in again] == [(3, 3.0)]


@pytest.mark.slow
def test_a_trainable_with_checkpoints_is_retried_under_ray_tune(ray_local: None, in_tmp: Path) -> None:
    body = f"""
        name: ray_ptl_callbacks
        backend: tune
        trainable: tests.integrations.ray_lightning_trainables:train_failing_once
        metric: {{name: loss, goal: minimize}}
        method: grid
        max_failures: 1
        parameters:
          hidden: {{value: 16}}
          lr: {{value: 0.03}}
          batch_size: {{value: 64}}
          crash_dir: {{value: {str(in_tmp)!r}}}
    """
    out = tuner.run(study(body, allow_modules=["tests"]), quiet=True)
    trials = tuner.load_results(out.folder)
    assert trials["status"].tolist() == ["finished"] and trials["attempts"].tolist() == [1]
    history = tuner.load_history(out.folder)
    assert list(history["step"]) == [1, 2, 3] and list(history["epoch"]) == [1.0, 2.0, 3.0]  # none twice
