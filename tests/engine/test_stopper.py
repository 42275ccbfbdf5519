"""``stopper:``: a Ray Tune stopper (a function, a Stopper instance or class) named in the study.
Whole studies on the simulated backend (no Ray started): each report is passed as Tune's result,
``True`` finishes the trial, ``stop_all()`` ends the study."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

import tuner
from tests.conftest import study
from tests.engine import stoppers
from tuner.errors import ConfigError

BODY = """
name: stopped
trainable: tests.engine.curves:falling
backend: simulated
metric: {{name: loss}}
method: grid
max_concurrent: 3
stop: {{training_iteration: {steps}}}
stopper: {stopper}
parameters:
  x: {{values: {xs}}}
"""


@pytest.fixture(autouse=True)
def _no_ray_started(no_ray: None, in_tmp: Path) -> None:
    """Every test here runs in a scratch folder and fails if anything starts Ray."""


def run(
    stopper: str, steps: int = 10, xs: str = "[0.1, 0.3, 0.9]", trainable: str = "curves:falling"
) -> tuple[pd.DataFrame, tuner.Outcomes]:
    body = BODY.format(stopper=stopper, steps=steps, xs=xs).replace("curves:falling", trainable)
    out = tuner.run(study(body, allow_modules=["tests"]), quiet=True)
    return tuner.load_results(out.folder).set_index("params_x").sort_index(), out


def test_a_stop_function_gets_tunes_result_and_finishes_the_trial() -> None:
    # loss = x + 1/step: below 0.5 at step 3 for x=0.1, step 6 for x=0.3; x=0.9 never (its budget, 10)
    stoppers.SEEN.clear()
    trials, _ = run("tests.engine.stoppers:below_half")
    assert list(trials["status"]) == ["finished"] * 3
    assert list(trials["step"]) == [3, 6, 10]
    trial_id, result = stoppers.SEEN[0]
    assert trial_id == "t0001" and result["trial_id"] == "t0001"
    assert set(result) == {"loss", "training_iteration", "time_total_s", "trial_id", "config", "done"}
    assert (result["training_iteration"], result["time_total_s"], result["done"]) == (1, 1.0, False)
    assert result["config"] == {"x": 0.1} and result["loss"] == pytest.approx(1.1)
    assert len(stoppers.SEEN) == 3 + 6 + 10  # every report, the last one too


def test_rays_maximum_iteration_stopper() -> None:
    trials, out = run("tests.engine.ray_stoppers:three")
    assert list(trials["step"]) == [3, 3, 3] and set(trials["status"]) == {"finished"}
    assert out.stop_reason is None


def test_rays_trial_plateau_stopper_finishes_each_trial_where_its_curve_levels_off() -> None:
    # loss = max(x, 1/step): flat from step 4 for x=0.25 and step 10 for x=0.1 (its last 3 equal
    # two steps later); x=0.05 levels off at step 20, after its budget of 15
    trials, _ = run("tests.engine.ray_stoppers:plateau", 15, "[0.25, 0.1, 0.05]", "stoppers:flattens")
    assert list(trials["status"]) == ["finished"] * 3
    assert trials.loc[0.25, "step"] == 6 and trials.loc[0.1, "step"] == 12 and trials.loc[0.05, "step"] == 15


def test_each_study_has_its_own_copy_of_a_module_level_stopper() -> None:
    from tests.engine import ray_stoppers

    for _ in range(2):  # the same trial ids twice: a shared MaximumIterationStopper would stop at step 1
        trials, _ = run("tests.engine.ray_stoppers:three")
        assert list(trials["step"]) == [3, 3, 3]
    assert not ray_stoppers.three._iter  # the module's own instance was never asked


def test_stop_all_ends_the_study_and_stops_the_running_trials() -> None:
    # a Stopper class made with no arguments: x=0.1 is done at its first report (x=1.5 starts in
    # its slot); after five reports (steps 1 of three trials, steps 2 of two) stop_all is true:
    # the running trials are stopped, x=1.5 before its first report, and x=2.0 never starts
    trials, out = run("tests.engine.ray_stoppers:FiveReports", xs="[0.1, 0.3, 0.9, 1.5, 2.0]")
    assert trials.loc[0.1, "status"] == "finished" and trials.loc[0.1, "step"] == 1
    assert list(trials.loc[[0.3, 0.9, 1.5], "status"]) == ["stopped"] * 3
    assert list(trials.loc[[0.3, 0.9], "step"]) == [2, 2]
    assert 2.0 not in trials.index
    assert out.stop_reason == "stopper tests.engine.ray_stoppers:FiveReports: stop_all() returned true"
    assert "stopped: stopper tests.engine.ray_stoppers:FiveReports" in str(trials.loc[0.3, "error"])


def test_a_stopper_without_stop_all_never_ends_the_study() -> None:
    trials, out = run("tests.engine.ray_stoppers:NoStopAll")
    assert list(trials["step"]) == [2, 2, 2] and out.stop_reason is None


def test_a_stopper_that_raises_ends_the_study_with_its_error() -> None:
    trials, out = run("tests.engine.stoppers:raises")
    assert out.stop_reason == "stopper tests.engine.stoppers:raises raised KeyError: 'val_loss'"
    # raised at t0001's step 2: the trials are stopped there, the others before their step 2 counts
    assert set(trials["status"]) == {"stopped"} and list(trials["step"]) == [2, 1, 1]


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("elsewhere.stops:plateau", "stopper: module 'elsewhere.stops' is not allowed to run; allowed: trainables.*"),
        ("tests.engine.nowhere:plateau", "stopper: cannot import 'tests.engine.nowhere:plateau': ModuleNotFoundError"),
        ("tests.engine.stoppers:missing", "stopper: cannot import 'tests.engine.stoppers:missing': AttributeError"),
        ("tests.engine.stoppers:NOT_CALLABLE", "stopper: 'tests.engine.stoppers:NOT_CALLABLE' is a int, not a Stopper"),
        ("tests.engine.stoppers:Needs", "is a class whose constructor needs arguments; name a module-level instance"),
        ("tests.engine.stoppers:takes_one", "must take (trial_id, result), as a Ray Tune stopper"),
        ("plateau", "stopper: must be a dotted path 'package.module:name', got 'plateau'"),
    ],
)
def test_a_stopper_that_cannot_be_one_is_a_one_line_error(name: str, error: str) -> None:
    with pytest.raises(ConfigError) as exc:
        study(BODY.format(stopper=name, steps=5, xs="[0.1]"), allow_modules=["tests"])
    text = str(exc.value)
    assert error in text and len(text.splitlines()) == 1


def test_the_cli_exits_2_naming_stopper(tmp_path: Path) -> None:
    from tuner.cli import main

    path = tmp_path / "s.yaml"
    path.write_text(BODY.format(stopper="tests.engine.stoppers:Needs", steps=5, xs="[0.1]"))
    assert main(["run", str(path), "--allow-module", "tests"]) == 2


def test_plan_says_the_stopper() -> None:
    from tuner.plan import describe, make_plan

    s = study(BODY.format(stopper="tests.engine.stoppers:below_half", steps=5, xs="[0.1]"), allow_modules=["tests"])
    assert "stopper: tests.engine.stoppers:below_half is asked at each report" in describe(s, make_plan(s, 1, "here"))


def test_a_stop_function_loads_and_runs_without_importing_ray(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys, textwrap, tuner
        from tuner.config import load_study
        body = {BODY.format(stopper="tests.engine.stoppers:below_half", steps=4, xs="[0.1]")!r}
        out = tuner.run(load_study(text=body, allow_modules=["tests"]), quiet=True)
        assert out.counts["finished"] == 1, out.counts
        assert not any(m == "ray" or m.startswith("ray.") for m in sys.modules), "ray imported"
        """
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_resumed_study_passes_the_journals_reports_to_its_stopper_again() -> None:
    # as test_rays_trial_plateau_stopper...: x=0.1 levels off at step 10, its last 3 equal at 12.
    # Interrupted at its step 11, it continues from its checkpoint at step 10: the plateau stopper,
    # imported again, is passed steps 1-10 from the journal first, so it still stops at 12
    body = BODY.format(stopper="tests.engine.ray_stoppers:plateau", steps=15, xs="[0.25, 0.1]")
    body = body.replace("curves:falling", "stoppers:flattens_interrupted")
    out = tuner.run(study(body, allow_modules=["tests"]), quiet=True)
    assert out.interrupted
    saved = out.folder / "study.yaml"
    saved.write_text(saved.read_text().replace("stoppers:flattens_interrupted", "stoppers:flattens"))
    again = tuner.resume(out.folder, quiet=True, allow_modules=["tests"])
    assert not again.interrupted
    trials = tuner.load_results(out.folder).set_index("params_x").sort_index()
    assert list(trials["status"]) == ["finished", "finished"]
    assert trials.loc[0.25, "step"] == 6 and trials.loc[0.1, "step"] == 12
