"""The engine's decisions end to end on the simulated backend: real files, no processes, no Ray.

Each study runs through ``tuner.run`` as a user's would, on a virtual clock, so scheduling,
pruning, retries, limits and resume are checked in milliseconds; the same decisions run on Ray
(tests/backends/ray).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import pytest
import yaml

import tuner
from tests.conftest import study
from tuner import searchers
from tuner.searchers import Outcome
from tuner.searchers._random import RandomSearcher

STUDY = """
name: sim
trainable: tests.engine.curves:{fn}
backend: simulated
metric: {{name: loss, goal: minimize{target}}}
method: random
seed: {seed}
run_cap: {cap}
max_concurrent: {slots}
early_terminate: {{type: asha, max_t: 9, grace_period: {grace}, reduction_factor: 3}}
parameters:
  x: {{min: 0.0, max: 1.0}}
{extra}
"""


@pytest.fixture(autouse=True)
def _no_ray_started(no_ray: None, in_tmp: Path) -> None:
    """Every test here runs in a scratch folder and fails if anything starts Ray."""


def run(
    fn: str = "falling", cap: int = 30, slots: int = 4, extra: str = "", grace: int = 1, seed: int = 3, target: str = ""
) -> Any:
    """A study of ``fn`` over ``x`` in [0, 1]; ``grace`` 9 runs every trial to the end (no rung before max_t)."""
    text = STUDY.format(fn=fn, cap=cap, slots=slots, extra=extra, grace=grace, seed=seed, target=target)
    return tuner.run(study(text, allow_modules=["tests"]), quiet=True)


def journal(out: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out.folder / "journal.jsonl").read_text().splitlines()]


def test_an_asha_study_prunes_and_records_like_a_real_run() -> None:
    out = run(cap=60, slots=8)
    trials = pd.read_parquet(out.folder / "trials.parquet")
    history = pd.read_parquet(out.folder / "history.parquet")
    assert len(trials) == 60 and set(trials["status"]) == {"finished", "pruned"}
    assert (trials["status"] == "pruned").sum() > 30  # rungs at 1, 3 and 9 cut most of them
    best = out.best
    assert best is not None and best.status == "finished" and best.step == 9
    assert best.value == trials.loc[trials["status"] == "finished", "value"].min()
    assert (out.folder / "best.yaml").exists() and not history.empty
    assert out.summary["simulated_s"] > 0 and "no Ray" not in sys.modules


def test_the_same_seed_gives_the_same_study_on_the_virtual_clock() -> None:
    first = pd.read_parquet(run(cap=40).folder / "trials.parquet")
    again = pd.read_parquet(run(cap=40).folder / "trials.parquet")
    cols = ["trial_id", "status", "value", "step", "params_x"]
    pd.testing.assert_frame_equal(first[cols], again[cols])


def test_a_failure_is_retried_from_its_checkpoint_up_to_max_failures() -> None:
    out = run("breaks", cap=6, slots=2, grace=9, extra="max_failures: 2\non_failure: {user_exception: retry}")
    trials = pd.read_parquet(out.folder / "trials.parquet").set_index("trial_id")
    broken = trials[trials["params_x"] > 0.5]
    assert not broken.empty and set(broken["status"]) == {"errored"}
    assert (broken["attempts"] == 2).all() and (broken["cause"] == "user_exception").all()
    assert set(trials.loc[trials["params_x"] <= 0.5, "status"]) == {"finished"}
    retries = [e for e in journal(out) if e["e"] == "retry"]
    assert retries and all(e["step"] == 2 for e in retries)  # each attempt went on from step 2's checkpoint
    assert (out.folder / "logs").is_dir()


def test_a_deterministic_error_is_not_retried_whatever_max_failures_says() -> None:
    out = run("oom", cap=6, slots=2, grace=9, extra="max_failures: 3")
    trials = pd.read_parquet(out.folder / "trials.parquet")
    failed = trials[trials["params_x"] > 0.5]
    assert not failed.empty  # out of memory (read from its message): infeasible by default, never retried
    assert (failed["cause"] == "oom").all() and (failed["attempts"] == 0).all()
    assert set(failed["on_failure"]) == {"infeasible"}


def test_halve_batch_retries_an_out_of_memory_trial_with_twice_the_accumulation() -> None:
    out = run("oom", cap=6, slots=1, grace=9, extra="on_oom: halve_batch")
    trials = pd.read_parquet(out.folder / "trials.parquet")
    failed = trials[trials["params_x"] > 0.5]
    assert not failed.empty and set(failed["cause"]) == {"oom"}
    # every attempt fails at step 2 again: four halvings (accumulation 2, 4, 8, 16), not charged to max_failures
    assert (failed["attempts"] == 4).all() and set(failed["on_failure"]) == {"halve_batch"}


def test_nan_and_a_missing_metric_fail_and_are_never_best() -> None:
    out = run("nan", cap=12, slots=3, grace=9)
    trials = pd.read_parquet(out.folder / "trials.parquet")
    assert set(trials.loc[trials["params_x"] > 0.5, "status"]) == {"nan"}
    assert out.best is not None and out.best.params["x"] <= 0.5
    with pytest.raises(tuner.ConfigError, match=r"metric\.name: 'loss' is never returned by .*wrong_metric"):
        run("wrong_metric", cap=4, slots=2)


def test_the_time_limit_is_simulated_time_and_stops_running_trials() -> None:
    out = run(cap=1000, slots=4, extra="time_limit: 20")
    trials = pd.read_parquet(out.folder / "trials.parquet")
    assert out.stop_reason == "time_limit reached" and len(trials) < 1000
    assert "stopped" in set(trials["status"]) and out.summary["simulated_s"] == pytest.approx(20, abs=1.5)


def test_a_target_reached_stops_starting_trials() -> None:
    out = run(cap=200, slots=2, target=", target: 0.3")
    assert out.stop_reason is not None and "reached its target 0.3" in out.stop_reason
    assert out.counts["finished"] + out.counts["pruned"] < 200


def test_a_stalled_trial_is_ended_with_its_cause_and_the_slot_goes_on() -> None:
    out = run("hangs", cap=8, slots=2, grace=9, extra="stall_timeout: 60")
    trials = pd.read_parquet(out.folder / "trials.parquet")
    stalled = trials[trials["cause"] == "stalled"]
    assert not stalled.empty and (stalled["params_x"] > 0.5).all()
    assert stalled["error"].str.startswith("stalled: no report for").all()
    assert len(trials) == 8  # the slots went on with the other trials


def test_on_failure_stop_ends_the_study_and_leaves_the_rest_resumable() -> None:
    out = run("breaks", cap=30, slots=3, grace=9, extra="on_failure: {user_exception: stop}")
    assert out.stop_reason is not None and "on_failure: {user_exception: stop}" in out.stop_reason
    assert out.counts["errored"] >= 1 and sum(out.counts.values()) < 30


def test_resume_after_an_interrupt_finishes_the_study_without_running_a_trial_twice() -> None:
    out = run("interrupted", cap=20, slots=3, grace=9)
    assert out.interrupted
    started = {e["trial"] for e in journal(out) if e["e"] == "start"}
    ended = {e["trial"] for e in journal(out) if e["e"] == "end"}
    assert started - ended  # trials were in flight
    # the trainable now runs through: resume it as a user would, with the fixed function
    (out.folder / "study.yaml").write_text(
        (out.folder / "study.yaml").read_text().replace("curves:interrupted", "curves:falling")
    )
    again = tuner.resume(out.folder, quiet=True, allow_modules=["tests"])
    assert not again.interrupted and sum(again.counts.values()) == 20 and again.counts["running"] == 0
    events = journal(again)
    starts = [e["trial"] for e in events if e["e"] == "start"]
    assert len(starts) == len(set(starts)) == 20  # no trial started twice
    assert {e["trial"] for e in events if e["e"] == "retry" and e["error"] == "resumed"} == started - ended


class Recording(RandomSearcher):
    """Random search that keeps every outcome it is told."""

    told: ClassVar[list[tuple[str, Outcome]]] = []

    def tell(self, trial_id: str, config: dict[str, Any], outcome: Outcome) -> None:
        Recording.told.append((trial_id, outcome))
        super().tell(trial_id, config, outcome)


def test_the_searcher_is_told_each_trials_learning_curve_live_and_on_resume(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under ASHA an ended trial's outcome carries its reports, minimised (a maximised metric
    flipped), one per step; a resume replaying the journal tells the searcher the same."""
    monkeypatch.setitem(searchers.SEARCHERS, "recording", f"{__name__}:Recording")
    body = STUDY.format(fn="score", cap=10, slots=2, extra="", grace=1, seed=5, target="")
    body = body.replace("method: random", "method: recording").replace(
        "{name: loss, goal: minimize}", "{name: score, goal: maximize}"
    )
    Path("sim.yaml").write_text(body)
    Recording.told.clear()
    out = tuner.run(study(body, allow_modules=["tests"]), quiet=True)
    live = {t: o for t, o in Recording.told if o.state != "running"}
    history = tuner.load_history(out.folder)
    assert len(live) == 10 and {o.state for o in live.values()} == {"complete", "pruned"}
    for trial_id, o in live.items():
        rows = history[history["trial_id"] == trial_id]
        assert o.curve == tuple(zip(rows["step"], -rows["score"], strict=True))
        assert o.curve[-1] == (o.step, o.value)
    assert all(len(o.curve or ()) == 9 for o in live.values() if o.state == "complete")

    Recording.told.clear()
    Path("more.yaml").write_text(body.replace("run_cap: 10", "run_cap: 11"))
    tuner.resume(out.folder, space="more.yaml", quiet=True, allow_modules=["tests"])
    assert {t: o for t, o in Recording.told if t in live and o.state != "running"} == live


