"""What ``confirm`` takes from a search and how it judges the reruns, with several objectives:
the Pareto-optimal trials first (``select``'s pick leading), every objective averaged, and the
winner picked among the configurations whose means are Pareto-optimal."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tuner.config._schema import Select
from tuner.results import candidates, confirm_table, summarise

OBJECTIVES = [("acc", True), ("size", False)]


def _search() -> pd.DataFrame:
    rows = [  # (trial, status, acc, size): t1, t2, t4 are Pareto-optimal; t3 is dominated by t2
        ("t0", "pruned", 0.99, 1.0),
        ("t1", "finished", 0.95, 40.0),
        ("t2", "finished", 0.90, 10.0),
        ("t3", "finished", 0.85, 12.0),
        ("t4", "finished", 0.80, 5.0),
    ]
    return pd.DataFrame([
        {"trial_id": t, "status": s, "value": a, "step": 3 if s == "finished" else 1,
         "metric_acc": a, "metric_size": z, "params_w": i}
        for i, (t, s, a, z) in enumerate(rows)
    ])  # fmt: skip


def test_candidates_put_the_front_first_with_the_selected_trial_leading() -> None:
    trials = _search()
    assert list(candidates(trials, OBJECTIVES)["trial_id"]) == ["t1", "t2", "t4", "t3", "t0"]
    rule = Select(metric="acc", limits={"size": 20})
    assert list(candidates(trials, OBJECTIVES, rule)["trial_id"]) == ["t2", "t1", "t4", "t3", "t0"]
    one = candidates(trials, OBJECTIVES[:1])  # one objective: by value, pruned trials last
    assert list(one["trial_id"]) == ["t1", "t2", "t3", "t4", "t0"]


def _reruns(results: dict[int, list[tuple[float, float]]]) -> pd.DataFrame:
    return pd.DataFrame([
        {
            "status": "finished",
            "value": a,
            "metric_acc": a,
            "metric_size": z,
            "params_w": w,
            "metric_test_acc": a - 0.01,
        }
        for w, runs in results.items()
        for a, z in runs
    ])  # fmt: skip


def test_the_winner_is_the_pick_among_pareto_optimal_means(tmp_path: Path) -> None:
    (tmp_path / "best.yaml").write_text(yaml.safe_dump({"trial_id": "t2"}))
    top = [
        {"trial_id": t, "params": {"w": w}, "value": v} for t, w, v in (("t2", 2, 0.9), ("t1", 1, 0.95), ("t4", 4, 0.8))
    ]
    # over fresh seeds t2 falls behind t1 on accuracy at the same size: dominated
    run = _reruns({2: [(0.86, 10.0), (0.88, 10.0)], 1: [(0.94, 10.0), (0.92, 10.0)], 4: [(0.8, 5.0), (0.78, 5.0)]})
    rule = Select(metric="acc", limits={"size": 20})
    summary = summarise(tmp_path, run, top, OBJECTIVES, 2, rule)
    pareto = {c["trial_id"]: c["pareto"] for c in summary["configs"]}
    assert pareto == {"t2": False, "t1": True, "t4": True}
    assert summary["winner"] == "t1" and summary["changed"] and summary["objectives"] == ["acc", "size"]
    assert summary["configs"][1]["metrics"]["size"] == 10.0
    assert yaml.safe_load((tmp_path / "best.yaml").read_text())["confirmed"]["trial_id"] == "t1"
    table = confirm_table(summary)
    assert table[2].startswith("*P t1") and "size=10" in table[2] and "test_acc=" in table[2]
    assert table[1].startswith("   t2")  # t2: neither the pick nor on the front

    tight = Select(metric="acc", limits={"size": 6})  # only t4 is small enough
    assert summarise(tmp_path, run, top, OBJECTIVES, 2, tight)["winner"] == "t4"


def test_best_shows_the_confirmed_front_when_no_select_picks_one(tmp_path: Path) -> None:
    from tests.conftest import cli

    search_front = [
        {"trial_id": t, "acc": a, "size": z, "params": {"w": w}}
        for t, a, z, w in (("t1", 0.95, 40.0, 1), ("t2", 0.9, 10.0, 2), ("t4", 0.8, 5.0, 4))
    ]
    best = {
        "trial_id": "t1", "metric": {"name": "acc", "goal": "maximize", "value": 0.95}, "config": {"w": 1},
        "objectives": {"acc": "maximize", "size": "minimize"}, "pareto": search_front, "chosen_by": "first objective",
    }  # fmt: skip
    (tmp_path / "best.yaml").write_text(yaml.safe_dump(best))
    _search().to_parquet(tmp_path / "trials.parquet")
    shown = cli("best", str(tmp_path), "--format", "json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert [p["trial_id"] for p in json.loads(shown.stdout)] == ["t1", "t2", "t4"]  # the search's front

    top = [{"trial_id": p["trial_id"], "params": p["params"], "value": p["acc"]} for p in search_front]
    run = _reruns({1: [(0.94, 10.0), (0.92, 10.0)], 2: [(0.86, 10.0), (0.88, 10.0)], 4: [(0.8, 5.0), (0.78, 5.0)]})
    summarise(tmp_path, run, top, OBJECTIVES, 2)
    shown = cli("best", str(tmp_path), "--format", "json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    front = json.loads(shown.stdout)  # over fresh seeds t2 is dominated by t1: off the front
    assert [p["trial_id"] for p in front] == ["t1", "t4"]
    assert front[0]["acc"] == pytest.approx(0.93) and front[0]["size"] == 10.0 and front[0]["params"] == {"w": 1}
    assert "Pareto-optimal on their means over 2 seeds (confirm)" in shown.stderr
