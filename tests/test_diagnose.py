"""Failures named by cause, from real errors raised by real torch and Python code (the CUDA-only
ones by their exact text), through the engine into the results and the end of ``run``."""

from __future__ import annotations

import os
import re
import signal
import textwrap
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.conftest import cli_here
from tuner.diagnose import diagnose, journaled
from tuner.status import CAUSES


def error_of(fn: Callable[[], Any]) -> str:
    """The error as the worker records it: ``Type: message``."""
    try:
        fn()
    except BaseException as exc:
        return f"{type(exc).__name__}: {exc}"
    raise AssertionError("no error")


def _kill_self(_: int) -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return 0


def loader_worker_killed() -> None:
    loader = torch.utils.data.DataLoader(range(4), num_workers=1, collate_fn=lambda b: _kill_self(b[0]))
    list(loader)


REAL = {
    "shape_mismatch": [
        lambda: nn.Linear(3, 2)(torch.ones(4, 5)),
        lambda: torch.ones(3) + torch.ones(4),
        lambda: torch.ones(6).view(4, 2),
        lambda: F.cross_entropy(torch.ones(4, 10), torch.ones(3, dtype=torch.long)),
        lambda: nn.Conv2d(3, 8, 3)(torch.ones(1, 1, 8, 8)),
        lambda: nn.Linear(3, 2).load_state_dict(nn.Linear(4, 2).state_dict()),
    ],
    "dtype_mismatch": [
        lambda: nn.Linear(3, 2)(torch.ones(4, 3, dtype=torch.float64)),
        lambda: F.cross_entropy(torch.ones(4, 10), torch.ones(4) * 1.5),
        lambda: torch.mm(torch.ones(2, 3), torch.ones(3, 2, dtype=torch.float64)),
    ],
    "device_mismatch": [
        lambda: torch.ones(2, device="meta") + torch.ones(2),
        lambda: nn.Linear(3, 2).to("meta")(torch.ones(4, 3)),
    ],
    "device_assert": [  # on CPU the same mistakes raise IndexError
        lambda: F.cross_entropy(torch.ones(4, 10), torch.tensor([1, 2, 3, 12])),
        lambda: nn.Embedding(5, 3)(torch.tensor([7])),
    ],
    "import_error": [lambda: __import__("a_module_nobody_installed")],
    "loader_worker_died": [loader_worker_killed],
    "user_exception": [lambda: {}["missing"], lambda: 1 / 0],
}

# Raised only on CUDA or by NCCL: their exact texts (torch 2.x).
CUDA_TEXTS = {
    "oom": "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of "
    "79.19 GiB of which 1.06 GiB is free.",
    "device_assert": "RuntimeError: CUDA error: device-side assert triggered\nCUDA kernel errors might be "
    "asynchronously reported at some other API call, so the stacktrace below might be incorrect.\n"
    "Compile with `TORCH_USE_CUDA_DSA` to enable device-side assertions.",
    "cudnn": "RuntimeError: cuDNN error: CUDNN_STATUS_INTERNAL_ERROR",
    "nccl": "DistBackendError: NCCL error in: ../torch/csrc/distributed/c10d/ProcessGroupNCCL.cpp:1970, "
    "unhandled cuda error (run with NCCL_DEBUG=INFO for details)",
    "collective": "DistBackendError: [../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed by peer",
}


@pytest.mark.parametrize(("cause", "index"), [(c, i) for c, fns in REAL.items() for i in range(len(fns))])
def test_real_errors_get_their_cause(cause: str, index: int) -> None:
    error = error_of(REAL[cause][index])
    found = diagnose("errored", error)
    assert found is not None and found.cause == cause, error
    assert found.hint


@pytest.mark.parametrize("cause", list(CUDA_TEXTS))
def test_cuda_only_errors_by_their_exact_text(cause: str) -> None:
    found = diagnose("errored", CUDA_TEXTS[cause])
    assert found is not None and found.cause == cause


