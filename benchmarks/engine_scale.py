"""The driver at scale: ASHA studies of 1k, 10k and 100k trials on 1,000 slots of the simulated
backend, run in-process through the engine (random searcher: the searcher's own cost is not the
driver's). Prints the driver's real seconds per event (a report or a trial's end) and its memory
growth at each size, and how both grow from one size to the next (flat: x1 per event, and the
same kilobytes for each trial added, since every trial's record is kept).

Then Ray Tune on the same work: a function trainable reporting the same curve values without
sleeping, ASHAScheduler, on a private ``ray.init(address="local", num_cpus=2)``, at 1k trials (and
10k when 1k says it takes a few minutes at most); its seconds per trial and driver memory beside
ours. Each run is a fresh process, so memory is that run's alone.

    python benchmarks/engine_scale.py [--trials 100000] [--slots 1000] [--quick] [--no-ray] [--budget 720]

A run still going when the budget says stop is ended, and its last progress shown (how many
trials had ended by then). CPU seconds count every thread of the driver: on a busy machine
they say more than real seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MAX_T, RF = 27, 3

STUDY = """
name: scale
trainable: trainables.simulated:curve
backend: simulated
metric: {{name: loss, goal: minimize}}
method: random
seed: 0
run_cap: {trials}
max_concurrent: {slots}
early_terminate: {{type: asha, max_t: {max_t}, grace_period: 1, reduction_factor: {rf}}}
parameters:
  lr: {{distribution: log_uniform_values, min: 1e-4, max: 1e-1}}
  width: {{distribution: q_uniform, min: 16, max: 512, q: 16}}
"""


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- the runs, each in a fresh process --------------------------------------------------------
def ours(trials: int, slots: int, folder: str, profile: bool) -> dict[str, Any]:
    """One study through :func:`tuner.engine.execute` on the simulated backend."""
    from tuner.backends.simulated import SimulatedBackend
    from tuner.config import load_study
    from tuner.engine import execute
    from tuner.results import new_study_dir

    study = load_study(text=STUDY.format(trials=trials, slots=slots, max_t=MAX_T, rf=RF), storage=folder)
    backend = SimulatedBackend(study)
    import pyarrow.parquet  # noqa: F401 - loaded before the baseline, as the run would load it

    before, cpu = rss_mb(), time.process_time()
    begun = time.perf_counter()
    _progress(backend, trials, begun, cpu, before)
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    out = execute(study, 0, backend, lambda: new_study_dir(Path(folder), "scale"), lambda message: None, quiet=True)
    real, cpu = time.perf_counter() - begun, time.process_time() - cpu
    if profiler is not None:
        import pstats

        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    return {
        "trials": trials,
        "events": backend.events,
        "real_s": real,
        "cpu_s": cpu,
        "loop_s": out.summary.get("real_s"),
        "simulated_s": backend.now(),
        "rss_mb": rss_mb() - before,
        "peak_mb": peak_mb() - before,
        "counts": {k: v for k, v in out.counts.items() if v},
    }


def _progress(backend: Any, trials: int, begun: float, cpu: float, before: float) -> None:
    """Every 15 s, how far the run is (the parent shows the last of these for a run it had to end)."""
    import threading

    def tell() -> None:
        while True:
            time.sleep(15)
            state = {
                "trials": trials,
                "ended": backend.ended,
                "events": backend.events,
                "real_s": time.perf_counter() - begun,
                "cpu_s": time.process_time() - cpu,
                "rss_mb": rss_mb() - before,
            }
            print("PROGRESS " + json.dumps(state), flush=True)

    threading.Thread(target=tell, daemon=True).start()


def _tune_trainable(config: dict[str, Any]) -> None:
    from ray import tune

    from trainables.simulated import curve

    for step in range(1, MAX_T + 1):
        tune.report({"loss": curve(config, step)["loss"]})


def tune_run(trials: int, folder: str) -> dict[str, Any]:
    """The same study as a Ray Tune ``Tuner`` (its driver is this process)."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    class Counted(tune.Callback):
        """What the progress line reads: results and ended trials, as the backend counts them."""

        events = ended = 0

        def on_trial_result(self, *args: Any, **kwargs: Any) -> None:
            self.events += 1

        def on_trial_complete(self, *args: Any, **kwargs: Any) -> None:
            self.events += 1
            self.ended += 1

    counted = Counted()

    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        _temp_dir=os.environ["RAY_TMPDIR"],
    )
    try:
        before, cpu = rss_mb(), time.process_time()
        begun = time.perf_counter()
        _progress(counted, trials, begun, cpu, before)
        tuner = tune.Tuner(
            _tune_trainable,
            param_space={"lr": tune.loguniform(1e-4, 1e-1), "width": tune.qrandint(16, 512, 16)},
            tune_config=tune.TuneConfig(
                metric="loss",
                mode="min",
                num_samples=trials,
                reuse_actors=True,  # as our slots are: a fresh actor per trial costs seconds
                scheduler=ASHAScheduler(max_t=MAX_T, grace_period=1, reduction_factor=RF),
            ),
            run_config=tune.RunConfig(storage_path=folder, name="scale", verbose=0, callbacks=[counted]),
        )
        grid = tuner.fit()
        real, cpu = time.perf_counter() - begun, time.process_time() - cpu
        assert counted.ended == len(grid) == trials
        return {
            "trials": trials,
            "events": counted.events,
            "real_s": real,
            "cpu_s": cpu,
            "rss_mb": rss_mb() - before,
            "peak_mb": peak_mb() - before,
        }
    finally:
        ray.shutdown()


