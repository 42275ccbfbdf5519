"""``tracking: {wandb: {mode: offline}}``: a W&B run per trial grouped by the study, read back
from the run files W&B wrote; and the live TensorBoard tracker beside it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

import tuner
from tests.conftest import study
from tests.tracking.readback import SIMULATED, saved_curves, tensorboard_scalars, wandb_runs

pytest.importorskip("wandb")


def test_offline_runs_one_per_trial_grouped_by_the_study(tmp_path: Path) -> None:
    tracking = f"    wandb: {{project: tuned, mode: offline}}\n    tensorboard: {{dir: '{tmp_path / 'tb'}'}}"
    text = SIMULATED.format(fn="breaks", cap=6, tracking=tracking)
    out = tuner.run(study(text, allow_modules=["tests"], storage=str(tmp_path / "results")), quiet=True)
    trials = pd.read_parquet(out.folder / "trials.parquet").set_index("trial_id")
    runs = wandb_runs(out.folder)  # W&B's files go to the results folder unless wandb.dir says
    assert sorted(runs) == sorted([*trials.index, "sim"])
    curves = saved_curves(out.folder)
    for trial_id, row in trials.iterrows():
        run = runs[str(trial_id)]
        assert (run.group, run.job_type, run.project) == ("sim", "trial", "tuned")
        assert run.config == {"x": row["params_x"]}
        assert sorted((h["_step"], h["loss"]) for h in run.history) == curves[str(trial_id)]
        assert run.summary["status"] == row["status"]
        assert run.exit_code == (1 if row["status"] == "errored" else 0)
        board = tensorboard_scalars(tmp_path / "tb" / str(trial_id), "loss")  # float32 in TensorBoard
        assert [s for s, _ in board] == [s for s, _ in curves[str(trial_id)]]
        assert [v for _, v in board] == pytest.approx([v for _, v in curves[str(trial_id)]], rel=1e-6)
    best = yaml.safe_load((out.folder / "best.yaml").read_text())["trial_id"]
    summary = runs["sim"].summary
    assert runs["sim"].job_type == "study" and summary["best_trial"] == best and summary["status"] == "done"


def test_a_resumed_study_continues_each_trials_run_under_its_id(tmp_path: Path) -> None:
    text = SIMULATED.format(fn="interrupted", cap=8, tracking="    wandb: {project: tuned, mode: offline}")
    out = tuner.run(study(text, allow_modules=["tests"], storage=str(tmp_path / "results")), quiet=True)
    assert out.interrupted
    running = {t for t, r in wandb_runs(out.folder).items() if r.summary.get("status") == "interrupted"}
    assert running
    study_file = out.folder / "study.yaml"
    study_file.write_text(study_file.read_text().replace("curves:interrupted", "curves:falling"))
    tuner.resume(out.folder, quiet=True, allow_modules=["tests"])
    runs = wandb_runs(out.folder)  # the reader refuses two run ids under one trial's name
    trials = pd.read_parquet(out.folder / "trials.parquet").set_index("trial_id")
    curves = saved_curves(out.folder)
    for trial_id, row in trials.iterrows():
        run = runs[str(trial_id)]
        assert run.files == (2 if trial_id in running else 1)
        assert sorted((h["_step"], h["loss"]) for h in run.history) == curves[str(trial_id)]
        assert run.summary["status"] == row["status"]
    assert runs["sim"].summary["status"] == "done"
