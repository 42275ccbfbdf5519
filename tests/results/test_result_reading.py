"""Reading one trial as Ray's ``Result`` reads it, on folders the simulated backend writes:
``Result.from_path``, ``best_checkpoints`` in the order Ray's checkpoint manager keeps them,
``get_best_checkpoint``, a failed trial's whole error, ``metrics["config"]``; and the reading code
of public analysis scripts, run as written on a tuner study."""

from __future__ import annotations

import math
import pickle
import random
from pathlib import Path
from typing import Any

import pytest

import tuner
from tests.conftest import study
from tuner.errors import ResultsError, ResultsMissing
from tuner.results._analysis import TrialError
from tuner.results._study_folder import _in_rays_order

CHECKPOINTED = """
name: ckpts
trainable: tests.results.curves:scoped
backend: simulated
metric: {name: loss, goal: minimize}
method: grid
seed: 1
max_concurrent: 3
storage: STORAGE
early_terminate: {type: asha, max_t: 12, grace_period: 12, reduction_factor: 2}
checkpoints: {keep: 3, keep_best: KEEP_BEST}
parameters:
  shape: {values: [down, dip, nan_end]}
"""

FAILING = """
name: failing
trainable: tests.engine.curves:breaks
backend: simulated
metric: {name: loss, goal: minimize}
method: grid
seed: 1
max_concurrent: 2
max_failed_trials: 10
storage: STORAGE
early_terminate: {type: asha, max_t: 4, grace_period: 4, reduction_factor: 2}
parameters:
  x: {values: [0.2, 0.9]}
"""


def _run(tmp_path: Path, text: str) -> Path:
    out = tuner.run(study(text.replace("STORAGE", str(tmp_path)), allow_modules=["tests"]), quiet=True)
    return Path(out.folder)


def _rays_order(saved: list[tuple[str, dict[str, Any]]], metric: str | None, mode: str) -> list[str]:
    """The paths Ray's own checkpoint manager lists (``Result.best_checkpoints``) when the
    checkpoints are registered in the order saved, scored by ``metric`` (none: unscored)."""
    from ray.train import Checkpoint, CheckpointConfig
    from ray.train._internal.checkpoint_manager import _CheckpointManager
    from ray.train._internal.session import _TrainingResult

    manager = _CheckpointManager(CheckpointConfig(checkpoint_score_attribute=metric, checkpoint_score_order=mode))
    local = {f"/{i}": path for i, (path, _) in enumerate(saved)}  # Ray's Checkpoint takes no sim://
    for i, (_, result) in enumerate(saved):
        manager.register_checkpoint(_TrainingResult(checkpoint=Checkpoint(f"/{i}"), metrics=result))
    return [local[r.checkpoint.path] for r in manager.best_checkpoint_results]


@pytest.mark.parametrize("mode", ["min", "max"])
def test_checkpoints_are_ordered_as_rays_checkpoint_manager_orders_them(mode: str) -> None:
    """Worst first and best last, NaN below every number, equals in the order saved, a result
    without the metric where it was saved: Ray's own manager is the reference."""
    rng = random.Random(7)
    for case in range(40):
        saved = []
        for i in range(rng.randint(1, 8)):
            value = rng.choice([0.1, 0.2, 0.2, 0.5, math.nan, math.inf, -math.inf, None])
            saved.append((f"/ckpt/{case}/{i}", {"step": i} if value is None else {"step": i, "loss": value}))
        ours = [p for p, _ in _in_rays_order(saved, "loss", mode == "max")]
        assert ours == _rays_order(saved, "loss", mode), saved
        assert [p for p, _ in _in_rays_order(saved, None, False)] == _rays_order(saved, None, mode)


