"""Studies made from a validated one (``derive``), a results folder's study read once, and the one
place the sign for ``maximize`` lives."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

from tuner.config import Study, better, load_study, minimised
from tuner.errors import UserError
from tuner.results import STUDY, read_study, write_yaml
from tuner.space import Constant

STUDY_TEXT = """
name: base
trainable: trainables.toy:quadratic
metric: {name: score, goal: maximize, target: 0.99}
method: bayes
searcher: {seed: 3}
run_cap: 8
time_limit: 10m
early_terminate: {type: asha, max_t: 9}
parameters:
  lr: {distribution: log_uniform_values, min: 1e-4, max: 1e-1}
  opt: {values: [adam, sgd]}
"""


@pytest.fixture
def study() -> Study:
    return load_study(text=textwrap.dedent(STUDY_TEXT))


def test_derive_replaces_keys_and_keeps_the_rest(study: Study) -> None:
    final = study.derive(name="final", run_cap=None, early_terminate=None, searcher=None, final=True, time_limit=None)
    assert final.name == "final" and final.spec.final and final.spec.method == "bayes"
    assert final.spec.run_cap is None and final.spec.scheduler is None and final.spec.searcher == {}
    assert final.space == study.space and final.trainable == study.trainable and final.allowed == study.allowed
    assert final.raw["name"] == "final" and final.raw["final"] is True
    assert not {"run_cap", "early_terminate", "searcher", "time_limit"} & set(final.raw)
    assert study.name == "base" and study.spec.run_cap == 8  # the original is untouched


def test_derive_parses_a_new_parameters_block_and_records_models_as_yaml(study: Study) -> None:
    metric = study.spec.primary.model_copy(update={"target": None})
    fixed = study.derive(method="grid", parameters={"lr": {"value": 0.01}}, metric=metric)
    assert fixed.space.params == {"lr": Constant(0.01)} and not fixed.space.searchable
    assert fixed.raw["metric"] == {"name": "score", "goal": "maximize"} and fixed.maximize
    assert fixed.trial_count() == 1


def test_derive_refuses_what_is_not_a_study_key(study: Study) -> None:
    with pytest.raises(TypeError, match="'runcap' is not a key"):
        study.derive(runcap=3)


def test_read_study_turns_the_recorded_file_into_a_study(study: Study, tmp_path: Path) -> None:
    write_yaml(tmp_path / STUDY, {**study.raw, "name": "base-2", "seed": 42})
    again = read_study(tmp_path, check_import=False)
    assert again.name == "base-2" and again.spec.seed == 42 and again.space == study.space
    moved = read_study(tmp_path, trainable="trainables.toy:sleep", check_import=False)
    assert moved.trainable == "trainables.toy:sleep" and moved.raw["trainable"] == "trainables.toy:sleep"
    with pytest.raises(UserError, match="not a tuner results folder"):
        read_study(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("maximize", "a", "b", "a_better"),
    [(False, 1.0, 2.0, True), (False, 2.0, 1.0, False), (True, 2.0, 1.0, True), (True, 1.0, 1.0, False)],
)
def test_better_follows_the_goal(maximize: bool, a: float, b: float, a_better: bool) -> None:
    assert better(a, b, maximize) is a_better
    assert minimised(a, maximize) == (-a if maximize else a)


def test_study_owns_its_direction(study: Study) -> None:
    assert study.sign == -1.0 and study.minimised(0.5) == -0.5 and study.better(0.9, 0.8)
    flipped = study.derive(metric=study.spec.primary.model_copy(update={"goal": "minimize"}))
    assert flipped.sign == 1.0 and flipped.better(0.8, 0.9)
    assert np.array_equal(minimised(np.array([1.0, -2.0]), True), np.array([-1.0, 2.0]))
    assert yaml.safe_dump(flipped.raw["metric"]) == yaml.safe_dump(
        {"name": "score", "goal": "minimize", "target": 0.99}
    )
