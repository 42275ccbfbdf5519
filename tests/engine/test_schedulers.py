"""The schedulers, without Ray running: ASHA against the paper's rule, ASHA and the median rule
against Ray's own classes decision by decision, and the cutoff against numpy bit for bit."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ray.tune.schedulers import ASHAScheduler, MedianStoppingRule, TrialScheduler

from tuner.config import Asha, Median
from tuner.engine._asha import BIG_BUDGET, AsyncSuccessiveHalving, Rung
from tuner.engine._hyperband import WandbHyperband
from tuner.engine._median import MedianStopping
from tuner.engine._scheduler import NoScheduler, Scheduler
from tuner.engine._schedulers import Pruner

ROOT = Path(__file__).resolve().parents[2]


def paper_rule(reports: list[tuple[str, int, float]], rungs: list[int], eta: float, maximize: bool) -> set[str]:
    """The trials asynchronous successive halving stops, written from the ASHA paper (Li et al.,
    2020): a trial reaching rung k goes on only if its value is in the top 1/eta of the values
    recorded at rung k before it (the (1 - 1/eta) quantile, interpolated linearly, as the cut);
    the first trial at a rung always goes on. Returns the ids of the stopped trials."""
    recorded: dict[int, list[float]] = {r: [] for r in rungs}
    stopped: set[str] = set()
    passed: dict[str, set[int]] = {}
    for trial, step, value in reports:
        if trial in stopped:
            continue
        score = value if maximize else -value
        for rung in sorted(rungs, reverse=True):  # the highest rung reached and not yet recorded
            if step >= rung and rung not in passed.setdefault(trial, set()):
                earlier = recorded[rung]
                if earlier and score < np.percentile(earlier, (1 - 1 / eta) * 100):
                    stopped.add(trial)
                earlier.append(score)
                passed[trial].add(rung)
                break
    return stopped


def recorded_reports(seed: int, trials: int = 30, max_t: int = 27) -> list[tuple[str, int, float]]:
    """Reports as they might arrive from 3 trials at a time: interleaved, noisy learning curves."""
    rng = np.random.default_rng(seed)
    quality = rng.uniform(0, 1, trials)
    pending = list(range(trials))
    running: list[tuple[int, int]] = []  # (trial, next step)
    out = []
    while pending or running:
        while len(running) < 3 and pending:
            running.append((pending.pop(0), 1))
        i = int(rng.integers(len(running)))
        trial, step = running[i]
        value = quality[trial] + 1.0 / step + rng.normal(0, 0.02)
        out.append((f"t{trial}", step, float(value)))
        running[i] = (trial, step + 1)
        if step >= max_t or rng.random() < 0.03:
            running.pop(i)
    return out


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("maximize", [False, True])
def test_asha_stops_exactly_the_trials_the_paper_rule_stops(seed: int, maximize: bool) -> None:
    reports = recorded_reports(seed)
    if maximize:
        reports = [(t, s, -v) for t, s, v in reports]
    pruner = Pruner(Asha(type="asha", max_t=27, grace_period=1, reduction_factor=3), "loss", maximize, seed=0)
    stopped: set[str] = set()
    for trial in dict.fromkeys(t for t, _, _ in reports):
        pruner.add(trial)
    for trial, step, value in reports:
        if trial not in stopped and step < 27 and pruner.should_stop(trial, step, value):
            stopped.add(trial)
    expected = paper_rule(reports, [1, 3, 9], eta=3, maximize=maximize)
    assert stopped == expected
    assert 5 <= len(stopped) < 30  # the sequence exercises the rule


def test_asha_brackets_come_from_the_pruners_own_generator() -> None:
    spec = Asha(type="asha", max_t=81, grace_period=1, reduction_factor=3, brackets=3)

    def brackets(study_seed: int, global_seed: int) -> list[int]:
        np.random.seed(global_seed)
        pruner = Pruner(spec, "loss", False, seed=study_seed)
        for i in range(40):
            pruner.add(f"t{i}")
        assert isinstance(pruner.scheduler, AsyncSuccessiveHalving)
        return [pruner.scheduler.bracket(f"t{i}") for i in range(40)]

    assert brackets(1, 0) == brackets(1, 12345)  # the global seed does not matter
    assert brackets(1, 0) != brackets(2, 0)  # the study's seed does
    assert len(set(brackets(1, 0))) == 3
    np.random.seed(7)
    before = np.random.random()
    np.random.seed(7)
    brackets(3, 7)
    np.random.seed(7)
    assert np.random.random() == before  # and the global generator is left as it was


def test_median_rule_prunes_below_the_median_of_others() -> None:
    pruner = Pruner(Median(type="median", grace_period=1, min_samples_required=2), "loss", False)
    for t in ("a", "b", "c"):
        pruner.add(t)
    for step in (1, 2, 3):
        assert not pruner.should_stop("a", step, 1.0 / step)
        assert not pruner.should_stop("b", step, 1.2 / step)
    pruner.remove("a", {"step": 3, "loss": 1 / 3})
    pruner.remove("b", {"step": 3, "loss": 0.4})
    assert pruner.should_stop("c", 2, 5.0)


def test_no_scheduler_never_prunes() -> None:
    pruner = Pruner(None, "loss", False)
    pruner.add("a")
    assert not pruner.should_stop("a", 1, 1e9) and pruner.max_t is None


# --- the cutoff, bit for bit numpy's -----------------------------------------------------------


def same(ours: float | None, theirs: Any) -> bool:
    """Equal floats, both NaN, or both None: equality, never closeness."""
    if ours is None or theirs is None:
        return ours is None and theirs is None
    return (math.isnan(ours) and math.isnan(theirs)) or ours == theirs


def scores(rng: np.random.Generator, n: int) -> list[float]:
    """Scores with ties, NaNs, infinities and wide magnitudes mixed in."""
    kind = rng.integers(5, size=n)
    out = rng.normal(0, 1, n) * 10.0 ** rng.integers(-8, 9, size=n)
    out = np.where(kind == 1, np.round(rng.normal(0, 2, n)), out)  # many ties
    out = np.where(kind == 2, rng.choice([np.nan, np.inf, -np.inf, 1e308, -1e308], n, p=[0.6, 0.1, 0.1, 0.1, 0.1]), out)
    return [float(v) for v in out]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("rf", [1.01, 1.5, 2, 3, 4, 7.3, 1000, 1e9])
@pytest.mark.parametrize("seed", range(4))
def test_rung_cutoff_is_numpys_nanpercentile_bit_for_bit(rf: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    finite_only = seed % 2 == 0
    values = [v for v in scores(rng, 400) if not finite_only or math.isfinite(v)][:300]
    pct = (1 - 1 / rf) * 100
    rung = Rung(1, pct / 100)
    assert rung.cutoff() is None
    for i, v in enumerate(values):
        rung.record(f"t{i}", v)
        assert same(rung.cutoff(), np.nanpercentile(values[: i + 1], pct)), (i, values[: i + 1])


# --- against Ray's own classes -------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    trial_id: str


class NoLiveTrials:
    def get_live_trials(self) -> list[Any]:
        return []


@pytest.fixture
def global_numpy() -> Iterator[None]:
    """Ray draws ASHA's brackets from numpy's global generator: leave it as it was."""
    state = np.random.get_state()
    yield
    np.random.set_state(state)


def drive(
    seed: int,
    ours: Scheduler,
    theirs: Any,
    check: Any = None,
    trials: int = 60,
    running: int = 6,
) -> tuple[int, int]:
    """Random interleaved streams of add/report/complete/remove, sent to both schedulers; every
    decision must match. Steps sometimes go back or repeat; values have ties, NaNs and infinities.
    Returns (reports, stops)."""
    rng = np.random.default_rng(seed + 1000)
    ctl = NoLiveTrials()
    live: dict[str, tuple[float, float]] = {}  # trial -> its last (step, value)
    quality: dict[str, float] = {}
    added = reports = stops = 0

    def finish(trial: str, with_result: bool) -> None:
        last = live.pop(trial)
        if with_result:
            ours.end(trial, last)
            theirs.on_trial_complete(ctl, Ref(trial), {"step": last[0], "loss": last[1]})
        else:
            ours.end(trial, None)
            theirs.on_trial_remove(ctl, Ref(trial))

    while added < trials or live:
        if added < trials and (not live or (len(live) < running and rng.random() < 0.5)):
            trial = f"t{added}"
            added += 1
            ours.add(trial)
            theirs.on_trial_add(ctl, Ref(trial))
            live[trial] = (0.0, math.nan)
            quality[trial] = float(rng.uniform(0, 1))
            if check is not None:
                check(trial)
            continue
        trial = list(live)[int(rng.integers(len(live)))]
        if rng.random() < 0.06:  # ends on its own: finished, or failed without a result
            finish(trial, live[trial][0] > 0 and rng.random() < 0.7)
            continue
        before = live[trial][0]
        r = rng.random()
        if r < 0.1 and before > 1:  # out of order, or a step again
            step = float(rng.integers(1, before + 1))
        else:
            step = before + float(rng.integers(1, 4)) + (0.5 if r > 0.95 else 0.0)
        value = float(np.round(quality[trial] + 1 / step + rng.normal(0, 0.1), 2))
        if r < 0.03:
            value = math.nan
        elif r > 0.99:
            value = math.inf if r > 0.995 else -math.inf
        live[trial] = (step, value)
        decision = ours.report(trial, step, value)
        expected = theirs.on_trial_result(ctl, Ref(trial), {"step": step, "loss": value}) == TrialScheduler.STOP
        assert decision == expected, (seed, trial, step, value)
        reports += 1
        if check is not None:
            check(trial)
        if decision:
            stops += 1
            finish(trial, rng.random() < 0.7)
    return reports, stops


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("seed", range(30))
def test_asha_makes_the_decisions_rays_asha_makes(seed: int, maximize: bool, global_numpy: None) -> None:
    pick = np.random.default_rng(seed)
    brackets = int(pick.integers(1, 4))
    rf = [2, 3, 4, 2.5][seed % 4]
    grace = int(pick.integers(1, 4))
    max_t = None if seed % 3 == 0 else int(pick.integers(grace, 40))
    stop_last = seed % 5 != 4
    mode = "max" if maximize else "min"
    ours = AsyncSuccessiveHalving(
        max_t=max_t,
        grace_period=grace,
        reduction_factor=rf,
        brackets=brackets,
        maximize=maximize,
        seed=seed,
        stop_last_trials=stop_last,
    )
    np.random.seed(seed)  # Ray's draws, from the global generator seeded alike
    theirs = ASHAScheduler(
        time_attr="step",
        metric="loss",
        mode=mode,
        max_t=max_t or BIG_BUDGET,
        grace_period=grace,
        reduction_factor=rf,
        brackets=brackets,
        stop_last_trials=stop_last,
    )

    def check_bracket(b: int) -> None:
        rungs, bracket = ours.rungs(b), theirs._brackets[b]
        assert [r.milestone for r in rungs] == [m for m, _ in bracket._rungs]
        for rung, (_, recorded) in zip(rungs, bracket._rungs, strict=True):
            assert rung.recorded == set(recorded)
            assert same(rung.cutoff(), bracket.cutoff(recorded))

    def check(trial: str) -> None:  # after the trial's add or report: its bracket, its rungs
        assert ours.bracket(trial) == theirs._brackets.index(theirs._trial_info[trial])
        check_bracket(ours.bracket(trial))

    reports, stops = drive(seed, ours, theirs, check)
    for b in range(brackets):
        check_bracket(b)
    assert stops > 0 and reports > 60


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("seed", range(30))
def test_median_rule_makes_the_decisions_rays_rule_makes(seed: int, maximize: bool) -> None:
    pick = np.random.default_rng(seed)
    grace = int(pick.integers(0, 4))
    samples = int(pick.integers(1, 5))
    ours = MedianStopping(grace_period=grace, min_samples_required=samples, maximize=maximize)
    theirs = MedianStoppingRule(
        time_attr="step",
        metric="loss",
        mode="max" if maximize else "min",
        grace_period=grace,
        min_samples_required=samples,
        min_time_slice=0,
    )
    reports, stops = drive(seed, ours, theirs)
    assert stops > 0 and reports > 60


# --- every scheduler ------------------------------------------------------------------------------


SCHEDULERS = {
    "none": lambda: NoScheduler(),
    "asha": lambda: AsyncSuccessiveHalving(max_t=9, grace_period=1, reduction_factor=3, brackets=2),
    "median": lambda: MedianStopping(grace_period=1, min_samples_required=1),
    "hyperband": lambda: WandbHyperband(bands=[1, 3, 9], eta=3),
}


@pytest.mark.parametrize("name", SCHEDULERS)
def test_a_scheduler_never_stops_the_first_trial_before_its_budget(name: str) -> None:
    scheduler = SCHEDULERS[name]()
    scheduler.add("a")
    assert not any(scheduler.report("a", step, 1.0 / step) for step in range(1, 9))
    scheduler.end("a", (8, 1 / 8))
    scheduler.add("b")
    scheduler.end("b", None)  # dropped without a result


@pytest.mark.parametrize("name", SCHEDULERS)
def test_a_scheduler_that_prunes_stops_a_trial_far_worse_than_the_others(name: str) -> None:
    scheduler = SCHEDULERS[name]()
    for trial in ("a", "b"):
        scheduler.add(trial)
        for step in range(1, 4):
            scheduler.report(trial, step, 1.0 / step)
    scheduler.add("c")
    stopped = any(scheduler.report("c", step, 100.0) for step in range(1, 4))
    assert stopped == scheduler.prunes


def test_the_schedulers_import_no_ray() -> None:
    modules = ("_schedulers", "_scheduler", "_asha", "_median", "_hyperband")
    code = "; ".join(
        [
            "import sys",
            *(f"import tuner.engine.{m}" for m in modules),
            "assert not any(m == 'ray' or m.startswith('ray.') for m in sys.modules), 'ray imported'",
        ]
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
