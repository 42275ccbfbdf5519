"""The leak rule (``tuner.diagnose.leak_per_step``) on real memory: loops that keep each step's
loss with its graph are flagged, clean training loops and allocator noise never are.

Memory is measured as the worker does: this process's resident memory, sampled at each report
by ``tuner.backends.ray._usage.Usage``. The engine asks the rule at every report with the series
so far, so a clean series must pass at every prefix, not only whole. ``data/leak_traces.json``
holds series recorded from fresh processes (``python -m tests.test_leak`` records them again)
and by Ray workers in real ``tuner run`` studies (``ray_*``); the fast loops are also measured
live here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tuner.diagnose import LEAK_LONG, LEAK_WARMUP, leak_per_step
from tuner.trial import Trial

TRACES = Path(__file__).parent / "data" / "leak_traces.json"


def keeps_graph(config: dict[str, Any], trial: Trial) -> None:
    """A real mistake: an MLP trained on digits that sums each step's loss as a tensor,
    ``total = total + loss``, so every step's graph (its activations) stays alive.
    ``where: val``: the validation loss, computed without ``torch.no_grad()`` (about 1 MB a
    step); ``where: train``: a training batch's loss that is never backpropagated (about 2 MB a
    step at 512 a batch)."""
    import torch
    import torch.nn.functional as F

    from trainables.digits import load, mlp

    x, y, x_val, y_val = load()
    torch.manual_seed(0)
    model = mlp({"hidden": 256, "layers": 2})
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    batch = int(config.get("batch_size", 64))
    total: Any = 0.0
    for step in range(1, int(config["steps"]) + 1):
        i = (step * batch) % (len(y) - batch)
        loss = F.cross_entropy(model(x[i : i + batch]), y[i : i + batch])
        if config["where"] == "val":
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total = total + F.cross_entropy(model(x_val), y_val)
        else:
            total = total + loss
        trial.report(step, loss=loss.item())


def measure(fn: Callable[[dict[str, Any], Trial], None], config: dict[str, Any], steps: int) -> list[float]:
    """Resident memory at each report of ``fn``, sampled as the worker samples it."""
    from tuner.backends.ray._usage import Usage

    usage, rss = Usage(), []

    def emit(record: dict[str, Any]) -> None:
        now = usage.sample()
        assert now is not None  # Linux
        rss.append(round(now, 2))

    try:
        fn(config, Trial("leak", 0, max_steps=steps, emit=emit))
    finally:
        usage.stop()
    return rss


def _trainable(name: str) -> Callable[[dict[str, Any], Trial], None]:
    from tuner.config import import_trainable

    return keeps_graph if name == "keeps_graph" else import_trainable(name)


# name: (trainable, config, reports, leaks): what ``python -m tests.test_leak`` records
RECORDED: dict[str, tuple[str, dict[str, Any], int, bool]] = {
    "digits_mlp": ("trainables.digits:train_mlp", {"epochs": 40}, 40, False),
    "digits_mlp_batch512": ("trainables.digits:train_mlp", {"epochs": 40, "batch_size": 512}, 40, False),
    "digits_cnn": ("trainables.digits:train_cnn", {"epochs": 30}, 30, False),
    "digits_cnn_batch512": ("trainables.digits:train_cnn", {"epochs": 40, "batch_size": 512, "channels": 8}, 40, False),
    "toy_leaky_no_graph": ("trainables.toy:leaky", {"steps": 40, "keep_graph": False}, 40, False),
    "toy_quadratic": ("trainables.toy:quadratic", {"steps": 40}, 40, False),
    "toy_wide": ("trainables.toy:wide", {"steps": 40, "width": 2048, "batch_size": 256}, 40, False),
    "keeps_graph_val": ("keeps_graph", {"steps": 40, "where": "val"}, 40, True),
    "keeps_graph_train": ("keeps_graph", {"steps": 40, "where": "train", "batch_size": 512}, 40, True),
    "toy_leaky_graph": ("trainables.toy:leaky", {"steps": 20, "keep_graph": True}, 20, True),
}


def first_flag(series: list[float]) -> int | None:
    """The report at which the engine, asking at every report, flags the series (1-based)."""
    return next((k for k in range(1, len(series) + 1) if leak_per_step(series[:k]) is not None), None)


def recorded() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = json.loads(TRACES.read_text())
    return out


@pytest.mark.parametrize("name", [n for n, trace in recorded().items() if not trace["leaks"]])
def test_recorded_clean_loops_are_never_flagged(name: str) -> None:
    series = recorded()[name]["rss_mb"]
    assert len(series) >= 14 and first_flag(series) is None


@pytest.mark.parametrize("name", [n for n, trace in recorded().items() if trace["leaks"]])
def test_recorded_loops_that_keep_their_graphs_are_flagged_within_a_few_dozen_reports(name: str) -> None:
    series = recorded()[name]["rss_mb"]
    at = first_flag(series)
    assert at is not None and at <= LEAK_WARMUP + LEAK_LONG + 1, at
    rate = (series[-1] - series[LEAK_WARMUP]) / (len(series) - 1 - LEAK_WARMUP)
    assert leak_per_step(series) == pytest.approx(rate, rel=0.1)


def test_a_small_leak_is_one_the_old_rule_missed() -> None:
    series = recorded()["keeps_graph_val"]["rss_mb"]
    assert 0.8 < leak_per_step(series) < 2.5  # type: ignore[operator]
    assert series[-1] - series[LEAK_WARMUP] < 64  # under the 64 MB the rule wanted before


def test_a_loop_that_keeps_its_graph_is_flagged_live() -> None:
    """Measured in a fresh process, as a worker is: in the test session's own, memory that earlier
    tests freed can take the kept graphs without the resident memory growing."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.test_leak", "keeps_graph_train"],
        cwd=Path(__file__).parents[1],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    series = json.loads(done.stdout.strip().splitlines()[-1])
    at = first_flag(series)
    assert at is not None and at <= LEAK_WARMUP + LEAK_LONG + 1, series
    assert 0.8 < leak_per_step(series) < 2.5, series  # type: ignore[operator]