def test_hints_carry_the_figures_of_the_message() -> None:
    shape = diagnose("errored", error_of(REAL["shape_mismatch"][0]))
    assert shape is not None and "4x5 and 3x2" in shape.hint
    label = diagnose("errored", error_of(REAL["device_assert"][0]))
    assert label is not None and "label 12" in label.hint and "number of classes" in label.hint
    oom = diagnose("oom", "OutOfMemoryError: CUDA out of memory.", {"batch_size": 256})
    assert oom is not None and oom.cause == "oom" and "batch_size 256" in oom.hint and "halve_batch" in oom.hint
    exited = diagnose("errored", "rank 0 process exited with code 3 (os._exit at toy.py:62 in faulty) (ActorDiedError)")
    assert exited is not None and "exited with code 3 at toy.py:62 in faulty without an exception" in exited.hint
    segv = diagnose("errored", "rank 0 killed by SIGSEGV (Segmentation fault) at t.py:61 in train (inside string_at)")
    assert segv is not None and "(SIGSEGV) at t.py:61 in train: " in segv.hint
    died = diagnose("errored", "rank 0 process died (ActorDiedError)")
    assert died is not None and died.cause == "process_exited"
    assert diagnose("nan", "loss is nan at step 3") is not None
    gpu = diagnose("errored", "GPU memory grows by 12.5 MB a step")  # the leak check's CUDA series
    assert gpu is not None and gpu.cause == "leak" and "loss.item()" in gpu.hint
    assert diagnose("finished", None) is None and diagnose("pruned", None) is None
    assert {c for c in REAL} | set(CUDA_TEXTS) <= set(CAUSES)


def traceback_of(fn: Callable[[], Any]) -> tuple[str, str]:
    """The one line and the traceback of a real error, as the worker sends them."""
    from tuner.backends.ray._worker import _last_line

    try:
        fn()
    except BaseException as exc:
        return _last_line(exc), traceback.format_exc()
    raise AssertionError("no error")


def raise_cuda_assert() -> None:
    raise RuntimeError(CUDA_TEXTS["device_assert"].removeprefix("RuntimeError: "))  # NCCL out of memory gloo


def chained() -> None:
    try:
        __import__("a_module_nobody_installed")
    except ImportError:
        {}["missing"]


@pytest.mark.parametrize(
    ("fn", "cause"),
    [
        (raise_cuda_assert, "device_assert"),  # its last line names no cause; the source line's words count for nothing
        (chained, "user_exception"),  # the exception raised, not the one it was handling
        (REAL["shape_mismatch"][5], "shape_mismatch"),  # a message of several lines
        (REAL["import_error"][0], "import_error"),
    ],
)
def test_the_whole_message_is_read_from_the_traceback(fn: Callable[[], Any], cause: str) -> None:
    line, detail = traceback_of(fn)
    found = diagnose("errored", line, {}, detail)
    assert found is not None and found.cause == cause, detail


def test_the_worker_sends_the_error_and_its_traceback_and_the_driver_diagnoses_it() -> None:
    import threading

    from tuner.backends.ray._worker import TrialTask, _train

    config = {"mode": "labels", "x": 1.0}
    task = TrialTask("t1", "trainables.toy:faulty", config, seed=0, max_steps=None, gpus=0.0)
    events: list[dict[str, Any]] = []
    _train(task, threading.Event(), events.append, events.append)
    (event,) = events
    assert event["kind"] == "error" and "cause" not in event and "hint" not in event
    assert event["oom"] is False and "Target 7 is out of bounds" in event["traceback"]
    found = diagnose("errored", event["error"], config, event["traceback"])
    assert found is not None and found.cause == "device_assert" and "label 7" in found.hint


