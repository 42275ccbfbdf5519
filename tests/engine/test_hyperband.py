"""Hyperband as W&B runs it: its bands, and its verdicts, against W&B's own rule.

``wandb_bands_reference`` and ``wandb_stops`` are W&B's ``hyperband_stop_runs``
(``sweeps/hyperband_stopping.py``) written out step by step: the bands from ``max_iter`` and ``s``
or from ``min_iter``, then the threshold at each band over every run's history and the verdict on
one running run. The scheduler must agree with them report by report, and a study on the
simulated backend must end its trials where they say.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import tuner
from tests.conftest import study
from tuner.config import wandb_bands
from tuner.engine import WandbHyperband


def wandb_bands_reference(min_iter: int | None, max_iter: int | None, eta: float, s: int | None) -> list[int]:
    """W&B's two ways to list the bands, as its code does (``s`` is required with ``max_iter``)."""
    bands: list[int] = []
    if max_iter is not None:
        assert s is not None
        band: float = max_iter
        for _ in range(s):
            band /= eta
            if band < 1:
                break
            bands.append(int(band))
        return sorted(bands)
    assert min_iter is not None
    band = min_iter
    for _ in range(100):
        bands.append(int(band))
        band *= eta
    return bands


def wandb_stops(
    histories: dict[str, list[float]], run: str, bands: list[int], eta: float, strict: bool, maximize: bool
) -> bool:
    """W&B's verdict on the running ``run``, every run's history of the metric as it is now."""
    r = 1.0 / eta
    signed = {name: [-v for v in h] if maximize else list(h) for name, h in histories.items()}
    everyone = [h for h in signed.values() if len(h) > 0]
    thresholds = []
    for band in bands:
        values = [h[band - 1] for h in everyone if len(h) >= band]
        thresholds.append(np.inf if not values else sorted(values)[int(r * len(values))])
    history = signed[run]
    closest, threshold = -1, 0.0
    for band, t in zip(bands, thresholds, strict=True):
        if band <= len(history):
            closest, threshold = band, t
        else:
            break
    if closest == -1:
        return False
    value = history[closest - 1] if strict else min(history)
    return bool(value > threshold)


# -- the bands ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("max_iter", "s", "eta", "expected"),
    [
        (27, 2, 3, [3, 9]),  # not 1, 3, 9, 27: max_iter / eta**s upward, max_iter itself no band
        (81, 3, 3, [3, 9, 27]),  # W&B's test_hyperband_max_iter_bands
        (18, 2, 3, [2, 6]),  # W&B's test_init_from_max_iter
        (5, 2, 2, [1, 2]),
        (9, 2, 3, [1, 3]),  # W&B's test_eta_3: "bands are at 1 and 3"
        (10, 2, 3, [1, 3]),  # each cut to a whole number
        (300, 2, 3, [33, 100]),
        (100, 5, 2.5, [1, 2, 6, 16, 40]),
        (8, 5, 2, [1, 2, 4]),  # s larger than the bands above 1
    ],
)
def test_bands_from_max_iter_are_wandbs(max_iter: int, s: int, eta: float, expected: list[int]) -> None:
    assert wandb_bands_reference(None, max_iter, eta, s) == expected
    assert wandb_bands(1, max_iter, eta, s) == expected
    assert wandb_bands(4, max_iter, eta, s) == expected  # min_iter is not used with max_iter and s, as in W&B


@pytest.mark.parametrize(
    ("min_iter", "eta", "first"),
    [(3, 3, [3, 9, 27]), (1, 3, [1, 3, 9, 27]), (30, 1.5, [30, 45, 67]), (2, 2, [2, 4, 8, 16]), (5, 2.5, [5, 12, 31])],
)
def test_bands_from_min_iter_are_wandbs(min_iter: int, eta: float, first: list[int]) -> None:
    theirs = wandb_bands_reference(min_iter, None, eta, None)
    ours = wandb_bands(min_iter, None, eta, None)
    assert ours[: len(first)] == theirs[: len(first)] == first
    assert ours == sorted(set(theirs))[: len(ours)] and ours[-1] > 2**50  # every band a trial could reach


