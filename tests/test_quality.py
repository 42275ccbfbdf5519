"""Lint, format and type checks, so that the one test command runs them all."""

from __future__ import annotations

import pytest

from tests.conftest import run_tool


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy"],
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_tool_passes(command: list[str]) -> None:
    code, output = run_tool(*command)  # mypy's was started when the tests were collected (tests/conftest.py)
    assert code == 0, output