@pytest.mark.parametrize(
    ("cause", "error", "in_hint"),
    [
        ("stalled", "stalled: no report for 31 s after step 4; rank 0 was at toy.py:57 in faulty", "for 31 s"),
        ("leak", "GPU memory grows by 12.5 MB a step", "grows by 12 MB a step"),
        ("not_reported", "metric 'loss' was not reported at step 1 (reported: other)", "trial.report"),
        ("not_reported", "returned without reporting 'loss'", "trial.report"),
        ("node_lost", "rank 1 process was lost with its node (ActorDiedError)", "node left"),
    ],
)
def test_the_engines_own_verdicts_keep_their_cause(cause: Any, error: str, in_hint: str) -> None:
    found = diagnose("errored", error, {}, cause=cause)
    assert found is not None and found.cause == cause and in_hint in found.hint
    # journals written before the engine named these causes: the same cause from the text
    if cause != "stalled":
        old = diagnose("errored", error)
        assert old is not None and old.cause == cause


def test_a_given_cause_is_not_second_guessed_by_the_rules() -> None:
    found = diagnose("errored", "stalled: no report for 5 s; rank 0 was at nccl.py:3 in all_reduce", cause="stalled")
    assert found is not None and found.cause == "stalled"
    nan = diagnose("nan", "loss is nan at step 3", cause=None)
    oom = diagnose("oom", "rank 0 process was killed for using too much host memory (OutOfMemoryError)")
    assert nan is not None and nan.cause == "nan" and oom is not None and oom.cause == "oom"
    assert [diagnose(s, "x") for s in ("finished", "pruned", "stopped", "running")] == [None] * 4


def test_every_cause_has_a_hint() -> None:
    for cause in CAUSES:
        found = diagnose("errored", "", {}, cause=cause)
        assert found is not None and found.hint, cause


@pytest.mark.parametrize(
    ("event", "cause", "hint"),
    [
        ({"status": "errored", "error": "boom", "cause": "collective", "hint": "h"}, "collective", "h"),
        (
            {"status": "errored", "error": "RuntimeError: shapes cannot be multiplied (4x5 and 3x2)"},
            "shape_mismatch",
            "4x5",
        ),
        ({"status": "oom", "error": "OutOfMemoryError: CUDA out of memory."}, "oom", "batch_size 32"),
        ({"status": "finished", "error": None, "cause": None, "hint": None}, None, None),
    ],
)
def test_a_journaled_end_keeps_its_diagnosis_and_an_old_one_is_diagnosed_once(
    event: dict[str, Any], cause: str | None, hint: str | None
) -> None:
    found = journaled({"e": "end", "trial": "t1", **event}, {"batch_size": 32})
    assert (found.cause if found else None) == cause
    assert hint is None or (found is not None and hint in found.hint)


def test_the_recorder_records_the_diagnosis_it_is_given(tmp_path: Path) -> None:
    from tuner.results import Recorder, TrialRecord
    from tuner.results._journal import read_journal

    rec = Recorder(tmp_path, "loss", maximize=False)
    rec.start(TrialRecord("t1", {}, {"batch_size": 8}, seed=0))
    rec.end("t1", "errored", "RuntimeError: shapes cannot be multiplied (4x5 and 3x2)", cause="stalled", hint="h")
    assert (rec.trials["t1"].cause, rec.trials["t1"].hint) == ("stalled", "h")  # not re-diagnosed
    (end,) = [e for e in read_journal(tmp_path) if e["e"] == "end"]
    assert (end["cause"], end["hint"]) == ("stalled", "h")
    assert journaled(end) == diagnose("errored", "", cause="stalled").__class__("stalled", "h")


