"""The same studies on backend ray (tuner's engine) and backend tune (Ray Tune's Tuner), one run.

    python benchmarks/backends.py [--trials 40] [--ddp-trials 4] [--slots 2]

Three studies, each on both backends, on one private Ray of ``--slots`` CPUs: trivial trials
(``trainables.toy:sleep`` with 0 s), 1-second trials, and a 2-worker DDP study of
``trainables.toy:quadratic`` with ASHA. Wall time is from the call that starts the study to its
return (Ray's own start excluded); efficiency = ideal / wall, ideal = trials x seconds / slots.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SLEEP = """
name: {name}
trainable: trainables.toy:sleep
backend: {backend}
metric: {{name: loss, goal: minimize}}
method: random
seed: 0
run_cap: {trials}
max_concurrent: {slots}
storage: {storage}
parameters:
  x: {{min: 0.0, max: 1.0}}
  seconds: {{value: {seconds}}}
"""

DDP = """
name: {name}
trainable: trainables.toy:quadratic
backend: {backend}
metric: {{name: loss, goal: minimize}}
method: bayes
seed: 0
run_cap: {trials}
max_concurrent: 1
searcher: {{init_points: 2}}
storage: {storage}
resources: {{workers: 2}}
early_terminate: {{type: asha, max_t: 9, grace_period: 1, reduction_factor: 3}}
parameters:
  lr: {{distribution: log_uniform_values, min: 1e-4, max: 1e-1}}
  layers: {{distribution: int_uniform, min: 1, max: 6}}
  act: {{values: [relu, tanh]}}
  steps: {{value: 9}}
  sleep: {{value: 0.05}}
"""


def run(text: str) -> tuple[float, float | None, int]:
    """Wall seconds, the best value, and how many trials ended."""
    import tuner

    start = time.perf_counter()
    out = tuner.run(tuner.load_study(text=text), quiet=True)
    wall = time.perf_counter() - start
    ended = sum(n for status, n in out.counts.items() if status != "running")
    return wall, None if out.best is None else out.best.value, ended


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--ddp-trials", type=int, default=4)
    parser.add_argument("--slots", type=int, default=2)
    args = parser.parse_args()
    os.environ.pop("RAY_ADDRESS", None)
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"

    from benchmarks._ray import private_ray

    rows = []
    with tempfile.TemporaryDirectory(prefix="tuner-bench-") as tmp, private_ray(args.slots, tmp):
        cases = [
            ("trivial trials", SLEEP, args.trials, 0.0),
            ("1-second trials", SLEEP, args.trials, 1.0),
            ("2-worker DDP + ASHA", DDP, args.ddp_trials, None),
        ]
        for label, template, trials, seconds in cases:
            for backend in ("ray", "tune"):
                name = f"{label.split()[0].replace('-', '')}_{backend}"
                text = template.format(
                    name=name, backend=backend, trials=trials, slots=args.slots, seconds=seconds, storage=tmp
                )
                wall, best, ended = run(text)
                ideal = None if seconds is None else trials * seconds / args.slots
                rows.append((label, backend, trials, wall, ideal, best, ended))
    print(f"{'study':22} {'backend':8} {'trials':>6} {'wall s':>8} {'efficiency':>10} {'best':>10}")
    walls: dict[str, dict[str, float]] = {}
    for label, backend, _trials, wall, ideal, best, ended in rows:
        eff = f"{ideal / wall:.3f}" if ideal else "-"
        value = "-" if best is None else f"{best:.4g}"
        print(f"{label:22} {backend:8} {ended:>6} {wall:8.2f} {eff:>10} {value:>10}")
        walls.setdefault(label, {})[backend] = wall
    for label, by in walls.items():
        print(f"{label}: backend tune takes {by['tune'] / by['ray']:.2f}x the wall time of backend ray")


if __name__ == "__main__":
    main()
