"""GPU packing: the aggregate throughput of many small trials on one GPU, against the loop alone.

    python benchmarks/gpu_packing.py                              # one H100/H200: at most 5 minutes
    python benchmarks/gpu_packing.py --cpu --trials 2 --steps 5   # the script itself, on a CPU

The loop is ``trainables/anchor_cnn.py`` (5 conv layers, 600 steps of batch 256, bf16 autocast,
data on the GPU). Arms: ``alone``, the loop in one warm process (after a 100-step warm-up);
``tune``, Ray Tune's ``Tuner`` at 0.125 GPU a trial; ``fraction``, tuner with ``gpus: 0.125``;
``auto``, tuner with ``gpus: auto`` (a row that says why where the installed tuner refuses it;
``auto`` even with ``--cpu``, where it says what it does without a GPU);
each tuner and Ray Tune arm on every count of ``--trials`` (8 and 32). Every trial takes
``--cpus`` CPUs. All arms run one after the other on one private Ray (its start is not counted).

Printed per arm: aggregate samples/s over the trials' span (from the first trial's entry into
the trainable to the last one's end), its ratio to ``alone``, the span, the whole call's wall
time (``Tuner.fit`` or ``tuner.run``: the workers' start included), the GPU's busy fraction over
the span (NVML, sampled every 0.2 s), and for tuner how long the first report took, in the first
trial of each slot against the later trials (a cold start shows as a gap between the two).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FRACTION = 0.125
NAMES = {"tune": f"Ray Tune, {FRACTION} GPU", "fraction": f"tuner, gpus: {FRACTION}"}


class Busy:
    """The GPU's utilisation, sampled by NVML on a thread; ``None`` figures without NVML or a GPU."""

    def __init__(self, enabled: bool) -> None:
        self.samples: list[tuple[float, float]] = []
        self.why = "no GPU (--cpu)" if not enabled else ""
        self._stop = threading.Event()
        if not enabled:
            return
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml, self._handle = pynvml, pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception as exc:
            self.why = f"no NVML ({type(exc).__name__})"
            return
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            util = self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu
            self.samples.append((time.time(), float(util)))

    def mean(self, begin: float, end: float) -> str:
        inside = [u for t, u in self.samples if begin <= t <= end]
        return f"{sum(inside) / len(inside):.0f}%" if inside else (self.why or "no sample")

    def close(self) -> None:
        self._stop.set()


def config(args: argparse.Namespace) -> dict[str, Any]:
    return {"steps": args.steps, "batch": args.batch, "device": "cpu" if args.cpu else "cuda", "report_every": 100}


def alone(args: argparse.Namespace) -> dict[str, Any]:
    """The loop in one process, after a warm-up of 100 steps (or the run's steps, if fewer)."""
    cfg = config(args)
    warm = {**cfg, "steps": min(100, args.steps)}
    code = (
        "import json; from trainables.anchor_cnn import loop; "
        f"loop({warm!r}); print('RESULT', json.dumps(loop({cfg!r})))"
    )
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    result = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("RESULT"))[7:])
    return {"rows": [result], "wall": wall}


def ray_tune(args: argparse.Namespace, trials: int, storage: str) -> dict[str, Any]:
    from ray import tune

    from trainables.anchor_cnn import train_tune

    resources = {"cpu": args.cpus, **({} if args.cpu else {"gpu": FRACTION})}
    tuner_ = tune.Tuner(
        tune.with_resources(train_tune, resources),
        param_space={**config(args), "lr": tune.loguniform(0.01, 0.1)},
        tune_config=tune.TuneConfig(num_samples=trials),
        run_config=tune.RunConfig(storage_path=storage, verbose=0),
    )
    start = time.perf_counter()
    grid = tuner_.fit()
    wall = time.perf_counter() - start
    if grid.errors:
        raise RuntimeError(f"{len(grid.errors)} Ray Tune trial(s) failed: {grid.errors[0]}")
    return {"rows": [grid[i].metrics for i in range(len(grid))], "wall": wall}


