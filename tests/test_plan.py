"""``plan``: checks and arithmetic before any compute, without starting Ray."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from tuner.cli import main
from tuner.config import load_study
from tuner.plan import make_plan

ROOT = Path(__file__).resolve().parents[1]


def test_asha_rungs_and_compute(no_ray: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(ROOT / "search_spaces" / "digits_mlp.yaml")]) == 0
    out = capsys.readouterr().out
    assert "trials: 24;" in out
    assert "  4: 24\n  12: 8\n  30 (max_t): 3" in out
    assert "at most 720 trial-steps (about 214 with ASHA pruning)" in out
    assert "lr: log-uniform in [0.0001, 0.03]" in out


def test_plan_says_when_a_conditional_parameter_exists(no_ray: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(ROOT / "search_spaces" / "digits_conditional.yaml")]) == 0
    out = capsys.readouterr().out
    assert "  momentum: uniform in [0.5, 0.99]; only when optimizer = sgd\n" in out
    assert "  lr: log-uniform in [0.0001, 0.1]\n" in out  # unconditional: nothing added
    both = "  x: {min: 0.0, max: 1.0, when: {opt: [adam, sgd], act: relu}}"
    text = "trainable: trainables.toy:quadratic\nmetric: {name: loss}\nmethod: random\nrun_cap: 2\nparameters:\n"
    text += "  opt: {values: [adam, sgd, rms]}\n  act: {values: [relu, tanh]}\n" + both + "\n"
    from tuner.plan import describe

    study = load_study(text=text)
    shown = describe(study, make_plan(study, 2, "here"))
    assert "  x: uniform in [0, 1]; only when opt in adam, sgd and act = relu" in shown


def test_plan_says_when_the_model_would_never_propose(
    no_ray: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (ROOT / "search_spaces" / "digits_mlp.yaml").read_text().replace("run_cap: 24", "run_cap: 6")
    (tmp_path / "short.yaml").write_text(text)
    assert main(["plan", str(tmp_path / "short.yaml")]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"note: {tmp_path / 'short.yaml'}: bayes draws its first 6 trials at random")


def test_grid_size_and_concurrency() -> None:
    study = load_study(ROOT / "search_spaces" / "toy_grid.yaml")
    plan = make_plan(study, places=8, where="a test cluster")
    assert plan.trials == 6 and plan.slots == 6 and plan.rungs == []
    assert make_plan(study, places=3, where="x").slots == 3


def test_smoke_runs_one_step_here(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(ROOT / "search_spaces" / "toy.yaml"), "--smoke"]) == 0
    out = capsys.readouterr().out
    assert "smoke trial (lr=" in out and "first report in" in out and "loss=" in out


def test_smoke_summarises_the_first_and_the_largest_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(ROOT / "search_spaces" / "digits_mlp.yaml"), "--smoke"]) == 0
    out = capsys.readouterr().out
    first, big = out.split("\nlargest configuration (")
    assert "hidden=256, layers=3" in big and "batch_size=128" in big  # sizes at their largest
    # hidden=256, three layers: 64*256+256 + 2*(256*256+256) + 256*10+10
    assert "model: 150,794 parameters" in big and "├─Linear: 1-11" in big and "[128, 10]" in big
    assert re.search(r"model: [\d,]+ parameters \([\d.]+ MB\), activations of one batch [\d.]+ MB", first)
    assert re.search(r"first report in [\d.]+ s, \d+ MB more host memory", big)


def test_a_largest_configuration_that_cannot_fit_is_found_before_the_study(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = tmp_path / "wide.yaml"
    space.write_text(
        textwrap.dedent("""
        trainable: trainables.toy:wide
        metric: {name: loss, goal: minimize}
        method: grid
        parameters:
          width: {values: [8, 16, 1000000000000]}
          batch_size: {values: [4, 8]}
        """)
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        assert main(["plan", str(space), "--smoke"]) == 2
    err = capsys.readouterr().err
    assert "parameters: the largest configuration (width=1000000000000, batch_size=8) fails at its first step" in err
    assert "can't allocate memory" in err and "(oom: out of memory at batch_size 8" in err
    assert list(tmp_path.iterdir()) == [space]  # nothing written


def test_more_workers_than_this_machine_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space = tmp_path / "big.yaml"
    space.write_text(
        textwrap.dedent("""
        trainable: trainables.toy:ranks
        metric: {name: loss, goal: minimize}
        method: grid
        resources: {workers: 64, cpus_per_worker: 4}
        parameters:
          steps: {value: 1}
    """)
    )
    assert main(["plan", str(space)]) == 2
    assert "resources: a trial needs 64 worker(s) of 4 CPU each; this machine" in capsys.readouterr().err


HYPERBAND = """
name: hb
trainable: trainables.toy:quadratic
metric: {name: loss, goal: minimize}
method: random
run_cap: 27
parameters:
  lr: {distribution: log_uniform_values, min: 1e-4, max: 1e-1}
