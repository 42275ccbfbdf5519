"""Population-based training against fixed configurations and against Ray Tune's own PBT.

    python benchmarks/pbt.py [--quick] [--members 8] [--slots 2] [--seed 0] [--seeds 3]
                             [--tasks digits schedule] [--arms ...] [--keep FOLDER]

On one private Ray of ``--slots`` CPUs, four arms with the same compute budget (``members x
max_t`` member-steps) on two tasks, each arm run once per seed (``--seeds``; the seed draws the
initial population and the members' seeds, so the arms of one seed start alike):

- ``digits``: an SGD MLP as in ``search_spaces/digits_pbt.yaml`` (64 units; learning rate and
  weight decay mutated), validation loss;
- ``schedule``: ``trainables.toy:descent``, minibatch SGD on an ill-conditioned regression whose
  best answer is a falling learning rate (its loss: the error above the least-squares optimum).

The arms: tuner's PBT and PB2 (backend ``ray``), ASHA over random configurations (its trial count
chosen so that its expected compute is the budget), and Ray Tune's ``PopulationBasedTraining``
(backend ``tune``: Ray's scheduler and Tune's runner on the same trainable). Each arm's best value
is the best member's last report, read from ``best.yaml`` alike on both backends. Printed per arm:
the median best value over the seeds with its [min-max], on how many seeds it is at or below
Ray's PBT run of that seed, and the medians of the compute used (every step trained, the steps a
member trains again after going back to a donor's checkpoint included), the wall time and the
exploits; "x Ray" divides a median by Ray's PBT's. For ``schedule`` the best fixed learning rate
is printed too (a grid of 30 rates, each trained ``max_t`` steps on 8 seeds; not budget-matched):
what no search over fixed configurations can beat.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DIGITS = """
trainable: trainables.digits:train_mlp
metric: {{name: val_loss, goal: minimize}}
parameters:
  lr: {{distribution: log_uniform_values, min: 1e-4, max: 1e-1}}
  weight_decay: {{distribution: log_uniform_values, min: 1e-6, max: 1e-2}}
  optimizer: {{value: sgd}}
  momentum: {{value: 0.9}}
  hidden: {{value: 64}}
  layers: {{value: 2}}
  batch_size: {{value: 64}}
  epochs: {{value: {max_t}}}
  checkpoint_every: {{value: {interval}}}
"""
SCHEDULE = """
trainable: trainables.toy:descent
metric: {{name: loss, goal: minimize}}
parameters:
  lr: {{distribution: log_uniform_values, min: 1e-3, max: 0.3}}
  steps: {{value: {max_t}}}
  checkpoint_every: {{value: 1}}
"""
TASKS = {"digits": DIGITS, "schedule": SCHEDULE}


def study_text(task: str, arm: str, members: int, max_t: int, interval: int, slots: int, seed: int) -> str:
    backend = "tune" if arm == "Ray Tune PBT" else "ray"
    params = TASKS[task].format(max_t=max_t, interval=interval)
    head = f"name: {task}_{arm.lower().replace(' ', '_').replace('+', '')}\nbackend: {backend}\nmethod: random\n"
    head += f"seed: {seed}\nmax_concurrent: {slots}\n"
    head += f"checkpoints: {{keep: {interval + 1}}}\n"  # a donor's boundary checkpoint outlives the next steps
    if arm == "ASHA + random":
        return head + f"run_cap: {asha_trials(members * max_t, max_t)}\n" + asha(max_t) + params
    kind = "pb2" if arm == "PB2" else "pbt"
    grid = "".join(
        f"    {name}: {{distribution: log_uniform_values, min: {lo}, max: {hi}}}\n"
        for name, (lo, hi) in bounds(task).items()
    )
    early = (
        f"early_terminate:\n  type: {kind}\n  max_t: {max_t}\n  perturbation_interval: {interval}\n"
        f"  quantile_fraction: 0.25\n  mutations:\n{grid}"
    )
    return head + f"run_cap: {members}\n" + early + params


def bounds(task: str) -> dict[str, tuple[float, float]]:
    return {"lr": (1e-4, 1e-1), "weight_decay": (1e-6, 1e-2)} if task == "digits" else {"lr": (1e-3, 0.3)}


GRACE, ETA = 2, 3


def asha(max_t: int) -> str:
    return f"early_terminate: {{type: asha, max_t: {max_t}, grace_period: {GRACE}, reduction_factor: {ETA}}}\n"


def asha_trials(budget: int, max_t: int) -> int:
    """How many trials ASHA (grace 2, factor 3) runs in ``budget`` steps, as it expects to spend:
    every trial to the first rung, a third to the next, and so on to ``max_t``."""
    rungs, r = [], GRACE
    while r < max_t:
        rungs.append(r)
        r *= ETA
    rungs.append(max_t)
    per_trial = sum((b - a) / ETA**k for k, (a, b) in enumerate(zip([0, *rungs], rungs, strict=False)))
    return max(1, round(budget / per_trial))


def run_arm(text: str) -> dict[str, Any]:
    import tuner

    began = time.perf_counter()
    out = tuner.run(tuner.load_study(text=text), quiet=True, dashboard=False)
    wall = time.perf_counter() - began
    events = [json.loads(line) for line in (out.folder / "journal.jsonl").read_text().splitlines()]
    best = tuner.load_best(out.folder)
    return {
        "best": best["metric"]["value"],
        "steps": sum(e["e"] == "report" for e in events),
        "exploits": sum(e["e"] == "exploit" for e in events),
        "wall": wall,
        "schedule": best.get("schedule"),
    }


def best_fixed_rate(max_t: int, seeds: int = 8) -> tuple[float, float, float]:
    """The best fixed learning rate of ``descent`` over ``max_t`` steps (of a grid of 30), by its
    median final loss over ``seeds`` trial seeds: ``(lr, median, best seed's)``."""
    import torch

    from trainables.toy import descent_step

    best = (math.nan, math.inf, math.inf)
    for lr in torch.logspace(-3, math.log10(0.3), 30).tolist():
        finals = []
        for seed in range(1, seeds + 1):
            w, loss = torch.zeros(8, 1), math.inf
            for step in range(1, max_t + 1):
                w, loss = descent_step(w, lr, seed, step)
            finals.append(loss if math.isfinite(loss) else math.inf)
        median = statistics.median(finals)
        if median < best[1]:
            best = (lr, median, min(finals))
    return best


ARMS = ("PBT", "PB2", "ASHA + random", "Ray Tune PBT")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="4 members, 8 steps, 2 seeds: a minute or two")
    parser.add_argument("--members", type=int, default=None)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="the first seed; each arm runs seeds seed, seed+1, ...")
    parser.add_argument("--seeds", type=int, default=None, help="runs of each arm (default 3, 2 with --quick)")
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    parser.add_argument("--keep", default=None, help="a folder to keep the studies in (default: deleted)")
    args = parser.parse_args()
    members = args.members or (4 if args.quick else 8)
    seeds = [args.seed + i for i in range(args.seeds or (2 if args.quick else 3))]
    shapes = {"digits": (8, 2) if args.quick else (12, 3), "schedule": (8, 2) if args.quick else (24, 4)}
    shapes = {task: shapes[task] for task in args.tasks}
    arms = [arm for arm in ARMS if arm in args.arms or arm == "Ray Tune PBT"]  # every ratio is to Ray's
    os.environ.pop("RAY_ADDRESS", None)
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    os.environ["TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S"] = "0"  # Tune saves its state every step

    from benchmarks._ray import private_ray

    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tuner-pbt-") as tmp:
        work = Path(args.keep).resolve() if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        os.chdir(work)
        if not (work / "trainables").exists():
            (work / "trainables").symlink_to(Path(__file__).resolve().parents[1] / "trainables")
        with private_ray(args.slots, tmp):
            for task, (max_t, interval) in shapes.items():
                for seed in seeds:  # the arms of one seed side by side: a change of load hits all of them
                    for arm in arms:
                        text = study_text(task, arm, members, max_t, interval, args.slots, seed)
                        results.setdefault(task, {}).setdefault(arm, []).append(run_arm(text))
    print_table(results, members, shapes, seeds)
    print(f"whole run: {time.perf_counter() - began:.0f} s")


