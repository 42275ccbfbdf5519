"""``resources: {gpus: auto}``: packing decisions from measured memory, and whole studies on the
simulated backend with simulated GPU memory (no Ray, no GPU)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import tuner
from tests.conftest import study
from tuner.backends.simulated import SimulatedBackend
from tuner.engine import SETTLE_S, End, Gpu, Launch, Memory, Packing, execute, per_gpu_bound
from tuner.errors import ConfigError

GPU = Gpu("gpu0", 10_000.0)  # 8,500 MB usable with 15% headroom
STUDY = """
name: packed
trainable: tests.engine.curves:hungry
backend: simulated
metric: {{name: loss}}
method: random
seed: 1
run_cap: {cap}
early_terminate: {{type: asha, max_t: 6, grace_period: 6}}
resources: {{gpus: auto}}
parameters:
  x: {{min: 0.0, max: 1.0}}
  batch: {{values: {batches}}}
  grows: {{value: {grows}}}
"""


@pytest.fixture(autouse=True)
def _no_ray_started(no_ray: None, in_tmp: Path) -> None:
    """Every test here runs in a scratch folder and fails if anything starts Ray."""


def packing() -> Packing:
    return Packing(["batch"], headroom=0.15, context_mb=500.0)


# -- decisions ---------------------------------------------------------------------------------
def test_the_first_trial_on_a_gpu_runs_alone_until_its_memory_is_measured() -> None:
    p = packing()
    assert p.admits(GPU, {"batch": 1}) and p.admits(GPU, None)  # an empty GPU takes anything
    p.started("t1", GPU, {"batch": 1})
    assert not p.admits(GPU, {"batch": 1})  # nothing measured: t1's appetite is unknown
    assert p.admits(Gpu("gpu1", 10_000.0), {"batch": 1})  # another GPU is empty
    p.measured("t1", 1_000.0)
    assert p.admits(GPU, {"batch": 1})  # 2 x (1000 + 500) <= 8500


def test_memory_per_configuration_and_headroom_decide_how_many_share_a_gpu() -> None:
    p = packing()
    p.started("t1", GPU, {"batch": 1})
    p.ended("t1", 1_000.0)
    p.started("t2", GPU, {"batch": 4})
    p.measured("t2", 4_000.0)
    assert p.estimate({"batch": 1}) == 1_000.0 and p.estimate({"batch": 4}) == 4_000.0
    assert p.estimate({"batch": 2}) == 4_000.0  # never seen: the largest so far
    assert p.estimate(None) == 1_000.0  # some configuration: the least a known one needs
    assert p.admits(GPU, {"batch": 1})  # 4500 + 1500 <= 8500
    assert not p.admits(GPU, {"batch": 4})  # 4500 + 4500 > 8500: the headroom is kept
    assert not p.admits(GPU, {"batch": 2})
    for t in ("t3", "t4"):
        p.started(t, GPU, {"batch": 1})
    assert not p.admits(GPU, {"batch": 1})  # 4500 + 3 x 1500 > 8500
    assert Packing(["batch"], headroom=0.0, context_mb=500.0).admits(GPU, None)


def test_every_worker_on_a_gpu_counts_its_cuda_context_busy_or_idle() -> None:
    p = packing()
    p.started("t1", GPU, {"batch": 1})
    p.measured("t1", 1_000.0)
    for t in ("t2", "t3", "t4"):
        assert p.admits(GPU, {"batch": 1}, workers=8)  # 4 x 1000 + 8 x 500 <= 8500
        p.started(t, GPU, {"batch": 1})
    assert not p.admits(GPU, {"batch": 1}, workers=8)  # 5 x 1000 + 8 x 500 > 8500: the idle workers' contexts
    assert p.admits(GPU, {"batch": 1}, workers=4)  # 5 x 1000 + 5 x 500: at least one context a trial


def test_an_out_of_memory_among_packed_trials_backs_gpus_of_its_size_off_for_good() -> None:
    p = packing()
    for t in ("t1", "t2", "t3"):
        p.started(t, GPU, {"batch": 1})
    p.measured("t1", 500.0)
    assert p.ended("t3", None, oom=True) == 2  # two neighbours when it ran out
    assert p.limit(GPU) == 2  # one fewer than the 3 that failed
    assert p.limit(Gpu("gpu1", 10_000.0)) == 2 and p.limit(Gpu("gpu2", 80_000.0)) is None  # a GPU of its size too
    assert not p.admits(GPU, {"batch": 1})  # t1 and t2 run: the limit is reached
    p.ended("t2", 600.0)
    assert p.admits(GPU, {"batch": 1})
    p.started("t5", GPU, {"batch": 1})
    assert p.ended("t5", None, oom=True) == 1 and p.limit(GPU) == 1
    p.ended("t1", 500.0)
    assert p.ended("t6", None, oom=True) == 0  # not running here: nothing to back off
    p.started("t7", GPU, {"batch": 1})
    assert p.ended("t7", None, oom=True) == 0 and p.limit(GPU) == 1  # alone: its own failure


@pytest.mark.parametrize(
    ("cpus", "gpus", "per_trial", "bound"),
    [(16, 2, 1.0, 8), (16, 1, 2.0, 8), (3, 4, 1.0, 1), (256, 1, 1.0, 16), (8, 0, 1.0, 0), (12, 1, 1.5, 8)],
)
def test_the_cpus_bound_the_trials_on_each_gpu(cpus: float, gpus: int, per_trial: float, bound: int) -> None:
    assert per_gpu_bound(cpus, gpus, per_trial) == bound


# -- studies on simulated GPUs -----------------------------------------------------------------
class Watched(SimulatedBackend):
    """Counts the trials running on each simulated GPU at every start."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.most: Counter[str] = Counter()
        self.gpu_of: dict[str, str] = {}

    def start(self, slot: int, launch: Launch) -> list[str]:
        out = super().start(slot, launch)
        gpus = self.gpus() or {}
        self.gpu_of[launch.trial_id] = gpus[slot].key
        running = Counter(gpus[t.slot].key for t in self._trials.values())
        for key, n in running.items():
            self.most[key] = max(self.most[key], n)
        return out


