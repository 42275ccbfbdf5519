"""A rank's process as plain Python (no Ray): every trial ends with an event, whatever breaks;
it is readied before its first trial and cleaned between trials."""

from __future__ import annotations

import dataclasses
import gc
import time
import weakref
from typing import Any

import pytest

from tuner.backends.ray import _usage, _worker
from tuner.backends.ray._group import allocator_env
from tuner.backends.ray._usage import NOTE, GpuUtil, Settled, Usage, reset_memory
from tuner.backends.ray._worker import TrialTask, TrialWorker, ready_cuda
from tuner.trial import Trial


def events(task: TrialTask) -> list[dict[str, Any]]:
    return list(TrialWorker([]).run(task))


def task(mode: str) -> TrialTask:
    return TrialTask("t1", "trainables.toy:faulty", {"mode": mode, "x": 2.0}, seed=0, max_steps=None, gpus=0)


def test_a_finished_trial_streams_its_reports_then_done() -> None:
    out = events(task("ok"))
    assert [e["kind"] for e in out] == ["report", "report", "report", "done"]
    assert [e["step"] for e in out[:3]] == [1, 2, 3]


def test_a_failure_is_reported_even_when_reading_the_gpu_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: object) -> dict[str, float]:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(_worker.Usage, "stop", broken)
    out = events(task("raise"))
    assert out[-1]["kind"] == "error" and "boom" in out[-1]["error"]
    assert "RuntimeError: boom" in out[-1]["traceback"]


def test_a_rank_gets_the_masters_address_from_its_argument() -> None:
    worker = TrialWorker([])
    out = list(worker.run(task("ok"), master=("10.0.0.1", 29500)))
    assert out[-1]["kind"] == "done"  # world size 1: the address is kept, never dialled


def test_every_end_carries_what_the_rank_used() -> None:
    out = events(task("ok"))
    usage = out[-1]["usage"]
    assert usage["peak_rss_mb"] > 50  # this process has torch and pandas loaded
    assert usage["cpu_s"] >= 0
    assert all(e["rss_mb"] > 50 for e in out[:-1])
    assert all(e["gpu_mb"] is None for e in out[:-1])  # the GPU series of the leak check: only on CUDA
    assert "peak_gpu_mb" not in usage  # no GPU here: no GPU figures, rather than zeros


FREED: list[str] = []  # what the trainables below saw collected


class _Cycle:
    """An object only the garbage collector frees (it refers to itself), like a model in a cycle."""

    def __init__(self) -> None:
        self.me = self
        weakref.finalize(self, FREED.append, "freed")


def leave_garbage(config: dict[str, Any], trial: Trial) -> None:
    _Cycle()
    trial.report(1, loss=1.0)


def see_garbage(config: dict[str, Any], trial: Trial) -> None:
    trial.report(1, loss=0.0 if "freed" in FREED else 1.0)


def test_a_trial_starts_after_the_last_ones_leftovers_are_freed() -> None:
    worker = TrialWorker([])
    FREED.clear()
    gc.disable()  # only the worker collects
    try:
        first = worker.run(TrialTask("t1", f"{__name__}:leave_garbage", {}, seed=0, max_steps=None, gpus=0))
        assert [next(first)["kind"], next(first)["kind"]] == ["report", "done"]  # its stream not yet closed:
        out = list(worker.run(TrialTask("t2", f"{__name__}:see_garbage", {}, seed=0, max_steps=None, gpus=0)))
    finally:
        gc.enable()
    assert out[0]["metrics"]["loss"] == 0.0  # the next trial, sent at once, began with it freed


def test_the_between_trials_reset_runs_with_real_torch_and_never_starts_cuda() -> None:
    import torch

    gc.disable()
    try:
        _Cycle()
        done = reset_memory(torch)
    finally:
        gc.enable()
    assert done["collected"] >= 1 and "reserved_mb" not in done  # collected; no CUDA in use here
    assert ready_cuda(torch) is False and not torch.cuda.is_initialized()  # no GPU: nothing done


def test_a_worker_readies_itself_as_it_starts_and_a_bad_trainable_fails_its_trial_not_the_worker() -> None:
    worker = TrialWorker([], warm=("trainables.toy:faulty", 1.0))
    took = worker.readied()
    assert took["import_s"] >= 0 and "cuda_s" not in took  # no GPU here: CUDA is not started
    assert list(worker.run(task("ok")))[-1]["kind"] == "done"
    broken = TrialWorker([], warm=("trainables.toy:no_such_function", 1.0))
    assert broken.readied() == {}
    out = list(broken.run(dataclasses.replace(task("ok"), trainable="trainables.toy:no_such_function")))
    assert out[-1]["kind"] == "error" and "no_such_function" in out[-1]["error"]


