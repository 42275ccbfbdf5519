"""Trusting and inspecting the trainable before any trial runs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from trainables import digits, toy
from tuner.config import allowed_modules, load_study, reported_metrics
from tuner.config._trainable import is_allowed
from tuner.errors import ConfigError

STUDY = """
trainable: {trainable}
metric: {{name: loss, goal: minimize}}
method: grid
parameters:
  x: {{value: 1}}
"""


def test_metrics_are_read_through_helper_functions() -> None:
    reported = {"train_loss", "val_loss", "val_accuracy", "params_k", "test_loss", "test_accuracy"}
    assert reported_metrics(digits.train_mlp) == reported
    assert reported_metrics(toy.quadratic) == {"loss", "score"}


def test_prefixes_match_whole_module_names() -> None:
    assert is_allowed("trainables.digits", ["trainables"])
    assert is_allowed("trainables", ["trainables"])
    assert not is_allowed("trainablesX.evil", ["trainables"])
    assert not is_allowed("os", ["trainables"])


def test_more_modules_come_from_the_command_line_or_pyproject(tmp_path: Path) -> None:
    assert allowed_modules(root=tmp_path) == ("trainables",)
    assert allowed_modules(["mylab."], root=tmp_path) == ("trainables", "mylab")
    (tmp_path / "pyproject.toml").write_text('[tool.tuner]\nallowed_modules = ["research.models"]\n')
    assert allowed_modules(root=tmp_path) == ("trainables", "research.models")


def test_a_module_outside_the_prefixes_is_not_even_imported() -> None:
    text = textwrap.dedent(STUDY.format(trainable="tests.elsewhere:train"))
    with pytest.raises(ConfigError, match=r"module 'tests\.elsewhere' is not allowed to run"):
        load_study(text=text)
    assert load_study(text=text, allow_modules=["tests"]).trainable == "tests.elsewhere:train"