def test_bands_from_max_iter_without_s_go_down_to_min_iter() -> None:
    assert wandb_bands(1, 27, 3, None) == [1, 3, 9]
    assert wandb_bands(3, 27, 3, None) == [3, 9]
    assert wandb_bands(2, 100, 3, None) == [3, 11, 33]


def test_the_schema_gives_the_bands_even_none() -> None:
    def hyperband(block: str) -> Any:
        return study(
            f"""
            trainable: trainables.toy:quadratic
            metric: {{name: loss}}
            method: random
            run_cap: 3
            parameters: {{lr: {{min: 0.1, max: 1.0}}}}
            early_terminate: {{type: hyperband, {block}}}
            """
        ).spec.early_terminate

    assert hyperband("max_iter: 27, s: 2, eta: 3").bands() == [3, 9]
    assert hyperband("min_iter: 3").bands()[:3] == [3, 9, 27]
    assert hyperband("min_iter: 3, max_iter: 27").bands() == [3, 9]
    assert hyperband("max_iter: 27").bands() == [1, 3, 9]
    assert hyperband("min_iter: 3").strict is True  # W&B's default
    assert hyperband("max_iter: 2, s: 1").bands() == []  # W&B runs it, stopping nothing: so do we, saying so


# -- the verdicts -------------------------------------------------------------------------------------------
def snapshot_verdicts(
    runs: dict[str, tuple[bool, list[float]]], bands: list[int], eta: float, strict: bool, maximize: bool = False
) -> set[str]:
    """The running runs the scheduler stops when shown every history at once, as W&B's controller is."""
    scheduler = WandbHyperband(bands=bands, eta=eta, strict=strict, maximize=maximize)
    for name, (_, history) in runs.items():
        scheduler.add(name)
        for step, value in enumerate(history, start=1):
            scheduler.record(name, step, value)
    return {name for name, (running, _) in runs.items() if running and scheduler.judge(name)}


def test_wandbs_own_cases_stop_the_same_runs() -> None:
    # W&B's test_5runs_band1_stop_2: max_iter 5, eta 2, s 2 (bands 1, 2), strict by default
    runs = {
        "a": (False, [10, 9]),
        "b": (True, [10, 10]),
        "c": (True, [10, 8, 8]),
        "d": (True, [10, 7, 7]),
        "e": (False, [10, 6, 6]),
    }
    assert snapshot_verdicts(runs, [1, 2], 2, strict=True) == {"b"}
    # ... _1stnoband: c passes band 1 but not band 2
    runs = {
        "a": (False, [10]),
        "b": (True, [11]),
        "c": (True, [10, 8, 8]),
        "d": (True, [10, 7, 7]),
        "e": (False, [10, 6, 6]),
    }
    assert snapshot_verdicts(runs, [1, 2], 2, strict=True) == {"b", "c"}
    # W&B's test_single_run and test_2runs_band1_pass (max_iter 18, s 2: bands 2, 6; not strict)
    assert snapshot_verdicts({"a": (True, [10.0 - i for i in range(10)])}, [2, 6], 3, strict=False) == set()
    two = {"a": (True, [10, 10, 6]), "b": (True, [10.0 - i for i in range(10)])}
    assert snapshot_verdicts(two, [2, 6], 3, strict=False) == set()
    # W&B's test_hyperband_min_iter_bands and its maximised twin
    pair = {"a": (True, [10.0] * 4), "b": (True, [10.0 - i for i in range(10)])}
    assert snapshot_verdicts(pair, wandb_bands(3, None, 3, None), 3, strict=True) == {"a"}
    rising = {"a": (True, [10.0] * 4), "b": (True, [10.0 + i for i in range(10)])}
    assert snapshot_verdicts(rising, wandb_bands(3, None, 3, None), 3, strict=True, maximize=True) == {"a"}