@pytest.mark.parametrize(
    ("trainable", "config"),
    [
        ("trainables.toy:quadratic", {"steps": 40}),
        ("trainables.toy:leaky", {"steps": 40, "keep_graph": False}),
        ("trainables.toy:tradeoff", {"steps": 40}),
        ("trainables.toy:wide", {"steps": 40, "width": 2048, "batch_size": 256}),
    ],
)
def test_clean_toy_loops_are_never_flagged_live(trainable: str, config: dict[str, Any]) -> None:
    series = measure(_trainable(trainable), config, 40)
    assert len(series) == 40 and first_flag(series) is None, series


@pytest.mark.slow
@pytest.mark.parametrize("trainable", ["trainables.digits:train_mlp", "trainables.digits:train_cnn"])
def test_digits_is_never_flagged_live(trainable: str) -> None:
    series = measure(_trainable(trainable), {"epochs": 30, "batch_size": 256}, 30)
    assert first_flag(series) is None, series


def _steps(start: float, diffs: list[float]) -> list[float]:
    out = [start]
    for d in diffs:
        out.append(out[-1] + d)
    return out


PAGES = [0.0, 0.01, 0.0, 0.13, 0.0, 0.0, 0.02, 0.0]  # a clean loop's jitter, as recorded
NOISE = {
    # an allocator's 8 MB blocks (a 2048x1024 float32 temporary) on some steps, then none
    "blocks_every_other_step": _steps(300, [8.0, 0.0] * 10 + [0.0] * 20),
    "blocks_two_of_three": _steps(300, [8.0, 8.0, 0.0] * 8 + [0.0] * 16),
    "blocks_8_of_10": _steps(300, [8.0] * 4 + [0.0] + [8.0] * 4 + [0.0] + PAGES * 4),
    "blocks_on_a_jittery_loop": _steps(300, [8.0, 0.01, 0.02, 0.13] * 10),
    # a warm-up that rises past the left-out reports and levels off
    "warm_up_halving": _steps(300, [100.0 * 0.5**i for i in range(40)]),
    "warm_up_slow": _steps(300, [12.0 * 0.85**i for i in range(40)]),
    "warm_up_then_flat": [300.0, 400.0, 480.0, *_steps(500, PAGES * 5)],
    # a cache that fills and is emptied: a sawtooth
    "sawtooth_short": _steps(400, ([4.0] * 5 + [-20.0]) * 7),
    "sawtooth_long": _steps(400, ([2.0] * 11 + [-22.0]) * 4),
}


@pytest.mark.parametrize("name", list(NOISE))
def test_allocator_noise_is_never_flagged(name: str) -> None:
    assert first_flag(NOISE[name]) is None


@pytest.mark.parametrize(
    ("series", "flagged_at"),
    [
        (_steps(500, [16.0] * 13), 11),  # large: 64 MB after 8 reports past the warm-up
        (_steps(500, [2.0] * 40), LEAK_WARMUP + LEAK_LONG),  # small: once it has lasted
        (_steps(500, [0.0] * 30 + [2.0] * 27), None),  # late: judged on the last 32 reports...
        (_steps(500, [0.0] * 30 + [2.0] * 40), 31 + 28),  # ... flagged once 28 of their 31 steps grew
        (_steps(500, [0.3] * 60), None),  # steady but slower than 0.5 MB a report
    ],
)
def test_the_rule_on_its_thresholds(series: list[float], flagged_at: int | None) -> None:
    assert first_flag(series) == flagged_at


def _record(name: str) -> list[float]:
    trainable, config, reports, _ = RECORDED[name]
    return measure(_trainable(trainable), config, reports)


if __name__ == "__main__":  # python -m tests.test_leak [name]: record the traces, each in a fresh process
    if len(sys.argv) > 1:
        print(json.dumps(_record(sys.argv[1])))
    else:
        out = recorded() if TRACES.exists() else {}  # the ray_* series stay as they are
        for name, (trainable, config, _, leaks) in RECORDED.items():
            done = subprocess.run(
                [sys.executable, "-m", "tests.test_leak", name], capture_output=True, text=True, check=True
            )
            series = json.loads(done.stdout.strip().splitlines()[-1])
            how = "in a fresh process, as tests/test_leak.py measure() does"
            out[name] = {"trainable": trainable, "config": config, "leaks": leaks, "measured": how, "rss_mb": series}
            print(name, first_flag(series), file=sys.stderr)
        TRACES.parent.mkdir(exist_ok=True)
        TRACES.write_text(json.dumps(out, indent=1) + "\n")
