"""The pruner, without Ray running: Ray's ASHA against the paper's rule, and its own seed."""

from __future__ import annotations

import numpy as np
import pytest

from tuner.config import Asha, Median
from tuner.engine._schedulers import Pruner


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
        impl = pruner._impl
        return [impl._brackets.index(impl._trial_info[f"t{i}"]) for i in range(40)]

    assert brackets(1, 0) == brackets(1, 12345)  # the global seed does not matter
    assert brackets(1, 0) != brackets(2, 0)  # the study's seed does
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
