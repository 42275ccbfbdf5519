"""Whole study files: everything wrong is found at once, before anything runs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from tuner.config import Hyperband, load_study
from tuner.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

GOOD = """
trainable: trainables.toy:quadratic
metric: {name: loss, goal: minimize}
method: random
run_cap: 4
parameters:
  lr: {distribution: log_uniform_values, min: 1e-4, max: 1e-1}
"""


def study_text(extra: str = "", base: str = GOOD) -> str:
    """``base`` with the keys of ``extra`` replacing its own."""
    merged = {**yaml.safe_load(textwrap.dedent(base)), **(yaml.safe_load(textwrap.dedent(extra)) or {})}
    return yaml.safe_dump(merged)


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_study(text=text)
    return [str(p) for p in info.value.problems]


def test_good_study_loads_frozen() -> None:
    study = load_study(text=study_text("early_terminate: {type: asha, max_t: 9}\ntime_limit: 2m\n"))
    assert study.metric == "loss" and not study.maximize
    assert study.spec.time_limit == 120
    assert study.spec.scheduler is not None and study.spec.scheduler.max_t == 9
    with pytest.raises(Exception, match="frozen"):
        study.spec.run_cap = 5  # type: ignore[misc]


@pytest.mark.parametrize("path", sorted((ROOT / "search_spaces").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_search_spaces_load(path: Path) -> None:
    # W&B sweep files name no trainable: the README runs them with --trainable.
    trainable = None if "trainable:" in path.read_text() else "trainables.digits:train_mlp"
    study = load_study(path, trainable=trainable)
    assert study.name


def test_every_problem_at_once_with_paths() -> None:
    text = """
    trainable: trainables.toy:quadratic
    metric: {name: loss, goal: maximise}
    method: bayes
    run_cap: 0
    bogus: 1
    parameters:
      lr: {distribution: log_uniform_values, min: 0, max: 1}
      n: {values: []}
    """
    found = problems(textwrap.dedent(text))
    assert any(p.startswith("metric.goal:") for p in found)
    assert any(p.startswith("run_cap:") for p in found)
    assert "bogus: unknown key" in found
    assert any(p.startswith("parameters.lr.min: must be > 0") for p in found)
    assert any(p.startswith("parameters.n.values:") for p in found)


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ("method: simplex\n", "method: unknown method 'simplex'; one of grid, random, bayes, optuna"),
        ("searcher: {init_points: 3}\n", "searcher.init_points: unknown key"),
        ("early_terminate: {type: asha, max_t: 2, grace_period: 5}\n", "max_t (2) must be >= grace_period (5)"),
        ("early_terminate: {type: asha, reduction_factor: 1}\n", "early_terminate.reduction_factor"),
        ("early_terminate: {type: bandit}\n", "early_terminate.type: type must be one of asha, hyperband, median"),
        ("resources: {cpus: 1, cpus_per_worker: 2}\n", "resources: give cpus or cpus_per_worker, not both"),
        ("resources: {workers: 0}\n", "resources.workers"),
        ("on_oom: retry\n", "on_oom: Input should be 'halve_batch' or 'infeasible'"),
        ("resources: {cpus: 0}\n", "resources.cpus"),
        ("time_limit: soon\n", "time_limit: must be seconds or a duration"),
        ("run_cap: '10'\n", "run_cap: Input should be a valid integer"),
        ("trainable: trainables.nope:train\n", "trainable: cannot import 'trainables.nope:train'"),
        ("trainable: trainables.toy:missing\n", "has no attribute 'missing'"),
        ("trainable: 'os.system; rm'\n", "trainable: must be a dotted path"),
    ],
)
def test_rejected_with_a_clear_line(extra: str, match: str) -> None:
    found = problems(study_text(extra))
    assert any(match in p for p in found), found


def test_grid_over_continuous_range_says_what_to_write() -> None:
    found = problems(study_text("method: grid\n"))
    assert found == [
        "parameters.lr: grid needs a finite set of values, got a continuous log-scale float range "
        "[0.0001, 0.1]; write values: [...], or add q: (q_uniform), or use method random/bayes/optuna"
    ]


def test_random_without_run_cap_or_time_limit_runs_until_stopped() -> None:
    uncapped = load_study(text=study_text().replace("run_cap: 4\n", ""))
    assert uncapped.trial_count() is None and "runs until stopped" in uncapped.notices[-1]


def test_a_model_that_would_never_propose_is_announced() -> None:
    """A run_cap no larger than the random start-up draws makes a model-based searcher random
    search: said before the run (and in ``plan``), naming the option; the study still runs."""

    def notices(extra: str) -> list[str]:
        return [n.removeprefix("<string>: ") for n in load_study(text=study_text(extra)).notices]

    (bayes,) = notices("method: bayes\nrun_cap: 10")
    assert bayes.startswith("bayes draws its first 10 trials at random (searcher.init_points) and run_cap allows 10")
    assert "set searcher: {init_points: N} below 10" in bayes
    assert notices("method: bayes\nrun_cap: 11") == []
    assert notices("method: bayes\nrun_cap: 6\nsearcher: {init_points: 5}") == []
    (tpe,) = notices("method: optuna\nrun_cap: 4\nsearcher: {n_startup_trials: 4}")
    assert "optuna (tpe)" in tpe and "searcher.n_startup_trials" in tpe
    assert notices("method: optuna\nrun_cap: 4\nsearcher: {sampler: random}") == []
    assert notices("method: random\nrun_cap: 2") == []
    cells = "method: bayes\nrun_cap: 24\nparameters: {lr: {min: 0.1, max: 1.0}, opt: {values: [a, b, c], grid: true}}"
    (per_cell,) = notices(cells)  # 8 trials in each of 3 cells, each cell its own model
    assert "run_cap allows 8 per grid cell (24 over 3)" in per_cell
    assert notices(cells.replace("run_cap: 24", "run_cap: 33")) == []


def test_wandb_sweep_file_loads_with_trainable_flag() -> None:
    text = """
    program: train.py
    command: [python, train.py]
    project: demo
    method: grid
    metric: {name: loss, goal: minimize}
    parameters:
      lr: {values: [0.1, 0.01]}
      layers: {distribution: int_uniform, min: 1, max: 3}
    early_terminate: {type: hyperband, min_iter: 2, max_iter: 8, eta: 2}
    """
    study = load_study(text=textwrap.dedent(text), trainable="trainables.toy:quadratic")
    assert any("program" in n for n in study.notices)
    hyperband = study.spec.scheduler
    assert isinstance(hyperband, Hyperband) and hyperband.bands() == [2, 4]  # W&B's: 8 / 2, 8 / 4, down to min_iter
    assert study.spec.step_budget is None  # W&B does not stop a run at max_iter