def spread(values: list[float]) -> str:
    """``median [min-max]``."""
    return f"{statistics.median(values):.4g} [{min(values):.4g}-{max(values):.4g}]"


def print_table(
    results: dict[str, dict[str, list[dict[str, Any]]]],
    members: int,
    shapes: dict[str, tuple[int, int]],
    seeds: list[int],
) -> None:
    """Per task and arm, over the seeds: the best value's median and [min-max]; on how many seeds
    the arm ends at or below Ray's PBT run with that seed (the same initial population); member-steps,
    wall time and exploits (medians). Each "x Ray" divides a median by Ray's PBT's median."""
    print(f"{len(seeds)} seeds ({', '.join(map(str, seeds))}): medians, and the best value's [min-max]")
    print(
        f"{'task':9} {'arm':14} {'best [min-max]':>26} {'x Ray':>6} {'<= Ray':>6} {'steps':>6} {'x Ray':>6}"
        f" {'wall s':>7} {'x Ray':>6} {'exploits':>8}"
    )
    for task, arms in results.items():
        ray_runs = arms["Ray Tune PBT"]
        ray = {key: statistics.median(r[key] for r in ray_runs) for key in ("best", "steps", "wall")}
        max_t, interval = shapes[task]
        for arm, runs in arms.items():
            best = [r["best"] for r in runs]
            wins = sum(r["best"] <= q["best"] for r, q in zip(runs, ray_runs, strict=True))
            paired = "-" if arm == "Ray Tune PBT" else f"{wins}/{len(runs)}"
            steps, wall, exploits = (statistics.median(r[key] for r in runs) for key in ("steps", "wall", "exploits"))
            print(
                f"{task:9} {arm:14} {spread(best):>26} {statistics.median(best) / ray['best']:6.2f}"
                f" {paired:>6} {steps:6.0f} {steps / ray['steps']:6.2f} {wall:7.1f}"
                f" {wall / ray['wall']:6.2f} {exploits:8.1f}"
            )
        print(
            f"{'':9} budget: {members} members x {max_t} steps = {members * max_t} member-steps,"
            f" boundary every {interval}"
        )
        if task == "schedule":
            lr, median, luckiest = best_fixed_rate(max_t)
            print(
                f"{'':9} best fixed learning rate ({max_t} steps, 8 seeds, not budget-matched): lr {lr:.3g},"
                f" loss {median:.4g} median, {luckiest:.4g} at best"
            )
        arm, run = min(((a, r) for a, rs in arms.items() for r in rs), key=lambda ar: ar[1]["best"])
        print(f"{'':9} the best run's ({arm}) schedule: {run['schedule']}")


if __name__ == "__main__":
    main()