def run_study(tmp_path: Path, ray: None, text: str) -> tuple[pd.DataFrame, str]:
    """``python -m tuner run`` on a study (its ``name:`` line names it), in this process on the
    session's Ray (``ray_local``): its trials, by the first parameter, and what it printed."""
    study = textwrap.dedent(text)
    name = re.search(r"^name: (\S+)", study, re.MULTILINE).group(1)  # type: ignore[union-attr]
    (tmp_path / f"{name}.yaml").write_text(study)
    done = cli_here("run", f"{name}.yaml", "--no-dashboard", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    trials = pd.read_parquet(tmp_path / "results" / name / "trials.parquet")
    first = next(c for c in trials.columns if c.startswith("params_"))
    return trials.set_index(first), done.stderr


@pytest.mark.slow
def test_a_run_groups_its_failures_by_cause_with_hints(tmp_path: Path, ray_local: None) -> None:
    trials, said = run_study(
        tmp_path,
        ray_local,
        """
        name: faults
        trainable: trainables.toy:faulty
        metric: {name: loss, goal: minimize}
        method: grid
        max_failed_trials: 10
        parameters:
          mode: {values: [ok, shape, dtype, labels, no_metric, exit, segv, kill]}
          x: {value: 5.0}
        """,
    )
    expected = {
        "shape": "shape_mismatch",
        "dtype": "dtype_mismatch",
        "labels": "device_assert",
        "no_metric": "not_reported",
        "exit": "process_exited",
        "segv": "process_exited",
        "kill": "process_exited",
    }
    assert trials["cause"].dropna().to_dict() == expected
    assert "label 7" in trials.loc["labels", "hint"]
    # how a process ended without an exception: its exit code or signal, and where
    assert "exited with code 3 (os._exit at toy.py:" in trials.loc["exit", "error"]
    assert "code 3" in trials.loc["exit", "hint"]
    assert "killed by SIGSEGV (Segmentation fault) at " in trials.loc["segv", "error"]
    assert "in faulty" in trials.loc["segv", "error"] and "native code (SIGSEGV)" in trials.loc["segv", "hint"]
    assert "SIGKILL" in trials.loc["kill", "error"] and "OOM killer" in trials.loc["kill", "hint"]
    log = (tmp_path / "results" / "faults" / "logs" / f"{trials.loc['segv', 'trial_id']}.log").read_text()
    assert "Fatal Python error: Segmentation fault" in log  # every thread's stack, from faulthandler
    for cause in set(expected.values()):
        n = list(expected.values()).count(cause)
        assert f"  {cause} ({n} trial{'s' if n > 1 else ''}): " in said


@pytest.mark.slow
def test_a_trial_that_stops_reporting_is_stopped_as_stalled_with_its_stack(tmp_path: Path, ray_local: None) -> None:
    trials, said = run_study(
        tmp_path,
        ray_local,
        """
        name: hang
        trainable: trainables.toy:faulty
        metric: {name: loss, goal: minimize}
        method: grid
        stall_timeout: 3s
        parameters:
          mode: {values: [ok, hang, ok2]}
          x: {value: 5.0}
        """,
    )
    hung = trials.loc["hang"]
    assert hung["status"] == "errored" and hung["cause"] == "stalled"
    assert "after step 1" in hung["error"] and "toy.py" in hung["error"] and "in faulty" in hung["error"]
    assert "stalled (1 trial)" in said
    log = (tmp_path / "results" / "hang" / "logs" / f"{hung['trial_id']}.log").read_text()
    assert "--- rank 0 ---" in log and "time.sleep(1)" in log  # where it was, from its own stack
    assert set(trials.drop(index="hang")["status"]) == {"finished"}  # its slot went on with the others


LEAKY = """
name: {name}
trainable: {trainable}
metric: {{name: {metric}, goal: minimize}}
method: grid
on_leak: {on_leak}
parameters:
{parameters}
"""


@pytest.mark.slow
def test_a_leaking_trial_is_flagged_or_stopped_and_digits_is_not(tmp_path: Path, ray_local: None) -> None:
    def run(name: str, trainable: str, metric: str, on_leak: str, parameters: str) -> tuple[pd.DataFrame, str]:
        text = LEAKY.format(name=name, trainable=trainable, metric=metric, on_leak=on_leak, parameters=parameters)
        return run_study(tmp_path, ray_local, text)

    warned, said = run("warn", "trainables.toy:leaky", "loss", "warn", "  keep_graph: {values: [true, false]}")
    assert warned.loc[True, "leak_suspected"] and warned.loc[True, "leak_mb_per_step"] > 8
    assert not warned.loc[False, "leak_suspected"]
    assert set(warned["status"]) == {"finished"}  # flagged, not stopped
    assert "memory grows by" in said

    both, _ = run("stop", "trainables.toy:leaky", "loss", "stop", "  keep_graph: {values: [true, false]}")
    stopped = both.loc[True]
    assert stopped["status"] == "errored" and stopped["cause"] == "leak" and "loss.item()" in stopped["hint"]

    digits, _ = run(
        "digits", "trainables.digits:train_mlp", "val_loss", "warn", "  epochs: {value: 14}\n  lr: {values: [0.01]}"
    )
    assert not digits["leak_suspected"].any()  # no false alarm on a real training loop

    # what every trial used, in the results and at the end of run
    assert (warned["peak_rss_mb"] > 100).all() and (warned["cpu_s"] > 0).all()
    # the graphs it kept (by how much depends on what the worker process held before: a margin)
    assert warned.loc[True, "peak_rss_mb"] > warned.loc[False, "peak_rss_mb"] + 50
    row = digits.iloc[0]
    assert row["s_per_step"] > 0 and row["cpu_s"] > 0 and row["peak_rss_mb"] > 100
    assert re.search(r"resources: \d+ MB peak resident memory \(t\d+\), [\d.]+ s a step \(median\)", said)


@pytest.mark.slow
def test_each_cause_gets_the_action_the_study_file_names(tmp_path: Path, ray_local: None) -> None:
    trials, said = run_study(
        tmp_path,
        ray_local,
        """
        name: policy
        trainable: trainables.toy:faulty
        metric: {name: loss, goal: minimize}
        method: grid
        max_concurrent: 1
        max_failures: 2
        max_failed_trials: 10
        on_failure: {user_exception: retry, dtype_mismatch: infeasible, stalled: stop}
        stall_timeout: 2s
        parameters:
          mode: {values: [ok, raise, shape, dtype, hang, ok2]}
          x: {value: 5.0}
        """,
    )
    assert trials.loc["raise", "attempts"] == 2 and trials.loc["raise", "on_failure"] == "retry"
    assert trials.loc["shape", "attempts"] == 0  # deterministic: never retried, whatever max_failures says
    assert trials.loc["shape", "on_failure"] == "fail"
    assert trials.loc["dtype", "on_failure"] == "infeasible"  # the searcher is told to avoid it
    assert trials.loc["hang", "cause"] == "stalled" and "ok2" not in trials.index  # the study stopped there
    assert "failed with stalled (on_failure: {stalled: stop})" in said
    assert pd.isna(trials.loc["ok", "on_failure"])


def test_the_failure_policy_is_checked_when_the_study_is_read() -> None:
    from tuner.config import load_study
    from tuner.errors import ConfigError

    base = "trainable: trainables.toy:faulty\nmetric: {name: loss}\nmethod: random\nrun_cap: 2\n"
    base += "parameters: {x: {min: 0.0, max: 1.0}}\n"
    for extra, message in [
        ("on_failure: {segfault: retry}", "on_failure: unknown cause 'segfault'; causes: oom, shape_mismatch"),
        ("on_failure: {shape_mismatch: halve_batch}", "on_failure: shape_mismatch: halve_batch is for oom only"),
        ("on_failure: {oom: sometimes}", "on_failure.oom: Input should be 'retry', 'fail', 'infeasible'"),
        ("on_failure: {node_lost: fail}", "(node_lost is always continued on a live node)"),
        ("on_failure: {oom: retry}\non_oom: halve_batch", "give on_oom or on_failure.oom, not both"),
    ]:
        with pytest.raises(ConfigError) as err:
            load_study(text=base + extra + "\n")
        assert message in str(err.value), str(err.value)
    spec = load_study(text=base + "on_failure: {oom: retry}\n").spec
    assert (spec.failure_action("oom"), spec.failure_action("shape_mismatch")) == ("retry", "fail")
    assert (spec.failure_action("collective"), spec.failure_action(None)) == ("retry", "retry")