def run(
    backend_of: Any, cap: int = 12, batches: str = "[1, 2]", grows: bool = False, seconds: float = 1.0
) -> tuple[Any, Watched, list[str]]:
    text = STUDY.format(cap=cap, batches=batches, grows=str(grows).lower()) + f"  seconds: {{value: {seconds}}}\n"
    s = study(text, allow_modules=["tests"])
    backend = backend_of(s)
    said: list[str] = []
    folder = Path("results/packed").resolve()
    folder.mkdir(parents=True)
    out = execute(s, 1, backend, lambda: folder, said.append, quiet=True)
    return out, backend, said


def test_auto_packs_trials_onto_simulated_gpus_as_their_memory_allows() -> None:
    # two GPUs of 10,000 MB (8,500 usable), CPUs for 4 trials a GPU; batch 1 holds 1,000 MB, batch 2 2,000
    out, backend, said = run(lambda s: Watched(s, gpus=[10_000.0, 10_000.0], cpus=8))
    trials = pd.read_parquet(out.folder / "trials.parquet")
    assert len(trials) == 12 and set(trials["status"]) == {"finished"}
    assert backend._limit == 8 and max(backend.most.values()) > 1  # packed, within the CPUs' 4 a GPU
    assert max(backend.most.values()) <= 4
    assert trials["peak_gpu_reserved_mb"].max() == 2_000.0
    assert any("auto: up to 8 trial(s) share the GPUs" in line for line in said)


@pytest.mark.parametrize("seconds", [100.0, 1.0])
def test_a_settled_appetite_packs_neighbours_before_a_first_report_an_epoch_away(seconds: float) -> None:
    # one report a step: with steps of 100 s, the memory settles SETTLE_S into the first (as a GPU
    # worker says); with 1-s steps the first report says it first
    out, backend, _ = run(lambda s: Watched(s, gpus=[10_000.0], cpus=8), cap=4, batches="[1]", seconds=seconds)
    trials = pd.read_parquet(out.folder / "trials.parquet")
    assert set(trials["status"]) == {"finished"} and backend.most["gpu0"] == 4
    lines = (out.folder / "journal.jsonl").read_text().splitlines()
    starts = sorted(e["t"] for e in map(json.loads, lines) if e["e"] == "start")
    assert [round(t - starts[0], 6) for t in starts] == [0.0] + [min(SETTLE_S, seconds)] * 3


def test_an_early_settled_figure_counts_for_a_trial_alone_or_to_raise_an_appetite() -> None:
    p = packing()
    p.started("t1", GPU, {"batch": 4})
    p.measured("t1", 3_000.0)
    p.started("t2", GPU, {"batch": 2})  # joins t1: a batch 2 is assumed as hungry as t1
    p.settled("t2", 500.0)  # next to t1's kernels: maybe still loading its data, not taken
    assert p.estimate({"batch": 2}) == 3_000.0
    p.settled("t1", 3_500.0)  # raises an appetite already measured
    assert p.estimate({"batch": 4}) == 3_500.0
    p.ended("t1", 3_500.0)
    p.settled("t2", 600.0)  # alone now: the device computes for it alone
    assert p.estimate({"batch": 2}) == 600.0


def test_the_idle_workers_contexts_bound_a_study_on_one_gpu() -> None:
    # 8 slots (8 CPUs) on a GPU of 10,000 MB: 8,500 less 8 contexts of 512 MB leaves room for 4
    # trials of 1,000 MB (5 if only the running trials' contexts were counted)
    _, backend, _ = run(lambda s: Watched(s, gpus=[10_000.0], cpus=8), cap=8, batches="[1]")
    assert backend.most["gpu0"] == 4


