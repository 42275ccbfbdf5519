"""A real training task: the digits CNN tuned by ``bayes``, with and without ASHA, same budget of trials.

    python benchmarks/digits_asha.py [--seeds 3] [--trials 24] [--epochs 27] [--concurrent 2]

Prints, per seed and as medians: epochs trained in all, wall time, and the best validation
accuracy among trials that trained to the end. The target: ASHA spends at most 40% of the
unpruned study's epochs for a best accuracy within 0.5 points of it. With ``--concurrent 1`` a
seed's studies are exactly repeatable (with 2, results arrive in varying order); slower.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tuner
from tuner.config import load_study

STUDY = """
name: {name}
trainable: trainables.digits:train_cnn
metric: {{name: val_accuracy, goal: maximize}}
method: bayes
seed: {seed}
run_cap: {trials}
max_concurrent: {concurrent}
{asha}
parameters:
  lr: {{distribution: log_uniform_values, min: 1e-4, max: 1e-1}}
  optimizer: {{values: [adam, sgd]}}
  channels: {{values: [4, 8, 16]}}
  hidden: {{distribution: q_uniform, min: 16, max: 128, q: 16}}
  dropout: {{min: 0.0, max: 0.5}}
  batch_size: {{values: [32, 64, 128]}}
  checkpoint_every: {{value: 1000}}
"""


def run(seed: int, trials: int, epochs: int, asha: bool, storage: Path, concurrent: int = 2) -> dict[str, float]:
    pruning = f"early_terminate: {{type: asha, max_t: {epochs}, grace_period: 1, reduction_factor: 3}}"
    name = f"{'asha' if asha else 'full'}{seed}"
    text = STUDY.format(name=name, seed=seed, trials=trials, asha=pruning if asha else "", concurrent=concurrent)
    if not asha:
        text += f"  epochs: {{value: {epochs}}}\n"
    study = load_study(text=textwrap.dedent(text), storage=str(storage))
    began = time.perf_counter()
    out = tuner.run(study, quiet=True, dashboard=False)
    wall = time.perf_counter() - began
    trials_frame = tuner.load_results(out.folder)
    finished = trials_frame[trials_frame["status"] == "finished"]
    return {
        "epochs": float(len(tuner.load_history(out.folder))),
        "wall_s": wall,
        "best": float(finished["value"].max()) if len(finished) else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=27)
    parser.add_argument("--concurrent", type=int, default=2, help="trials at a time (1: exactly repeatable)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as storage:
        for seed in range(args.seeds):
            full = run(seed, args.trials, args.epochs, asha=False, storage=Path(storage), concurrent=args.concurrent)
            pruned = run(seed, args.trials, args.epochs, asha=True, storage=Path(storage), concurrent=args.concurrent)
            rows.append((full, pruned))
            print(
                f"seed {seed}: without ASHA {full['epochs']:.0f} epochs, {full['wall_s']:.0f} s, best "
                f"{100 * full['best']:.2f}%; with ASHA {pruned['epochs']:.0f} epochs "
                f"({pruned['epochs'] / full['epochs']:.0%}), {pruned['wall_s']:.0f} s, "
                f"best {100 * pruned['best']:.2f}%",
                flush=True,
            )
    share = statistics.median(p["epochs"] / f["epochs"] for f, p in rows)
    gap = statistics.median(100 * (f["best"] - p["best"]) for f, p in rows)
    wall = statistics.median(p["wall_s"] / f["wall_s"] for f, p in rows)
    print(
        f"median over {args.seeds} seeds: ASHA trains {share:.0%} of the epochs in {wall:.0%} of the wall time; "
        f"best accuracy {gap:+.2f} points below the unpruned study's (target: at most 40% and 0.5 points)"
    )


if __name__ == "__main__":
    main()
