"""Population-based training's decisions, and studies of them on the simulated backend.

The trainable ``trainables.simulated:schedule`` carries its state from step to step (and through
checkpoints), and its best answer is a falling learning rate, so an exploit that restored the
wrong state, or a schedule recorded wrongly, shows in the numbers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

import tuner
from tests.conftest import ROOT, study
from tuner.engine._pbt import PopulationBasedTraining, perturb
from tuner.space import Categorical, Float, Int

STUDY = """
name: pop
trainable: trainables.simulated:schedule
backend: simulated
metric: {{name: loss, goal: minimize}}
method: random
seed: {seed}
run_cap: {cap}
max_concurrent: {slots}
parameters:
  lr: {{distribution: log_uniform_values, min: 0.001, max: 0.5}}
early_terminate: {early}
"""
PBT = "{type: pbt, perturbation_interval: 4, max_t: 40, quantile_fraction: 0.25}"


@pytest.fixture(autouse=True)
def _no_ray_started(no_ray: None, in_tmp: Path) -> None:
    """Every test here runs in a scratch folder and fails if anything starts Ray."""


def run(early: str = PBT, cap: int = 8, slots: int = 4, seed: int = 1, name: str = "pop") -> Any:
    text = STUDY.format(early=early, cap=cap, slots=slots, seed=seed).replace("name: pop", f"name: {name}")
    return tuner.run(study(text), quiet=True)


def journal(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "journal.jsonl").read_text().splitlines()]


def population(**options: Any) -> PopulationBasedTraining:
    mutations = {"lr": Float(1e-3, 0.5, log=True)}
    return PopulationBasedTraining(mutations=mutations, perturbation_interval=4, **options)


# -- the decisions ------------------------------------------------------------------------------
def saved_at(saved: dict[str, list[tuple[float, str]]]) -> Any:
    """A ``checkpoint_of`` over ``trial -> [(step, path), ...]``: the last at or before a step."""

    def at(trial_id: str, step: float) -> tuple[float, str] | None:
        found = [s for s in saved.get(trial_id, []) if s[0] <= step]
        return found[-1] if found else None

    return at


def test_quantiles_follow_rays_rule_and_need_two_members() -> None:
    pbt = population(quantile_fraction=0.25)
    pbt.add("a")
    pbt.report("a", 4, 1.0)
    assert pbt.quantiles() == ([], [])  # one member: no one to copy
    for i, loss in enumerate([0.9, 0.5, 0.1, 0.7, 0.3]):
        pbt.add(f"m{i}")
        pbt.report(f"m{i}", 4, loss)
    bottom, top = pbt.quantiles()  # 6 members, ceil(6 * 0.25) = 2 each, loss minimised
    assert bottom == ["a", "m0"] and top == ["m4", "m2"]
    pbt.end("m2", (4, 0.1))  # an ended member is no longer ranked
    assert "m2" not in pbt.quantiles()[1]


def test_members_are_ranked_by_their_score_at_their_last_boundary() -> None:
    pbt = population(quantile_fraction=0.5)
    for trial in ("a", "b", "c", "d"):
        pbt.add(trial)
    pbt.report("a", 4, 0.5)
    pbt.report("b", 4, 0.2)
    pbt.report("c", 3, 0.01)  # not at a boundary yet (interval 4): not ranked, however low
    assert pbt.quantiles() == (["a"], ["b"])
    pbt.report("b", 5, 0.9)  # between boundaries: b keeps its score of step 4
    pbt.report("d", 4, 0.3)
    assert pbt.quantiles() == (["a"], ["b"])
    pbt.report("b", 8, 0.9)  # its next boundary: now it counts
    assert pbt.quantiles() == (["b"], ["d"])


def test_a_donor_is_copied_only_from_a_checkpoint_near_the_boundary_that_ranked_it() -> None:
    configs = {t: {"lr": lr} for t, lr in [("low", 0.001), ("top1", 0.1), ("top2", 0.2), ("mid", 0.01)]}
    pbt = population(quantile_fraction=0.5)
    for trial, loss in [("low", 0.9), ("mid", 0.5), ("top1", 0.1), ("top2", 0.2)]:
        pbt.add(trial)
        pbt.report(trial, 4, loss)
    saved = {"top1": [], "top2": [(3, "ck/top2/3"), (6, "ck/top2/6")]}  # the best has saved nothing
    exploit = pbt.exploit("low", configs, saved_at(saved))
    assert exploit is not None and exploit.donor == "top2"
    assert (exploit.donor_step, exploit.path) == (3, "ck/top2/3")  # the state scored at 4, not the later one
    stale = population(quantile_fraction=0.5)
    for trial, loss in [("low", 0.9), ("top", 0.1)]:
        stale.add(trial)
        stale.report(trial, 12, loss)
    old = saved_at({"top": [(8, "ck/top/8")]})  # 4 steps before its boundary: not the state that ranked it
    assert stale.exploit("low", configs | {"top": {"lr": 0.1}}, old) is None


def test_a_member_first_at_its_boundary_goes_back_to_a_donors_last_boundary() -> None:
    """With more members than slots, the member that reaches boundary 12 first is ranked among
    members paused at boundary 8: it takes a donor's state there and trains those steps again."""
    pbt = population(quantile_fraction=0.5)
    configs = {"low": {"lr": 0.001}, "top": {"lr": 0.1}}
    pbt.add("low"), pbt.add("top")
    pbt.report("top", 8, 0.05)
    pbt._last["low"] = 8
    pbt.report("low", 12, 0.5)
    exploit = pbt.exploit("low", configs, saved_at({"top": [(8, "ck/top/8")]}))
    assert exploit is not None and (exploit.step, exploit.donor_step) == (12, 8)
    pbt.report("low", 11, 0.4)  # it carries on from step 9
    assert not pbt.due("low")
    pbt.report("low", 12, 0.3)  # its next boundary: an interval on from the donor's step
    assert pbt.due("low")