def test_a_stopped_trials_memory_event_is_dropped_and_its_next_attempt_tells_its_own() -> None:
    s = study(STUDY.format(cap=2, batches="[1]", grows="false"), allow_modules=["tests"])
    backend = SimulatedBackend(s, gpus=[10_000.0], cpus=2)
    backend.open(1)
    launch = Launch("t1", {"x": 0.5, "batch": 1, "grows": False, "seconds": 10.0}, seed=0, max_steps=3)
    backend.start(0, launch)
    backend.stop("t1")  # before its memory settled (at 2 s)
    assert [type(e) for e in backend.poll(1.0)] == [End]
    backend.start(0, launch)  # again, at 0 s
    assert backend.poll(1.0) == [Memory("t1", 1_000.0)] and backend.now() == SETTLE_S  # its own, once
    assert [type(e).__name__ for e in backend.poll(1.0)] == ["Report"]


def test_trials_too_large_to_share_run_one_a_gpu() -> None:
    out, backend, _ = run(lambda s: Watched(s, gpus=[10_000.0], cpus=8), cap=4, batches="[5]")
    trials = pd.read_parquet(out.folder / "trials.parquet")
    assert set(trials["status"]) == {"finished"} and backend.most["gpu0"] == 1  # 2 x 5500 > 8500


def test_an_out_of_memory_among_packed_trials_is_continued_with_fewer_neighbours() -> None:
    # each trial's first reports say 1,000 MB (3 fit in 5,500 less the headroom, with the contexts of
    # the 3 slots the CPUs allow), then it grows to 2,000
    out, backend, said = run(lambda s: Watched(s, gpus=[5_500.0], cpus=3), cap=6, batches="[1]", grows=True)
    trials = pd.read_parquet(out.folder / "trials.parquet")
    assert set(trials["status"]) == {"finished"}  # none failed: each out-of-memory was retried
    assert (trials["infra_retries"] > 0).any()
    lines = [line for line in said if "out of memory next to" in line]
    assert backend.most["gpu0"] == 3  # packed at first, then backed off below the 3 that failed:
    assert "next to 2 other trial(s) on gpu0" in lines[0] and "at most 2 trial(s) at once" in lines[0]
    assert "with fewer neighbours" in lines[0]


def test_auto_without_a_gpu_says_so_and_runs_on_cpu() -> None:
    text = STUDY.format(cap=3, batches="[1]", grows="false") + "max_concurrent: 2\n"
    said: list[str] = []
    out = tuner.run(study(text, allow_modules=["tests"]), say=said.append)
    assert "resources.gpus: auto found no GPU on the simulated backend; trials run on CPU, 2 at a time" in said
    assert out.counts["finished"] == 3


@pytest.mark.parametrize(
    ("resources", "error"),
    [
        ("{gpus: automatic}", "resources.gpus: must be a number of GPUs >= 0 or auto, got 'automatic'"),
        ("{gpus_per_worker: -1}", "resources.gpus_per_worker: must be a number of GPUs >= 0 or auto, got -1"),
        ("{gpus: auto, workers: 2}", "gpus: auto packs trials of one worker onto GPUs; with workers: 2"),
        ("{gpus: auto, gpus_per_worker: 0.5}", "give gpus or gpus_per_worker, not both"),
    ],
)
def test_gpus_auto_is_checked_in_one_line(resources: str, error: str) -> None:
    text = STUDY.format(cap=2, batches="[1]", grows="false").replace(
        "resources: {gpus: auto}", f"resources: {resources}"
    )
    with pytest.raises(ConfigError) as exc:
        study(text, allow_modules=["tests"])
    assert error in str(exc.value) and len(str(exc.value).splitlines()) == 1


def test_backend_tune_refuses_gpus_auto_naming_the_field() -> None:
    text = STUDY.format(cap=2, batches="[1]", grows="false").replace("backend: simulated", "backend: tune")
    with pytest.raises(ConfigError, match=r"resources.gpus: backend tune takes a number of GPUs"):
        study(text, allow_modules=["tests"])


def test_explicit_fractions_are_not_packed_by_memory() -> None:
    text = STUDY.format(cap=4, batches="[5]", grows="false").replace("{gpus: auto}", "{gpus: 0.25}")
    s = study(text, allow_modules=["tests"])
    backend = SimulatedBackend(s, gpus=[10_000.0])
    assert backend.gpus() is None and s.spec.resources.gpu == 0.25


@pytest.mark.parametrize(
    ("gpus", "says"),
    [
        (0, "gpus: auto: no GPU on here; trials run on CPU, 4 at a time"),
        (2, "trials share each of the 2 GPU(s) as their measured memory allows"),
    ],
)
def test_plan_says_what_auto_will_do(gpus: int, says: str) -> None:
    from tuner.plan import describe, make_plan

    s = study(STUDY.format(cap=8, batches="[1]", grows="false") + "max_concurrent: 4\n", allow_modules=["tests"])
    plan = make_plan(s, 16, "here")
    plan.gpus = gpus
    assert says in describe(s, plan)
