"""One Ray Tune script's study, run by ``ray.tune.Tuner`` and by ``tuner.integrations.ray_tune.Tuner``.

    python benchmarks/tune_script.py [--trials 40] [--reports 10] [--seconds 0.02]

The same ``Tuner(...)`` arguments (a function trainable defined here, in ``__main__``, reporting
through ``tune.report``; Tune's domains; ``TuneConfig`` and ``RunConfig``) go to both, on the same
private Ray with 2 CPUs: once with random search alone, once with Ray's ``ASHAScheduler``. Prints
each run's wall time (from the call to ``fit`` to its return), its trials by how they ended, its
best loss, and the ratio of the walls.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def objective(config: dict[str, Any]) -> None:
    """A Ray Tune trainable as Ray's examples write it: a loss that improves with each report."""
    from ray import tune

    for step in range(1, config["reports"] + 1):
        time.sleep(config["seconds"])
        loss = (config["x"] - 0.3) ** 2 + (config["y"] + 1.0) ** 2 / 10 + 1.0 / step
        tune.report({"loss": loss})


def arguments(trials: int, reports: int, seconds: float, storage: str, name: str, asha: bool) -> dict[str, Any]:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    scheduler = ASHAScheduler(max_t=reports, grace_period=1, reduction_factor=3) if asha else None
    return {
        "param_space": {"x": tune.uniform(0, 1), "y": tune.uniform(-2, 2), "reports": reports, "seconds": seconds},
        "tune_config": tune.TuneConfig(
            metric="loss", mode="min", num_samples=trials, max_concurrent_trials=2, scheduler=scheduler
        ),
        "run_config": tune.RunConfig(name=name, storage_path=storage, verbose=0),
    }


def timed(tuner_class: Any, **kwargs: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    results = tuner_class(objective, **kwargs).fit()
    return time.perf_counter() - start, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--reports", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=0.02)
    args = parser.parse_args()
    os.environ.pop("RAY_ADDRESS", None)
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"

    from ray import tune

    from benchmarks._ray import private_ray
    from tuner.integrations.ray_tune import Tuner

    rows = []
    with tempfile.TemporaryDirectory(prefix="tuner-bench-") as tmp, private_ray(2, tmp):
        for asha in (False, True):
            study = "ASHA" if asha else "random"
            for label, cls in (("ray.tune.Tuner", tune.Tuner), ("tuner's Tuner", Tuner)):
                kwargs = arguments(args.trials, args.reports, args.seconds, tmp, f"{study}-{cls.__module__}", asha)
                wall, results = timed(cls, **kwargs)
                frame = results.get_dataframe()
                best = results.get_best_result(metric="loss", mode="min", scope="all").metrics["loss"]
                stops = (frame["training_iteration"] < args.reports).sum()
                rows.append((study, label, wall, len(frame), int(stops), best))
    print(f"{args.trials} trials x {args.reports} reports x {args.seconds:g} s, 2 at a time, 2 CPUs")
    print(f"{'study':<8} {'runner':<16} {'wall':>8} {'trials':>7} {'stopped early':>14} {'best loss':>10}")
    for study, label, wall, n, stops, best in rows:
        print(f"{study:<8} {label:<16} {wall:7.2f}s {n:>7} {stops:>14} {best:>10.4f}")
    for i in range(0, len(rows), 2):
        print(f"{rows[i][0]}: ray.tune.Tuner wall / tuner's Tuner wall = {rows[i][2] / rows[i + 1][2]:.2f}x")


if __name__ == "__main__":
    main()