def test_only_a_bottom_member_at_its_own_boundary_exploits() -> None:
    pbt = population(quantile_fraction=0.5)
    configs = {"low": {"lr": 0.001}, "top": {"lr": 0.1}}
    saved = saved_at({"top": [(3, "ck")]})
    pbt.add("low"), pbt.add("top")
    pbt.report("top", 3, 0.1)
    pbt.report("low", 3, 0.9)
    assert pbt.exploit("low", configs, saved) is None  # step 3: not a boundary (interval 4)
    pbt.report("top", 4, 0.1)
    assert pbt.exploit("top", configs, saved) is None  # at its boundary, but in the top quantile
    pbt.report("low", 4, 0.9)
    exploit = pbt.exploit("low", configs, saved)
    assert exploit is not None and exploit.old == {"lr": 0.001} and exploit.donor_step == 3
    assert pbt.exploit("low", configs, saved) is None  # once per boundary


def test_exploration_perturbs_by_a_factor_within_range_or_resamples() -> None:
    rng = np.random.default_rng(0)
    lr = Float(1e-3, 0.5, log=True)
    values = sorted({round(perturb(lr, 0.1, False, (0.8, 1.2), rng), 12) for _ in range(50)})
    assert values == [0.08, 0.12]
    assert perturb(lr, 0.45, False, (2.0,), rng) == 0.5  # clipped to the range's top
    assert perturb(Int(1, 10), 5, False, (1.3,), rng) == 6  # whole numbers stay whole
    drawn = [perturb(lr, 0.1, True, (0.8, 1.2), rng) for _ in range(50)]
    assert len(set(drawn)) == 50 and all(1e-3 <= v <= 0.5 for v in drawn)  # resampled from the range