@pytest.mark.parametrize("keep_best", [True, False])
def test_a_studys_best_checkpoints_are_in_rays_order(tmp_path: Path, keep_best: bool) -> None:
    """With ``keep_best`` the study keeps its checkpoints by the metric, as Ray's
    ``checkpoint_score_attribute`` does, and lists them as Ray would; without it, as saved."""
    folder = _run(tmp_path, CHECKPOINTED.replace("KEEP_BEST", str(keep_best).lower()))
    grid = tuner.load(folder)
    dip = next(r for r in grid if r.config["shape"] == "dip")  # its best (step 2) is long before its last
    steps = [m["step"] for _, m in dip.best_checkpoints]
    assert steps == ([10, 11, 12, 2] if keep_best else [10, 11, 12])
    assert dip.checkpoint == "sim://" + dip.trial_id + "/12"  # the latest, whatever the order
    for result in grid:
        saved = sorted(result.best_checkpoints, key=lambda cm: cm[1]["step"])
        expected = _rays_order(saved, "loss" if keep_best else None, "min")
        assert [c.path for c, _ in result.best_checkpoints] == expected
    assert dip.get_best_checkpoint("loss", "min") == f"sim://{dip.trial_id}/{2 if keep_best else 10}"
    assert dip.get_best_checkpoint("step", "max") == f"sim://{dip.trial_id}/12"
    with pytest.raises(ResultsMissing, match="Invalid metric name nope"):
        dip.get_best_checkpoint("nope", "min")
    with pytest.raises(ResultsError, match="Unsupported mode"):
        dip.get_best_checkpoint("loss", "best")


def test_result_from_path_reads_one_trial(tmp_path: Path) -> None:
    folder = _run(tmp_path, CHECKPOINTED.replace("KEEP_BEST", "true"))
    grid = tuner.load(folder)
    one = tuner.TrialResult.from_path(folder, trial_id=grid[1].trial_id)
    assert one.trial_id == grid[1].trial_id and one.config == grid[1].config
    assert one.metrics == grid[1].metrics and one.metrics["config"] == one.config
    assert one.filesystem.get_file_info(one.path).type.name == "Directory"
    with pytest.raises(ResultsError, match="holds 3 trials: pass trial_id= one of t0001, t0002, t0003"):
        tuner.TrialResult.from_path(folder)
    with pytest.raises(ResultsError, match="no trial 'nope'"):
        tuner.TrialResult.from_path(folder, trial_id="nope")
    with pytest.raises(ResultsMissing, match="no such trial folder"):
        tuner.TrialResult.from_path(tmp_path / "missing")
    with pytest.raises(ResultsMissing, match="not a trial of a Ray Tune experiment"):
        tuner.TrialResult.from_path(tmp_path)


def test_a_failed_trials_error_carries_its_whole_traceback(tmp_path: Path) -> None:
    """As Ray's ``RayTaskError``: the whole message, an instance of its cause's class; its
    last line stays the ``error`` column and compares equal to it."""
    folder = _run(tmp_path, FAILING)
    grid = tuner.load(folder)
    (error,) = grid.errors
    text = str(error)
    assert text.startswith("Traceback (most recent call last):") and 'in breaks\n    raise ValueError(f"bad x' in text
    assert text.splitlines()[-1] == error.line == "ValueError: bad x 0.9"
    assert error == "ValueError: bad x 0.9" and error == text
    assert isinstance(error, ValueError) and isinstance(error, TrialError)
    assert isinstance(error.cause, ValueError) and str(error.cause) == "bad x 0.9"
    with pytest.raises(ValueError, match=r"bad x 0\.9"):
        raise error
    again = pickle.loads(pickle.dumps(error))
    assert again == error and str(again) == text and isinstance(again, ValueError)
    assert list(tuner.load_results(folder)["error"].dropna()) == ["ValueError: bad x 0.9"]


RETRIED = """
name: retried
trainable: tests.results.curves:broken_then_silent
backend: simulated
metric: {name: loss, goal: minimize}
method: grid
seed: 1
max_concurrent: 1
max_failures: 2
on_failure: {user_exception: retry}
storage: STORAGE
early_terminate: {type: asha, max_t: 4, grace_period: 4, reduction_factor: 2}
parameters:
  tag: {values: [TAG]}
"""


