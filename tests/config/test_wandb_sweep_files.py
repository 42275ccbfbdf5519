"""Sweep files as people write them for W&B, read by the study loader: each loads with W&B's
meaning (and its trial's command comes out as W&B's agent would start it), or is refused in one
line per problem, as W&B refuses it. The files, under tests/data/wandb_sweeps/, are shaped after
public repositories; each names its source in its first lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tuner import searchers
from tuner.config import PROGRAM_SETTINGS, load_study
from tuner.config._program import RUNNER
from tuner.errors import ConfigError
from tuner.integrations.wandb import command_line

FILES = Path(__file__).resolve().parents[1] / "data" / "wandb_sweeps"

# file: (method, metric, goal, parameters, the command's start for one trial, or None when the file
# has no program: a trainable must be given)
LOADS: dict[str, tuple[str, str, bool, list[str], list[str] | None]] = {
    "coenvde_research_template": (
        "bayes",
        "val/loss",
        False,
        ["model.lr", "model.hidden_dim", "model.warmup_frac"],
        ["/usr/bin/env", "python", "-m", "src.train", "fit", "--config", "configs/base.yaml", "--model.lr="],
    ),
    "jetbrains_docs_fine_tuning": (
        "bayes",
        "best_w_f1",
        True,
        ["learning_rate", "warmup_ratio", "weight_decay", "epochs", "dataset", "domain_adaptation_tasks"],
        ["/usr/bin/env", "<python>", "<program>", "--learning_rate="],
    ),
    "hekpomah_dear": (
        "bayes",
        "val/loss/min_loss_so_far",
        False,
        ["jac_reg", "weight_decay", "deq.deq_max_iter", "seed"],
        None,
    ),
    "ackesnal_repavit": (
        "bayes",
        "accuracy",
        True,
        ["batch_size", "opt", "lr", "min_lr", "warmup_epochs", "weight_decay", "shortcut_gain"],
        None,
    ),
    "mario_rl_research": (
        "bayes",
        "train/mean_reward_eval_smoothed",
        True,
        ["learning_rate", "gamma", "epsilon_decay", "memory_capacity"],
        ["/usr/bin/env", "<python>", "<program>", "--learning_rate="],
    ),
    "ashwinsankar_da6401": (
        "bayes",
        "val/acc",
        True,
        ["hidden_dim", "rnn_cell_type", "dropout", "encoder_bidirectional", "learning_rate"],
        ["/usr/bin/env", "<python>", "<program>", "--hidden_dim="],
    ),
    "sominesawa_tcuss": (
        "bayes",
        "val_loss",
        True,
        ["dropout", "learn_rate", "decay", "epochs"],
        ["/usr/bin/env", "<python>", "<program>", "--dropout="],
    ),
    "jesseguerrero_convlstm": (
        "bayes",
        "final/best_val_loss",
        False,
        ["hidden_dims", "learning_rate", "kernel_size", "use_temporal_fusion", "precision"],
        ["/usr/bin/env", "python", "<program>", "hidden_dims=["],
    ),
    "alexblck_ml_boilerplate": (
        "grid",
        "val_loss",
        False,
        ["optimizer.init_args.lr", "data.hparams.batch_size"],
        ["<python>", "<program>", "fit", "--config", "configs/trainer.yaml", "--config", '{"optimizer.init_args.lr": '],
    ),
    "flairox_envelope_bench": (
        "grid",
        "mean_return",
        True,
        ["total_timesteps", "env_name", "seed", "policy_lr", "normalize_rewards"],
        ["python", "-m", "ppo_vmap.ppo", "--total_timesteps=100000000"],
    ),
    "alexanderhberger_3d_segmentation": (
        "random",
        "val/dice_mean",
        True,
        ["learning_rate", "weight_decay", "momentum", "tversky_beta"],
        ["/usr/bin/env", "<python>", "<program>", "--learning_rate="],
    ),
}
REFUSED = {
    "arnie_he_blpo": [
        "parameters.CLIP_EPS: values not used by distribution uniform",
        "parameters.NUM_ENVS: values not used by distribution int_uniform",
        "parameters.actor-LR: value not used by distribution uniform",
    ],
    "andy20178_dcl": [
        "parameters.lr: grid needs a finite set of values, got a continuous float range [1e-05, 0.1]; "
        "write values: [...], or add q: (q_uniform), or use method random/bayes/optuna"
    ],
}


def test_every_file_here_is_in_a_table() -> None:
    assert {p.stem for p in FILES.glob("*.yaml")} == set(LOADS) | set(REFUSED)
    assert sum(1 for m, *_ in LOADS.values() if m == "bayes") + 1 >= 8  # BLPO's file is bayes too


def _one_command(study: Any, seed: int) -> list[str]:
    """The command W&B's agent would start for the searcher's first configuration (constants filled in,
    as the engine fills them)."""
    searcher = searchers.create(study.spec.method, study.space, seed, dict(study.spec.searcher), run_cap=None)
    config = searcher.suggest("t0")
    assert config is not None and not study.space.problems(config), config
    settings = json.loads(study.env[PROGRAM_SETTINGS])
    nested = study.space.nest(study.space.complete(config))
    return command_line(settings["command"], settings["program"], nested, "/w/a.json", {})


@pytest.mark.parametrize("name", list(LOADS))
def test_a_sweep_file_loads_with_wandbs_meaning(name: str) -> None:
    method, metric, maximize, params, start = LOADS[name]
    path = FILES / f"{name}.yaml"
    study = load_study(path, run_cap=12, check_import=False, trainable=None if start else "trainables.toy:quadratic")
    assert study.spec.method == method
    assert study.objectives[0] == (metric, maximize)
    assert set(params) <= set(study.space.params), sorted(study.space.params)
    if start is None:
        return
    assert study.trainable == RUNNER
    program = study.raw.get("program")
    line = _one_command(study, seed=0)
    want = [{"<python>": None, "<program>": program}.get(part, part) for part in start]
    for i, part in enumerate(want[:-1]):
        assert part is None or line[i] == part, line  # None: the Python that runs tuner
    assert line[len(want) - 1].startswith(want[-1]), line


@pytest.mark.parametrize("name", list(REFUSED))
def test_a_sweep_file_that_wandb_refuses_is_refused_line_by_line(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_study(FILES / f"{name}.yaml", run_cap=12, check_import=False)
    assert [str(p) for p in info.value.problems] == REFUSED[name]


def test_a_file_without_program_or_trainable_names_both() -> None:
    with pytest.raises(ConfigError) as info:
        load_study(FILES / "hekpomah_dear.yaml", run_cap=4, check_import=False)
    assert [str(p) for p in info.value.problems] == [
        "trainable: is required (in the YAML or as --trainable), or a W&B program"
    ]


def test_a_command_without_program_cannot_use_the_program_macro(tmp_path: Path) -> None:
    text = (FILES / "flairox_envelope_bench.yaml").read_text(encoding="utf-8").replace("  - -m\n", "  - ${program}\n")
    with pytest.raises(ConfigError) as info:
        load_study(text=text, run_cap=4, check_import=False)
    assert [str(p) for p in info.value.problems] == ["command[1]: ${program} needs the file's program, and it has none"]
