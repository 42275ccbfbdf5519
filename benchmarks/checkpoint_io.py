"""Checkpoints off the driver's hot path: a trial reporting a 200 MB checkpoint every step, run by
this tree (rank 0 writes to storage, the driver records the path) and by an earlier commit
(every checkpoint sent to the driver, which wrote it). Both in one run, each driver a fresh
process on a fresh embedded Ray; prints the driver's peak memory and the seconds per step.

    python benchmarks/checkpoint_io.py [--mb 200] [--steps 6] [--before 48006c7]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "48006c7"  # the last commit whose driver received and wrote every checkpoint

TRAINABLE = '''
import time
import torch


def heavy(config, trial):
    """Reports a checkpoint of ``mb`` megabytes at every step (fresh tensors each time)."""
    for step in range(1, int(config["steps"]) + 1):
        time.sleep(0.2)
        weights = torch.full((int(config["mb"]) * 2**18,), float(step))  # 4 bytes a float
        trial.report(step, loss=1.0 / step, checkpoint={"weights": weights})
'''

DRIVER = """
import json, resource, sys, textwrap, time
sys.path.insert(0, sys.argv[1])
import tuner
from tuner.config import load_study
study = load_study(text=textwrap.dedent(sys.argv[2]), allow_modules=["bench_heavy"])
began = time.perf_counter()
out = tuner.run(study, quiet=True, dashboard=False, num_cpus=2)
wall = time.perf_counter() - began
history = tuner.load_history(out.folder)
steps = history["time_s"].diff().dropna()
print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "step_s": float(steps.median()), "wall_s": wall, "reports": len(history)}))
"""


def arm(code: Path, work: Path, mb: int, steps: int) -> dict[str, float]:
    study = f"""
    name: heavy
    trainable: bench_heavy:heavy
    metric: {{name: loss, goal: minimize}}
    method: grid
    storage: {work / "results"}
    parameters:
      mb: {{value: {mb}}}
      steps: {{value: {steps}}}
    """
    env = {**os.environ, "PYTHONPATH": f"{code}{os.pathsep}{work}", "RAY_TMPDIR": str(work / "ray")}
    env.pop("RAY_ADDRESS", None)
    (work / "ray").mkdir(exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(code), study],
        cwd=work, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _median(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    """Of two runs (the mean of two: the median of two)."""
    return {k: (a[k] + b[k]) / 2 for k in a}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--before", default=BEFORE, help="the commit to compare with")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ckpt", dir="/tmp") as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "bench_heavy.py").write_text(textwrap.dedent(TRAINABLE))
        old = tmp_path / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), args.before],
                       check=True, capture_output=True)  # fmt: skip
        try:  # ABBA: each arm first once, so that neither pays for what the other left running
            runs = [arm(code, tmp_path, args.mb, args.steps) for code in (old, ROOT, ROOT, old)]
            before, after = _median(runs[0], runs[3]), _median(runs[1], runs[2])
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=False)
    print(f"a {args.mb} MB checkpoint at each of {args.steps} steps (one trial, embedded Ray; mean of 2 runs each):")
    for name, r in (("before (" + args.before + ")", before), ("now", after)):
        print(
            f"  {name:>18}: driver peak {r['peak_mb']:.0f} MB, {r['step_s']:.2f} s a step, {r['wall_s']:.1f} s in all"
        )
    print(
        f"driver peak memory {after['peak_mb'] / before['peak_mb']:.2f}x, "
        f"time a step {after['step_s'] / before['step_s']:.2f}x of before"
    )


if __name__ == "__main__":
    main()