def run_tuner(args: argparse.Namespace, trials: int, gpus: str, storage: str) -> dict[str, Any]:
    import tuner

    cfg = config(args)
    values = "\n".join(f"  {k}: {{value: {v}}}" for k, v in cfg.items())
    study = tuner.load_study(
        text=f"""
name: packing
trainable: trainables.anchor_cnn:train
metric: {{name: loss, goal: minimize}}
method: random
seed: 0
run_cap: {trials}
storage: {storage}
resources: {{gpus: {0 if args.cpu and gpus != "auto" else gpus}, cpus: {args.cpus}}}
parameters:
  lr: {{distribution: log_uniform_values, min: 0.01, max: 0.1}}
{values}
"""
    )
    start = time.perf_counter()
    out = tuner.run(study, quiet=True)
    wall = time.perf_counter() - start
    trials_ = tuner.load_results(out.folder)
    if (trials_["status"] != "finished").any():
        raise RuntimeError(f"tuner trials did not all finish: {trials_['status'].value_counts().to_dict()}")
    rows = [{str(k)[7:]: v for k, v in row.items() if str(k).startswith("metric_")} for _, row in trials_.iterrows()]
    launched: dict[str, float] = {}  # trial -> when the driver sent it to a worker
    for line in (out.folder / "journal.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event.get("e") == "start":
            launched.setdefault(event["trial"], event["t"])
    history = tuner.load_history(out.folder).sort_values("time_s")
    reported = history.groupby("trial_id")["t_report"].first()
    first = sorted((launched[t], reported[t] - launched[t]) for t in reported.index if t in launched)
    return {"rows": rows, "wall": wall, "first_report": [seconds for _, seconds in first]}


def first_reports(result: dict[str, Any], slots: int) -> str:
    """Seconds from a trial's launch to its first report (medians): the first trial on each
    slot (the first ``slots`` launched: a fresh worker's start-up included), then the later ones."""
    first = result.get("first_report")
    if not first:
        return ""
    early, late = first[:slots], first[slots:]
    later = f", later {statistics.median(late):.1f} s" if late else ""
    return f"first report: first wave {statistics.median(early):.1f} s{later}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", default="8,32", help="trial counts, comma-separated")
    parser.add_argument("--arms", default="alone,tune,fraction,auto")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=None, help="256 on a GPU, 32 with --cpu")
    parser.add_argument("--cpus", type=float, default=1.0, help="CPUs a trial")
    parser.add_argument("--cpu", action="store_true", help="no GPU: the loop on the CPU, every arm at 0 GPUs")
    args = parser.parse_args()
    args.batch = args.batch or (32 if args.cpu else 256)
    counts = [int(n) for n in args.trials.split(",")]
    arms = args.arms.split(",")
    os.environ.pop("RAY_ADDRESS", None)
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    os.environ.setdefault("PYTHONPATH", str(ROOT))

    from benchmarks._ray import private_ray

    busy = Busy(enabled=not args.cpu)
    table: list[tuple[str, int, str]] = []  # arm, trials, the rest of the row
    command = time.perf_counter()
    base = None
    if "alone" in arms:
        result = alone(args)
        row = result["rows"][0]
        base = row["samples_per_s"]
        line = f"{base:10.0f}  {1.0:7.2f}x  {row['t_end'] - row['t_begin']:7.1f}  {result['wall']:7.1f}"
        table.append(("alone (one warm process)", 1, f"{line}  {busy.mean(row['t_begin'], row['t_end']):>8}"))
    with tempfile.TemporaryDirectory(prefix="tuner-packing-") as tmp, private_ray(os.cpu_count() or 2, tmp):
        for n in counts:
            for arm in [a for a in arms if a != "alone"]:
                name = NAMES.get(arm, "tuner, gpus: auto")
                storage = os.path.join(tmp, f"{arm}-{n}")
                try:
                    if arm == "tune":
                        result = ray_tune(args, n, storage)
                    else:
                        result = run_tuner(args, n, str(FRACTION) if arm == "fraction" else "auto", storage)
                except Exception as exc:
                    table.append((name, n, f"not available: {type(exc).__name__}: {str(exc).splitlines()[0]}"))
                    continue
                rows = result["rows"]
                begin, end = min(r["t_begin"] for r in rows), max(r["t_end"] for r in rows)
                rate = sum(r["samples"] for r in rows) / (end - begin)
                ratio = f"{rate / base:7.2f}x" if base else "      - "
                line = f"{rate:10.0f}  {ratio}  {end - begin:7.1f}  {result['wall']:7.1f}  {busy.mean(begin, end):>8}"
                slots = min(n, int(1 / FRACTION)) if not args.cpu else min(n, os.cpu_count() or 2)
                table.append((name, n, f"{line}  {first_reports(result, slots)}"))
    busy.close()
    print(f"reference loop: {args.steps} steps of batch {args.batch} on {'the CPU' if args.cpu else 'the GPU'}")
    print(f"{'arm':28} {'trials':>6}  {'samples/s':>10}  {'/ alone':>8}  {'span s':>7}  {'wall s':>7}  {'GPU busy':>8}")
    for name, n, rest in table:
        print(f"{name:28} {n:6d}  {rest}")
    print(f"whole benchmark: {time.perf_counter() - command:.0f} s")


if __name__ == "__main__":
    main()