def test_a_categorical_value_moves_to_a_neighbour_or_is_resampled_as_in_ray() -> None:
    rng = np.random.default_rng(0)
    size = Categorical((16, 32, 64, 128))
    assert {perturb(size, 32, False, (0.8, 1.2), rng) for _ in range(40)} == {16, 64}
    assert {perturb(size, 128, False, (0.8, 1.2), rng) for _ in range(40)} == {64, 128}  # clamped at the end
    assert {perturb(size, 32, True, (0.8, 1.2), rng) for _ in range(80)} == {16, 32, 64, 128}
    assert perturb(Categorical((True, False)), 1, False, (0.8, 1.2), rng) in (True, False)  # 1 is not True: drawn


def test_the_next_draw_depends_on_the_exploits_made_so_far_only() -> None:
    a, b = population(seed=5), population(seed=5)
    a.applied("x", 4)
    b.applied("y", 8)
    assert a.rng().random() == b.rng().random()  # a resumed study draws as the uninterrupted one


# -- studies -------------------------------------------------------------------------------------
def test_a_population_exploits_through_checkpoints_and_records_every_change() -> None:
    out = run()
    events = journal(out.folder)
    exploits = [e for e in events if e["e"] == "exploit"]
    assert len(exploits) >= 3
    for ex in exploits:
        before = events[: events.index(ex)]
        saved = [e for e in before if e["e"] == "ckpt" and e["trial"] == ex["donor"]]
        assert any(e["step"] == ex["donor_step"] for e in saved)  # the donor had saved that step
        assert ex["trial"] != ex["donor"] and set(ex["old"]) == set(ex["new"]) == {"lr"}
        after = events[events.index(ex) + 1 :]
        assert ex["copy"] == f"sim://{ex['donor']}/{ex['donor_step']}"  # the donor's state, at its step
        first = next(e for e in after if e["e"] == "report" and e["trial"] == ex["trial"])
        assert first["step"] == ex["donor_step"] + 1  # and it carries on from the donor's step
    trials = pd.read_parquet(out.folder / "trials.parquet")
    assert len(trials) == 8 and set(trials["status"]) == {"finished"} and set(trials["step"]) == {40}
    history = pd.read_parquet(out.folder / "history.parquet")
    ex = exploits[-1]
    rows = history[history["trial_id"] == ex["trial"]].set_index("step")["config/lr"]
    assert rows[ex["donor_step"] + 1] == ex["new"]["lr"]  # each step's values, as they changed
    best = yaml.safe_load((out.folder / "best.yaml").read_text())
    schedule = best["schedule"]["lr"]
    assert schedule[0][0] == 0 and schedule[-1][1] == best["params"]["lr"]
    steps = [at for at, _ in schedule]
    assert steps == sorted(steps)


def test_the_winners_schedule_replays_through_train_to_the_same_value() -> None:
    out = run()
    best = yaml.safe_load((out.folder / "best.yaml").read_text())
    assert len(best["schedule"]["lr"]) >= 2  # the winner changed its learning rate
    text = STUDY.format(early=PBT, cap=8, slots=4, seed=1)
    result = tuner.train(study(text), best["config"], out="final", seed=best["seed"], schedule=best["schedule"])
    assert result["metrics"]["loss"] == pytest.approx(best["metric"]["value"], rel=1e-9)
    fixed = tuner.train(study(text), best["config"], out="fixed", seed=best["seed"])  # the last values only
    assert fixed["metrics"]["loss"] != pytest.approx(best["metric"]["value"], rel=1e-6)


def test_a_population_beats_the_same_configurations_held_fixed() -> None:
    pbt = run(cap=8, slots=4, seed=2, name="pbt")
    fixed = run("{type: asha, max_t: 40, grace_period: 40}", cap=8, slots=4, seed=2, name="fixed")
    assert pbt.best.value < fixed.best.value


