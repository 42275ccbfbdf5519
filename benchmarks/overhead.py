"""Per-trial overhead: N trials of S seconds of work on 2 slots, tuner versus Ray Tune's defaults.

    python benchmarks/overhead.py [--trials 40] [--seconds 1.0] [--slots 2]
    python benchmarks/overhead.py --trials 60 --seconds 0     # trivial trials: the fixed cost alone

Both run in this one process on the same private Ray. Efficiency = ideal time / wall time,
where ideal = trials * seconds / slots. Wall time covers everything from the call that
starts the study to its return (workers included), but not Ray's own start.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def sleep_trial(config: dict) -> None:  # the Ray Tune version of trainables.toy:sleep
    from ray import tune

    time.sleep(config["seconds"])
    tune.report({"loss": config["x"]})


def run_tuner(trials: int, seconds: float, storage: str) -> float:
    import tuner

    study = tuner.load_study(
        text=f"""
name: overhead
trainable: trainables.toy:sleep
metric: {{name: loss, goal: minimize}}
method: random
seed: 0
run_cap: {trials}
storage: {storage}
parameters:
  x: {{min: 0.0, max: 1.0}}
  seconds: {{value: {seconds}}}
"""
    )
    start = time.perf_counter()
    out = tuner.run(study, quiet=True)
    wall = time.perf_counter() - start
    assert out.counts["finished"] == trials, out.counts
    return wall


def run_ray_tune(trials: int, seconds: float, storage: str) -> float:
    from ray import tune

    tuner_ = tune.Tuner(
        sleep_trial,
        param_space={"x": tune.uniform(0, 1), "seconds": seconds},
        tune_config=tune.TuneConfig(num_samples=trials, metric="loss", mode="min"),
        run_config=tune.RunConfig(storage_path=storage, verbose=0),
    )
    start = time.perf_counter()
    grid = tuner_.fit()
    wall = time.perf_counter() - start
    assert len(grid) == trials and not grid.errors
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--slots", type=int, default=2)
    args = parser.parse_args()
    os.environ.pop("RAY_ADDRESS", None)
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"

    from benchmarks._ray import private_ray

    with tempfile.TemporaryDirectory(prefix="tuner-bench-") as tmp, private_ray(args.slots, tmp):
        ideal = args.trials * args.seconds / args.slots
        t_tuner = run_tuner(args.trials, args.seconds, os.path.join(tmp, "tuner"))
        t_tune = run_ray_tune(args.trials, args.seconds, os.path.join(tmp, "tune"))
    e_tuner, e_tune = ideal / t_tuner, ideal / t_tune
    o_tuner, o_tune = ((t - ideal) * args.slots / args.trials for t in (t_tuner, t_tune))
    print(f"{args.trials} trials x {args.seconds:g} s on {args.slots} slots; ideal {ideal:.1f} s")
    print(f"tuner         wall {t_tuner:7.2f} s  efficiency {e_tuner:.3f}  overhead/trial {o_tuner:.3f} s")
    print(f"Ray Tune      wall {t_tune:7.2f} s  efficiency {e_tune:.3f}  overhead/trial {o_tune:.3f} s")
    if ideal > 0:
        print(f"ratio (tuner efficiency / Ray Tune efficiency): {e_tuner / e_tune:.2f}x")
    else:  # trivial trials: all of the time is overhead
        print(f"ratio (Ray Tune wall / tuner wall): {t_tune / t_tuner:.2f}x")


if __name__ == "__main__":
    main()