@pytest.mark.parametrize("seed", range(12))
def test_every_verdict_is_wandbs_on_the_histories_of_that_moment(seed: int) -> None:
    """Random trials report in a random interleaving, some continue from an earlier step; at every
    report the scheduler's verdict is W&B's on every history as it stands."""
    rng = random.Random(seed)
    eta = [2, 3, 1.5, 2.5][seed % 4]
    strict, maximize = seed % 2 == 0, seed // 2 % 2 == 0
    if seed % 3 == 0:
        bands = wandb_bands(rng.randint(1, 3), None, eta, None)
    else:
        bands = wandb_bands(1, rng.randint(6, 30), eta, rng.randint(1, 4))
    quality: dict[str, float] = {}
    scheduler = WandbHyperband(bands=bands, eta=eta, strict=strict, maximize=maximize)
    histories: dict[str, list[float]] = {}
    steps: dict[str, int] = {}
    running: list[str] = []
    stopped = 0
    for _ in range(400):
        if not running and len(histories) == 30:
            break
        if len(histories) < 30 and (not running or rng.random() < 0.15):
            trial = f"t{len(histories)}"
            histories[trial], steps[trial], quality[trial] = [], 0, rng.random()
            running.append(trial)
            scheduler.add(trial)
        trial = rng.choice(running)
        if rng.random() < 0.04 and steps[trial] > 2:  # continued from a checkpoint a few steps back
            steps[trial] = rng.randint(0, steps[trial] - 1)
            del histories[trial][steps[trial] :]
        steps[trial] += 1
        value = round(quality[trial] + rng.gauss(1.0 / steps[trial], 0.2), 1)  # ties happen
        histories[trial].append(value)
        verdict = scheduler.report(trial, steps[trial], value)
        assert verdict == wandb_stops(histories, trial, bands, eta, strict, maximize), (trial, steps[trial])
        if verdict or rng.random() < 0.02:  # stopped, or at its own end: its history stays
            running.remove(trial)
            scheduler.end(trial, (steps[trial], value))
            stopped += verdict
    assert stopped > 0 or not strict  # a best-so-far is seldom worse than the others' values at a band


def test_a_nan_is_not_counted_and_an_ended_trial_still_counts() -> None:
    scheduler = WandbHyperband(bands=[2], eta=3, strict=True)
    scheduler.add("a")
    assert not scheduler.report("a", 1, 1.0)
    assert not scheduler.report("a", 2, math.nan)  # W&B leaves it out of the run's history
    assert scheduler.reached(2) == 0
    scheduler.end("a", (3, 0.5))  # ended at its budget: its last result counts, at its 2nd report
    assert scheduler.reached(2) == 1 and scheduler.threshold(2) == 0.5
    scheduler.add("b")
    scheduler.report("b", 1, 9.0)
    assert scheduler.report("b", 2, 0.6)  # worse than the best of the 2 at band 2 (index int(2 / 3) = 0)


def test_the_threshold_is_read_as_reported_for_a_maximised_metric() -> None:
    scheduler = WandbHyperband(bands=[1], eta=3, maximize=True)
    for i, value in enumerate([0.1, 0.9, 0.5]):
        scheduler.add(f"t{i}")
        scheduler.report(f"t{i}", 0, value)
    assert scheduler.threshold(1) == 0.5  # sorted best first (0.9, 0.5, 0.1), index int(3 / 3) = 1
    assert scheduler.threshold(2) is None


# -- a study on the simulated backend -------------------------------------------------------------------------
STUDY = """
name: hb
trainable: tests.engine.curves:{fn}
backend: simulated
metric: {{name: {metric}, goal: {goal}}}
method: random
seed: 5
run_cap: 40
max_concurrent: 6
early_terminate: {{type: hyperband, max_iter: 27, s: 2, eta: 3, strict: {strict}}}
parameters:
  x: {{min: 0.0, max: 1.0}}
"""


