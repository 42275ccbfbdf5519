"""Sharded and pipelined studies end to end on a private Ray: ASHA prunes, a rank that dies is
retried from its checkpoint, and no rank is left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

import tuner
from tests.backends.ray.test_ddp import no_trial_workers_left
from tests.conftest import study

pytestmark = pytest.mark.slow

STUDY = """
name: {name}
trainable: trainables.toy:flaky_digits
metric: {{name: val_loss, goal: minimize}}
method: grid
max_failures: 1
resources: {resources}
early_terminate: {{type: asha, max_t: 4, grace_period: 2, reduction_factor: 2}}
parameters:
  die_at: {{value: 3}}  # the first trial (ASHA lets the first at a rung through) dies once at epoch 3
  fn: {{value: {fn}}}
  lr: {{values: [0.01, 0.0001]}}  # the second trial, far worse at epoch 2, is pruned before it could die
  checkpoint_every: {{value: 2}}
  hidden: {{value: 64}}
  layers: {{value: 2}}
  epochs: {{value: 4}}
"""


@pytest.mark.parametrize(
    ("name", "fn", "resources"),
    [
        ("fsdp", "train_mlp", "{workers: 2, strategy: fsdp}"),
        ("pipeline", "train_mlp_pipeline", "{workers: 2, strategy: pipeline, microbatches: 4, schedule: 1f1b}"),
    ],
)
def test_a_strategy_study_prunes_retries_and_leaves_no_rank(
    ray_local: None, in_tmp: Path, name: str, fn: str, resources: str
) -> None:
    out = tuner.run(study(STUDY.format(name=name, fn=fn, resources=resources)), quiet=True)
    trials = tuner.load_results(out.folder)
    history = tuner.load_history(out.folder)
    # ASHA stopped the second at its rung
    assert trials["status"].tolist() == ["finished", "pruned"], trials[["status", "error"]]
    first = trials.iloc[0]
    assert first["params_die_at"] == 3 and first["attempts"] == 1  # rank 1 exited at epoch 3: retried ...
    steps = list(history.loc[history["trial_id"] == first["trial_id"], "step"])
    assert steps[:4] == [1, 2, 3, 4]  # ... from epoch 2's checkpoint: epoch 3 again, then on
    assert history["val_loss"].notna().all() and (history["val_loss"] > 0).all()  # the last stage's, averaged
    assert no_trial_workers_left()

    # train --config: the best configuration trained once more; its model.pt is the whole model
    import torch

    from trainables.digits import mlp

    best = tuner.load_best(out.folder)
    config = {**best["config"], "die_at": 0}  # never dies
    done = tuner.train(
        study(STUDY.format(name=name, fn=fn, resources=resources)), config, out=in_tmp / "final", epochs=2
    )
    whole = mlp(config)
    whole.load_state_dict(torch.load(done["model"], weights_only=True))  # every layer, none sharded
    assert done["metrics"]["val_loss"] > 0


@pytest.mark.parametrize("name", ["digits_fsdp", "digits_pipeline"])
def test_the_shipped_examples_run(name: str, ray_local: None, tmp_path: Path) -> None:
    from tests.conftest import ROOT, cli_here

    space = ROOT / "search_spaces" / f"{name}.yaml"
    done = cli_here("run", str(space), "--run-cap", "3", "--no-dashboard", "--num-cpus", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    trials = tuner.load_results(tmp_path / "results" / name)
    assert len(trials) == 3 and set(trials["status"]) <= {"finished", "pruned"}