def test_same_seed_same_study_past_the_searchers_random_start() -> None:
    """Optuna's TPE past its random start: 4 random trials, then 6 from the model."""
    extra = "searcher: {n_startup_trials: 4}"
    body = STUDY.format(fn="falling", cap=10, slots=1, extra=extra, grace=1, seed=5, target="")
    body = body.replace("method: random", "method: optuna")
    a = tuner.load_results(tuner.run(study(body, name="a", allow_modules=["tests"]), quiet=True).folder)
    b = tuner.load_results(tuner.run(study(body, name="b", allow_modules=["tests"]), quiet=True).folder)
    assert list(a["params_x"]) == list(b["params_x"])


def test_all_trials_failing_stops_early_without_best() -> None:
    out = run("always_fails", cap=20, slots=2)
    trials = tuner.load_results(out.folder)
    assert set(trials["status"]) == {"errored"} and len(trials) < 20
    assert out.best is None and not (out.folder / "best.yaml").exists()
    summary = yaml.safe_load((out.folder / "summary.yaml").read_text())
    assert out.stop_reason == summary["stop_reason"] == "the first 3 trials all failed"


def test_the_furthest_stopped_trial_is_best_when_the_time_limit_stops_every_trial() -> None:
    out = run(cap=4, slots=4, grace=9, extra="time_limit: 5")
    trials = tuner.load_results(out.folder)
    assert set(trials["status"]) == {"stopped"} and trials["step"].max() < 9
    assert out.best is not None and out.best.status == "stopped"


def test_the_first_line_says_how_each_trial_runs() -> None:
    """A simulated trial has no process; a distributed one names its ranks' strategy, not DDP for all."""
    from tuner.engine._run import _shape

    lines: list[str] = []
    text = STUDY.format(fn="falling", cap=2, slots=2, extra="", grace=1, seed=3, target="")
    tuner.run(study(text, allow_modules=["tests"]), say=lines.append)
    assert lines[0].startswith("running sim: method random, 2 trial(s) at a time, simulated (no processes) -> ")
    ray = text.replace("backend: simulated", "backend: ray")
    assert _shape(study(ray, allow_modules=["tests"])) == "1 process each"
    fsdp = ray + "resources: {workers: 2, strategy: fsdp}\n"
    assert _shape(study(fsdp, allow_modules=["tests"])) == "2 ranks each (fsdp)"