def test_more_members_than_slots_take_turns_at_the_boundaries() -> None:
    out = run(cap=8, slots=2)
    events = journal(out.folder)
    starts = [i for i, e in enumerate(events) if e["e"] == "start"]
    ends = [i for i, e in enumerate(events) if e["e"] == "end"]
    assert max(starts) < min(ends)  # every member started before any finished
    assert len([e for e in events if e["e"] == "exploit"]) >= 3


def test_a_resumed_population_continues_a_pending_exploit_from_the_copied_checkpoint() -> None:
    whole = run(name="whole")
    events = journal(whole.folder)
    ex = [e for e in events if e["e"] == "exploit"][1]
    cut = events.index(ex) + 1  # the exploit is journaled; the member had not restarted
    folder = Path("results/cut")
    folder.mkdir(parents=True)
    for name in ("study.yaml",):
        (folder / name).write_text((whole.folder / name).read_text().replace("name: whole", "name: cut"))
    (folder / "journal.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events[:cut]))
    (folder / "state.json").write_text(json.dumps({"state": "interrupted", "elapsed": 1.0}))
    resumed = tuner.resume(folder, quiet=True)
    after = journal(resumed.folder)[cut:]
    first = next(e for e in after if e["e"] == "report" and e["trial"] == ex["trial"])
    assert first["step"] == ex["donor_step"] + 1
    history = pd.read_parquet(resumed.folder / "history.parquet")
    row = history[(history["trial_id"] == ex["trial"]) & (history["step"] == ex["donor_step"] + 1)]
    assert row["config/lr"].tolist() == [ex["new"]["lr"]]
    trials = pd.read_parquet(resumed.folder / "trials.parquet")
    assert len(trials) == 8 and set(trials["status"]) == {"finished"}  # no member lost


# -- validation ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("early", "expected"),
    [
        ("{type: pbt, max_t: 40, quantile_fraction: 0.6}", "early_terminate.quantile_fraction: Input should be less"),
        ("{type: pbt, max_t: 40, quantile_fraction: 0}", "early_terminate.quantile_fraction: Input should be greater"),
        ("{type: pbt, max_t: 40, perturbation_interval: 0}", "early_terminate.perturbation_interval: Input should be"),
        ("{type: pbt, max_t: 40, mutations: {wd: {min: 0.0, max: 1.0}}}", "early_terminate.mutations.wd: is not a"),
        ("{type: pbt, max_t: 40, mutations: {lr: {value: 0.1}}}", "early_terminate.mutations.lr: a constant cannot"),
        ("{type: pb2, max_t: 40, mutations: {lr: {values: [0.1, 0.2]}}}", "pb2 mutates bounded numeric parameters"),
        ("{type: pbt, max_t: 40, perturbation_factors: [-1]}", "perturbation_factors: must be positive"),
        ("{type: pbt}", "early_terminate.max_t: backend simulated needs the number of steps"),
        ("{type: pbt, max_t: 40, resample: 1}", "early_terminate.resample: unknown key"),
    ],
)
def test_a_wrong_option_is_one_line_naming_it(early: str, expected: str, tmp_path: Path) -> None:
    path = tmp_path / "pop.yaml"
    path.write_text(STUDY.format(early=early, cap=8, slots=4, seed=1))
    proc = subprocess.run(
        [sys.executable, "-m", "tuner", "run", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "early_terminate" in line]
    assert len(lines) == 1 and expected in lines[0], proc.stderr


def test_pb2_explores_by_its_gp_within_the_bounds_and_beats_fixed_configurations() -> None:
    early = "{type: pb2, perturbation_interval: 4, max_t: 40, quantile_fraction: 0.25}"
    pb2 = run(early, cap=8, slots=4, seed=2, name="pb2")
    exploits = [e for e in journal(pb2.folder) if e["e"] == "exploit"]
    assert len(exploits) >= 3 and all(0.001 <= e["new"]["lr"] <= 0.5 for e in exploits)
    fixed = run("{type: asha, max_t: 40, grace_period: 40}", cap=8, slots=4, seed=2, name="fixed")
    assert pb2.best.value < fixed.best.value