def test_gpu_workers_start_with_expandable_segments_unless_the_user_chose() -> None:
    assert allocator_env(0.5, {}, {}) == {"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"}
    assert allocator_env(0, {}, {}) == {}  # a CPU worker: untouched
    mine = {"PYTORCH_CUDA_ALLOC_CONF": "max_split_size_mb:128"}
    assert allocator_env(1, {}, mine) == mine  # the driver's setting travels to the ranks
    assert allocator_env(1, mine, {"PYTORCH_CUDA_ALLOC_CONF": "x"}) == {}  # the study's env carries its own
    assert allocator_env(1, {}, {"PYTORCH_ALLOC_CONF": ""}) == {"PYTORCH_ALLOC_CONF": ""}  # the newer name counts


def test_a_gpu_figure_left_out_says_why_even_for_a_trial_shorter_than_a_sample() -> None:
    figures = GpuUtil(0).figures()  # never sampled: one sample at the end (NVML has no GPU here)
    assert set(figures) == {NOTE} and figures[NOTE].startswith("NVML gives no utilisation here (NVMLError")


def test_gpu_memory_settles_only_while_the_device_computes() -> None:
    s = Settled(settle_s=2.0)
    # the model moved to the GPU, then no kernel for 2.5 s (data loading, a compilation): not settled
    assert [s.sample(t, 500.0, 0.0) for t in (0.0, 1.0, 2.5)] == [None] * 3
    assert [s.sample(t, 500.0, None) for t in (3.0, 6.0)] == [None] * 2  # NVML cannot say: reports only
    assert s.sample(7.0, 4_000.0, 80.0) is None  # training: the level climbs in the first steps
    assert s.sample(8.0, 6_000.0, 90.0) is None  # a new level starts the clock again
    assert s.sample(9.0, 6_000.0, 0.0) is None
    assert s.sample(10.0, 6_000.0, 70.0) == 6_000.0  # 2 s at one level, the device busy in 2 of 3 samples
    assert s.sample(11.0, 6_000.0, 70.0) is None  # told once
    assert s.sample(12.0, 7_000.0, 70.0) is None and s.sample(14.0, 7_000.0, 70.0) == 7_000.0  # higher: again
    s.told = 9_000.0  # a report said more meanwhile
    assert s.sample(15.0, 9_000.0, 90.0) is None and s.sample(18.0, 9_000.0, 90.0) is None


def test_rank_0_of_a_gpu_trial_streams_its_settled_memory_between_its_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    class Settling(_worker.Usage):  # what the sampler does on a GPU once the memory holds still
        def __init__(self, *args: Any, settled: Any = None, **kwargs: Any) -> None:
            super().__init__(*args, settled=settled, **kwargs)
            if settled is not None:
                settled(1_234.0)

    monkeypatch.setattr(_worker, "Usage", Settling)
    out = events(dataclasses.replace(task("ok"), gpus=0.5, settle=True))
    assert [e["kind"] for e in out] == ["memory", "report", "report", "report", "done"]
    assert out[0]["gpu_reserved_mb"] == 1_234.0
    assert [e["kind"] for e in events(task("ok"))] == ["report"] * 3 + ["done"]  # no GPU: nothing to settle
    other = dataclasses.replace(task("ok"), gpus=0.5, rank=1, settle=True)
    assert [e["kind"] for e in events(other)] == ["done"]  # rank 0 speaks for the trial
    fraction = dataclasses.replace(task("ok"), gpus=0.5)
    assert [e["kind"] for e in events(fraction)] == ["report"] * 3 + ["done"]  # not gpus: auto: not watched


class _Cuda:
    """``torch.cuda`` as far as :class:`Usage` reads it, with the most reserved memory set by the test."""

    reserved = 0

    def max_memory_reserved(self) -> int:
        return self.reserved

    def max_memory_allocated(self) -> int:
        return self.reserved

    def memory_allocated(self) -> int:
        return self.reserved

    def current_device(self) -> int:
        return 0

    def reset_peak_memory_stats(self) -> None:
        pass


def _nvml(busy: float) -> type:
    class Util:  # NVML's device figure, as GpuUtil gives it
        def __init__(self, device: int, since: float | None = None) -> None:
            pass

        def sample(self) -> float:
            return busy

        def figures(self) -> dict[str, Any]:
            return {}

    return Util


@pytest.mark.parametrize("busy", [80.0, 0.0])
def test_the_sampler_tells_each_higher_level_once_it_has_held_while_the_gpu_computed(
    monkeypatch: pytest.MonkeyPatch, busy: float
) -> None:
    cuda = _Cuda()
    monkeypatch.setattr(_usage, "cuda", lambda: cuda)
    monkeypatch.setattr(_usage, "GpuUtil", _nvml(busy))
    told: list[float] = []

    def wait_for(count: int) -> None:
        deadline = time.monotonic() + (5.0 if busy else 0.5)
        while len(told) < count and time.monotonic() < deadline:
            time.sleep(0.01)

    cuda.reserved = 3 * 2**30
    usage = Usage(every=0.01, settled=told.append, settle_s=0.1)
    wait_for(1)
    cuda.reserved = 4 * 2**30
    wait_for(2)
    usage.stop()
    assert told == ([3072.0, 4096.0] if busy else [])  # an idle GPU: loading data, nothing settled
