"""The strict YAML reader."""

from __future__ import annotations

import math

import pytest

from tuner.config import parse_yaml
from tuner.errors import ConfigError


def test_exponent_floats_are_floats() -> None:
    data = parse_yaml("a: 1e-5\nb: 3E2\nc: -2.5e+3\nd: 1.0\ne: 7\n")
    assert data == {"a": 1e-5, "b": 300.0, "c": -2500.0, "d": 1.0, "e": 7}
    assert isinstance(data["b"], float)


def test_yes_no_stay_strings_true_false_are_booleans() -> None:
    assert parse_yaml("a: yes\nb: no\nc: on\nd: true\ne: False\n") == {
        "a": "yes",
        "b": "no",
        "c": "on",
        "d": True,
        "e": False,
    }


def test_nan_is_read_and_left_to_validation() -> None:
    assert math.isnan(parse_yaml("a: .nan\n")["a"])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("a: 1\na: 2\n", "duplicate key 'a'"),
        ("a: 010\n", "ambiguous number '010'"),
        ("a: !!python/object/apply:os.system ['true']\n", "tag not allowed"),
        ("a: [1, 2\n", "line"),
        ("- 1\n- 2\n", "must hold a mapping"),
        ("", "must hold a mapping"),
    ],
)
def test_rejected(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_yaml(text)


def test_duplicate_key_names_its_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_yaml("parameters:\n  lr: {value: 1}\n  lr: {value: 2}\n")
    assert info.value.problems[0].path == "line 3"
