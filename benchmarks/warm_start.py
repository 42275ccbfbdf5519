"""Warm starts measured: does a study that starts from an older study's 20 trials reach, in
fewer trials, the regret a cold study reaches in 40?

For each problem and seed: a 20-trial ``bayes`` study (its own seed) is the old study; a cold
40-trial study and a warm one (told the old study's 20 trials first, exactly as
``warm_start: results/<old>`` does) then run with the same seed. The warm study's count is of
its own trials only: the old trials' values do not count towards what it found. Searchers are
driven directly through the ``Searcher`` interface (no Ray), as in ``search_quality.py``.

    python benchmarks/warm_start.py [--seeds 8] [--problems branin hartmann6]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.search_quality import PROBLEMS, Problem, _one_thread, ours
from tuner import searchers
from tuner.searchers import Outcome

OLD, COLD = 20, 40


run = ours("bayes")


def old_study(problem: Problem, seed: int) -> list[tuple[dict[str, Any], float]]:
    searcher = searchers.create("bayes", problem.space, seed, {}, run_cap=OLD)
    out = []
    for i in range(OLD):
        config = searcher.suggest(f"o{i}")
        assert config is not None
        value = problem.fn(config)
        searcher.tell(f"o{i}", config, Outcome(value, "complete", 1))
        out.append((config, value))
    return out


def trials_to_reach(problem: Problem, values: list[float], target: float) -> int | None:
    best = float("inf")
    for n, value in enumerate(values, start=1):
        best = min(best, value)
        if best - problem.optimum <= target:
            return n
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--problems", nargs="+", default=["branin", "hartmann6"])
    args = parser.parse_args()
    _one_thread()
    print(
        f"| problem | cold regret at {COLD} (median) | trials the warm study needed to reach it: median "
        f"[min, max] | seeds where warm needed fewer than {COLD} |"
    )
    print("|---|---|---|---|")
    for key in args.problems:
        problem = PROBLEMS[key]
        needed, colds = [], []
        for seed in range(args.seeds):
            old = old_study(problem, 1000 + seed)
            cold = run(problem, seed, COLD, [])
            target = max(min(cold) - problem.optimum, 0.0)
            warm = run(problem, seed, COLD, old)
            n = trials_to_reach(problem, warm, target)
            needed.append(n if n is not None else COLD + 1)  # not reached within 40: counted as 41
            colds.append(target)
        fewer = sum(n < COLD for n in needed)
        print(
            f"| {problem.name} | {statistics.median(colds):.2g} | {statistics.median(needed):g} "
            f"[{min(needed)}, {max(needed)}] | {fewer}/{args.seeds} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