def test_a_retried_trials_error_is_its_last_attempts_alone(tmp_path: Path) -> None:
    """The first attempt raised (its traceback is logged); the retry failed with an error the
    engine decided, which has no traceback: the error is that line alone, not the first
    attempt's traceback with it."""
    folder = _run(tmp_path, RETRIED.replace("TAG", str(tmp_path)))
    (trial,) = tuner.load(folder).trials
    assert (folder / "logs" / f"{trial.trial_id}.log").is_file()  # the first attempt's traceback
    assert str(trial.error).startswith("metric 'loss' was not reported at step 3")
    assert "first attempt broke" not in str(trial.error) and not isinstance(trial.error, ValueError)


def test_an_error_without_a_log_is_its_line_and_odd_kinds_stay_plain() -> None:
    assert str(TrialError("stalled: no report for 60 s")) == "stalled: no report for 60 s"
    assert TrialError("stalled: x").cause is None and not isinstance(TrialError("RuntimeWarning: x"), Warning)
    key = TrialError("KeyError: 'lr'")
    assert str(key) == "KeyError: 'lr'" and isinstance(key, KeyError)
    oserror = TrialError("FileNotFoundError: [Errno 2] data.csv")  # OSError's family makes its own
    assert type(oserror) is TrialError and isinstance(oserror.cause, FileNotFoundError)


def test_public_analysis_scripts_run_on_a_study(tmp_path: Path) -> None:
    """Reading code of public Ray Tune analysis scripts, as written, on ``tuner.load(folder)``:
    conflick0/CardiacSeg ``expers/chgh/tune_anal.py`` (each result's error, its
    ``metrics['trial_id']`` and ``metrics['config']``) and seokjin1013/FSR-prediction
    ``fsr_predictor.py`` (``best_checkpoints[-1]`` as each trial's best)."""
    folder = _run(tmp_path, CHECKPOINTED.replace("KEEP_BEST", "true"))
    result_grid = tuner.load(folder)
    lines = []
    for i, result in enumerate(result_grid):  # tune_anal.py
        if result.error:
            lines.append(f"Trial #{i} had an error: {result.error}")
            continue
        lines.append(f"Trial {result.metrics['trial_id']}: {result.metrics['config']} {result.metrics['loss']}")
    best_result = result_grid.get_best_result(metric="loss", mode="min")
    assert best_result.metrics["config"] == {"shape": "down"} and len(lines) == 3

    metric, target, mode = "loss", float("inf"), False  # fsr_predictor.get_best_checkpoint, mode "min"
    for result in result_grid:
        if result.best_checkpoints:
            checkpoint, metrics = result.best_checkpoints[-1]
            if target > metrics[metric] * (-1 if mode else 1):
                target = metrics[metric] * (-1 if mode else 1)
                best_checkpoint, best_metrics = checkpoint, metrics
    dip = next(r for r in result_grid if r.config["shape"] == "dip")
    assert best_checkpoint == f"sim://{dip.trial_id}/2" and best_metrics["loss"] == pytest.approx(0.005)


def test_a_tune_trials_error_is_its_last_failure_in_error_txt(tmp_path: Path) -> None:
    """Tune appends a block a failure to ``error.txt`` (Ray's ``Trial.handle_error``); the error
    is the last one's message, ``str()`` of what Ray unpickles from ``error.pkl``."""
    from tuner.results._tune_folder import _error

    first = "ray::ImplicitFunc.train() (pid=1, ip=127.0.0.1)\n  File \"t.py\", line 3, in f\nKeyError: 'a'"
    last = 'ray::ImplicitFunc.train() (pid=2, ip=127.0.0.1)\n  File "t.py", line 9, in f\nValueError: bad lr'
    (tmp_path / "error.txt").write_text(
        f"Failure # 1 (occurred at 2025-01-02_03-04-05)\n{first}\n"
        f"Failure # 2 (occurred at 2025-01-02_03-04-09)\n{last}\n"
    )
    error = _error(tmp_path, "error.txt")
    assert error is not None and str(error) == last and error.line == "ValueError: bad lr"
    assert isinstance(error, ValueError) and _error(tmp_path, "missing.txt") is None
