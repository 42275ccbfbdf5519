"""A corpus of broken and hostile study files: each is refused before anything happens.

Every file under ``tests/hostile/`` starts with ``# expect:`` lines, one per problem the
user must be told about. ``run`` must exit 2 with exactly those lines (each naming its
YAML path), create no results folder, and never start Ray.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tuner.cli import main

CORPUS = sorted((Path(__file__).parent / "hostile").glob("*.yaml"))


def test_the_corpus_is_large() -> None:
    assert len(CORPUS) >= 40


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_refused_with_one_line_per_problem(
    path: Path, in_tmp: Path, no_ray: None, capsys: pytest.CaptureFixture[str]
) -> None:
    expects = [
        line.removeprefix("# expect: ").strip()
        for line in path.read_text().splitlines()
        if line.startswith("# expect: ")
    ]
    code = main(["run", str(path), "--no-dashboard"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == len(expects), err
    for line, expected in zip(err, expects, strict=True):
        assert line.startswith(f"error: {path}: "), line
        assert expected in line, (expected, line)
    assert not (in_tmp / "results").exists()
    assert not Path("/tmp/pwned").exists()