def child(argv: list[str]) -> None:
    kind, trials, slots, profile = argv[0], int(argv[1]), int(argv[2]), argv[3] == "1"
    folder = tempfile.mkdtemp(prefix="scale")
    try:
        result = ours(trials, slots, folder, profile) if kind == "ours" else tune_run(trials, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print("RESULT " + json.dumps(result), flush=True)


# -- the parent ----------------------------------------------------------------------------------
def spawn(kind: str, trials: int, slots: int, timeout: float, profile: bool = False) -> dict[str, Any] | None:
    """Run one measurement in a fresh process; past ``timeout``, its last progress (``ended``
    says how many trials had ended), or ``None``. A Ray child gets a private temporary folder,
    and any process of its Ray still alive afterwards is ended by pid."""
    ray_tmp = Path(tempfile.mkdtemp(prefix="rs", dir="/tmp"))
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env["RAY_TMPDIR"] = str(ray_tmp)
    env.pop("RAY_ADDRESS", None)
    command = [sys.executable, __file__, "--child", kind, str(trials), str(slots), "1" if profile else "0"]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        stdout, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, _ = proc.communicate()  # what it said before: its progress
    finally:
        _end_ray_processes(ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    lines = [line for line in stdout.splitlines() if line.startswith(("RESULT ", "PROGRESS "))]
    return json.loads(lines[-1].partition(" ")[2]) if lines else None


def _end_ray_processes(ray_tmp: Path) -> None:
    marker = f"RAY_TMPDIR={ray_tmp}".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            with contextlib.suppress(OSError):
                os.kill(int(pid), signal.SIGKILL)


HEADER = (
    f"{'driver':<9} {'trials':>8} {'events':>9} {'real s':>8} {'cpu s':>8} {'us/event':>9} {'cpu us/ev':>9}"
    f" {'ms/trial':>8} {'RSS+ MB':>8} {'KB/trial':>8}"
)


def line(name: str, r: dict[str, Any]) -> str:
    """One run as a row; a run ended at its time limit shows how far it got."""
    done = r.get("ended", r["trials"])
    per_event, cpu_per_event = (1e6 * r[k] / max(r["events"], 1) for k in ("real_s", "cpu_s"))
    text = (
        f"{name:<9} {r['trials']:>8,} {r['events']:>9,} {r['real_s']:>8.1f} {r['cpu_s']:>8.1f} {per_event:>9.0f}"
        f" {cpu_per_event:>9.0f} {1e3 * r['real_s'] / max(done, 1):>8.2f} {r['rss_mb']:>8.1f}"
        f" {1024 * r['rss_mb'] / max(done, 1):>8.2f}"
    )
    return text if done == r["trials"] and "ended" not in r else f"{text}  (stopped: {done:,} trials had ended)"


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100_000, help="the largest study (default 100,000)")
    parser.add_argument("--slots", type=int, default=1_000, help="trials at once (default 1,000)")
    parser.add_argument("--quick", action="store_true", help="1k and 10k trials on 100 slots; Ray Tune at 200")
    parser.add_argument("--no-ray", action="store_true", help="only ours")
    parser.add_argument("--budget", type=float, default=720.0, help="seconds for everything (default 720)")
    parser.add_argument("--profile", action="store_true", help="print where the largest run's time goes")
    args = parser.parse_args()
    end = time.monotonic() + args.budget
    ray_share = 0.0 if args.no_ray else min(240.0, args.budget / 3)  # kept for Ray Tune's run
    largest, slots = (10_000, 100) if args.quick else (args.trials, args.slots)
    sizes = sorted({n for n in (1_000, 10_000, 100_000) if n < largest} | {largest})
    print(f"ASHA (max_t {MAX_T}, rf {RF}), random searcher, {slots} slots; simulated backend, in-process engine")
    print(HEADER)
    results: list[dict[str, Any]] = []
    for n in sizes:
        limit = end - ray_share - time.monotonic()
        r = spawn("ours", n, slots, limit, profile=args.profile and n == largest) if limit > 5 else None
        if r is None:
            print(f"{'tuner':<9} {n:>8,}  no result in {max(limit, 0):.0f} s (its error, if any, above)")
            break
        print(line("tuner", r), flush=True)
        results.append(r)
        if "ended" in r:
            break
    for a, b in itertools.pairwise(results):
        cost = (b["real_s"] / b["events"]) / (a["real_s"] / a["events"])
        cpu = (b["cpu_s"] / b["events"]) / (a["cpu_s"] / a["events"])
        added = (b["rss_mb"] - a["rss_mb"]) / (b.get("ended", b["trials"]) - a["trials"])
        print(
            f"  {b['trials'] // 1000}k/{a['trials'] // 1000}k: per event x{cost:.2f} real, x{cpu:.2f} CPU;"
            f" {1024 * added:.1f} KB for each trial added" + (" (of the part that ran)" if "ended" in b else "")
        )
    if args.no_ray:
        return
    print("Ray Tune on the same work (function trainable, no sleeping, ASHAScheduler; 2 CPUs: 2 trials at once)")
    print(HEADER)
    first = 200 if args.quick else 1_000
    r = spawn("tune", first, slots, end - time.monotonic())
    if r is None:
        print(f"{'ray tune':<9} {first:>8,}  no result (its error, if any, above)")
        return
    print(line("ray tune", r), flush=True)
    if not args.quick and r["real_s"] * 10 < end - time.monotonic():
        r10 = spawn("tune", 10 * first, slots, end - time.monotonic())
        print(line("ray tune", r10) if r10 else f"{'ray tune':<9} {10 * first:>8,}  no result", flush=True)
    else:
        print(f"  ({10 * first:,} trials skipped: about {r['real_s'] * 10 / 60:.0f} min at this rate)")


if __name__ == "__main__":
    main()
