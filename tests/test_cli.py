"""The CLI as a user meets it: a subprocess, its exit code, its output, its files (a failing run
through the same ``main`` in this process, on the session's Ray: tests/conftest.py ``cli_here``)."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, cli, cli_here


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.slow
def test_run_best_and_results(tmp_path: Path, ray_tmp: Path) -> None:
    shutil.copytree(ROOT / "trainables", tmp_path / "trainables")
    space = shutil.copy(ROOT / "search_spaces" / "toy.yaml", tmp_path / "toy.yaml")
    done = cli(
        "run", str(space), "--no-dashboard", "--num-cpus", "2", "--progress", "plain", cwd=tmp_path, ray_tmp=ray_tmp
    )
    assert done.returncode == 0, done.stderr
    assert "best t" in done.stdout and "results: results/toy" in done.stdout
    assert "Traceback" not in done.stderr
    # --progress plain (what a Ray job's log gets): the live view's lines, at least the final ones
    assert "trials started" in done.stderr and "finished" in done.stderr
    folder = tmp_path / "results" / "toy"
    assert {"trials.parquet", "history.parquet", "best.yaml", "study.yaml"} <= {p.name for p in folder.iterdir()}

    best = cli("best", str(folder), cwd=tmp_path)
    assert best.returncode == 0
    config = yaml.safe_load(best.stdout)
    assert set(config) == {"lr", "layers", "act", "steps"}
    assert config == yaml.safe_load((folder / "best.yaml").read_text())["config"]
    as_json = cli("best", str(folder), "--format", "json", cwd=tmp_path)
    assert json.loads(as_json.stdout) == config

    table = cli("results", str(folder), "--top", "3", cwd=tmp_path)
    assert table.returncode == 0
    assert sum(line.startswith("│ t0") for line in table.stdout.splitlines()) == 3


BROKEN = """
trainable: trainables.toy:quadratic
metric: {name: loss, goal: lowest}
method: bayes
run_cap: 5
color: blue
parameters:
  lr: {distribution: log_uniform_values, min: 0, max: 1}
  units: {values: []}
"""


def test_broken_yaml_exits_2_with_one_line_per_problem_and_writes_nothing(tmp_path: Path, ray_tmp: Path) -> None:
    space = write(tmp_path, "broken.yaml", BROKEN)
    done = cli("run", str(space), cwd=tmp_path, ray_tmp=ray_tmp)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 4, done.stderr
    assert all(line.startswith(f"error: {space}: ") for line in lines)
    text = "\n".join(lines)
    for path in ("metric.goal", "color", "parameters.lr.min", "parameters.units.values"):
        assert f": {path}: " in text
    assert not (tmp_path / "results").exists()
    assert not any(ray_tmp.iterdir())  # Ray never started


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["run", "missing.yaml"], "no such file: missing.yaml"),
        (["run", "toy.yaml", "--trainable", "trainables.nope:f"], "trainable: cannot import"),
        (["run", "toy.yaml", "--run-cap", "0"], "run_cap: Input should be greater than or equal to 1"),
        (["best", "nowhere"], "not a tuner results folder"),
    ],
)
def test_user_errors_exit_2(tmp_path: Path, args: list[str], match: str) -> None:
    shutil.copy(ROOT / "search_spaces" / "toy.yaml", tmp_path / "toy.yaml")
    done = cli(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert match in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_every_trial_failing_exits_1_without_best(ray_local: None, tmp_path: Path) -> None:
    space = write(
        tmp_path,
        "fail.yaml",
        """
        trainable: trainables.toy:faulty
        metric: {name: loss, goal: minimize}
        method: grid
        parameters:
          mode: {values: [raise, nan]}
    """,
    )
    done = cli_here("run", str(space), "--no-dashboard", "--num-cpus", "2", cwd=tmp_path)
    assert done.returncode == 1
    assert "RuntimeError: boom" in done.stderr and "nan" in done.stderr
    assert "no trial produced a value for loss" in done.stderr
    assert not (tmp_path / "results" / "fail" / "best.yaml").exists()
    assert (tmp_path / "results" / "fail" / "trials.parquet").exists()


def test_sigterm_while_ray_starts_is_an_interrupt_exit_130(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``ray.init`` sets a SIGTERM handler of its own (``sys.exit(signum)``) while it starts: a
    ``ray job stop`` or an eviction then was exit code 15, not the 130 of an interrupted run."""
    import os
    import signal
    import sys

    from tuner.backends.ray import _session

    def starting(*args: object, **kwargs: object) -> None:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))  # as ray.init does
        os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(_session, "connect", starting)
    shutil.copy(ROOT / "search_spaces" / "toy.yaml", tmp_path / "toy.yaml")
    try:
        done = cli_here("run", "toy.yaml", "--no-dashboard", cwd=tmp_path)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert (done.returncode, done.stderr.strip().splitlines()[-1]) == (130, "interrupted")