early_terminate: {type: hyperband, BLOCK}
"""


@pytest.mark.parametrize(
    ("block", "bands", "then"),
    [
        ("max_iter: 27, s: 2, eta: 3", "  3: 27\n  9: 9\n", None),  # W&B's: max_iter / eta**s upward
        ("min_iter: 3", "  3: 27\n  9: 9\n  27: 3\n  81: 1\n", "  then 243, 729, ... (x3 each)"),
        ("min_iter: 3, max_iter: 27", "  3: 27\n  9: 9\n", None),
        ("max_iter: 27", "  1: 27\n  3: 9\n  9: 3\n", None),
        (
            "min_iter: 2, eta: 2, strict: false",
            "  2: 27\n  4: 14\n  8: 7\n  16: 4\n  32: 2\n",
            "  then 64, 128, ... (x2 each)",
        ),
    ],
)
def test_plan_prints_hyperbands_bands_for_every_form(
    block: str, bands: str, then: str | None, no_ray: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "hb.yaml").write_text(HYPERBAND.replace("BLOCK", block))
    assert main(["plan", str(tmp_path / "hb.yaml")]) == 0
    out = capsys.readouterr().out
    assert "hyperband bands (W&B's rule; reports of loss: trials expected to reach it):\n" + bands in out
    assert (then in out) if then else "  then" not in out
    assert "a band counts the reports that carry loss (as W&B counts wandb.log calls), not the step" in out
    assert ("its best value so far" if "strict: false" in block else "its value at the band") in out
    tail = "no trial is stopped at max_iter: " if "max_iter" in block else ""
    assert f"  {tail}each trial runs until its trainable returns" in out
    assert "compute:" not in out  # no budget: a trial's length is its trainable's


def test_plan_of_hyperband_on_the_simulated_backend_counts_max_iter_steps(
    no_ray: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = HYPERBAND.replace("BLOCK", "max_iter: 27, s: 2, eta: 3").replace("toy:quadratic", "simulated:curve")
    (tmp_path / "hb.yaml").write_text(text + "backend: simulated\n")
    assert main(["plan", str(tmp_path / "hb.yaml")]) == 0
    out = capsys.readouterr().out
    assert "  backend simulated: each trial runs max_iter (27) steps at most" in out
    # 27 trials: 18 stopped at band 3, 6 at band 9, 3 run 27 steps
    assert "compute: at most 729 trial-steps (about 189 with hyperband pruning)" in out


def test_plan_of_hyperband_without_a_trial_count_lists_the_first_bands(no_ray: None) -> None:
    text = HYPERBAND.replace("BLOCK", "min_iter: 1").replace("run_cap: 27", "time_limit: 1h")
    plan = make_plan(load_study(text=text), places=2, where="x")
    assert plan.trials is None and [(r.step, r.trials) for r in plan.rungs] == [
        (1, None),
        (3, None),
        (9, None),
        (27, None),
    ]