@pytest.mark.parametrize(
    ("fn", "metric", "goal", "strict"),
    [
        ("noisy", "loss", "minimize", "true"),
        ("noisy", "loss", "minimize", "false"),
        ("noisy_score", "score", "maximize", "true"),
    ],
)
def test_a_simulated_study_stops_trials_where_wandb_would(
    fn: str, metric: str, goal: str, strict: str, no_ray: None, in_tmp: Path
) -> None:
    text = STUDY.format(fn=fn, metric=metric, goal=goal, strict=strict)
    out = tuner.run(study(text, allow_modules=["tests"]), quiet=True)
    trials = pd.read_parquet(out.folder / "trials.parquet").set_index("trial_id")
    pruned = trials[trials["status"] == "pruned"]
    assert len(pruned) > 5 and set(trials["status"]) == {"pruned", "finished"}
    assert pruned["step"].min() >= 3  # no band at 1: bands are 3 and 9
    assert set(pruned["step"]) & set(range(3, 9)) and set(pruned["step"]) & set(range(9, 27))
    assert set(trials.loc[trials["status"] == "finished", "step"]) == {27}  # the simulated budget, no cut
    journal_verdicts(out.folder, trials, metric, [3, 9], 3, strict == "true", goal == "maximize", budget=27)


def journal_verdicts(
    folder: Path,
    trials: pd.DataFrame,
    metric: str,
    bands: list[int],
    eta: float,
    strict: bool,
    maximize: bool,
    budget: float | None = None,
) -> None:
    """Replays a study's journal: at each report, W&B's verdict on every history as it stood is
    whether the trial was pruned right there."""
    events = [json.loads(line) for line in (folder / "journal.jsonl").read_text().splitlines()]
    curves: dict[str, list[tuple[float, float]]] = {}
    for ev in events:
        if ev.get("e") == "start":
            curves[ev["trial"]] = []
        elif ev.get("e") == "retry":  # continued from its checkpoint: the reports after it are gone
            curves[ev["trial"]] = [(s, v) for s, v in curves[ev["trial"]] if ev["step"] is not None and s <= ev["step"]]
        elif ev.get("e") == "report":
            trial = ev["trial"]
            curves[trial].append((ev["step"], ev["metrics"][metric]))
            if budget is not None and ev["step"] >= budget:
                continue  # the budget ends it before any verdict
            histories = {t: [v for _, v in c] for t, c in curves.items()}
            stop = wandb_stops(histories, trial, bands, eta, strict, maximize)
            ends_here = trials.loc[trial, "status"] == "pruned" and trials.loc[trial, "step"] == ev["step"]
            assert stop == ends_here, (trial, ev["step"])


def test_a_resumed_study_judges_as_if_never_interrupted(no_ray: None, in_tmp: Path) -> None:
    text = STUDY.format(fn="interrupted", metric="loss", goal="minimize", strict="true").replace(
        "max_iter: 27, s: 2", "max_iter: 9, s: 2"
    )
    out = tuner.run(study(text, allow_modules=["tests"]), quiet=True)
    assert out.interrupted
    saved = out.folder / "study.yaml"
    saved.write_text(saved.read_text().replace("curves:interrupted", "curves:falling"))
    again = tuner.resume(out.folder, quiet=True, allow_modules=["tests"])
    assert not again.interrupted and sum(again.counts.values()) == 40 and again.counts["pruned"] > 5
    trials = pd.read_parquet(out.folder / "trials.parquet").set_index("trial_id")
    journal_verdicts(out.folder, trials, "loss", [1, 3], 3, strict=True, maximize=False, budget=9)


def test_a_block_that_places_no_band_runs_and_says_so() -> None:
    loaded = study(
        """
        trainable: trainables.toy:quadratic
        metric: {name: loss}
        method: random
        run_cap: 3
        parameters: {lr: {min: 0.1, max: 1.0}}
        early_terminate: {type: hyperband, max_iter: 2, s: 1}
        """
    )
    assert any("places no band" in n and "no trial is stopped early" in n for n in loaded.notices)
