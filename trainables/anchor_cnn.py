"""The reference loop of the GPU packing figures (``benchmarks/gpu_packing.py``).

A small CNN (5 conv layers with batch norm) trained for ``steps`` steps of ``batch`` (256) on
random 3x32x32 data that lives on the device, SGD with momentum, bf16 autocast, channels-last,
cuDNN autotuning on. :func:`train` is the tuner trainable, :func:`train_tune` the same loop for
Ray Tune's ``Tuner``; both report every ``report_every`` steps and, last, the trial's own
figures: ``samples`` trained, ``t_begin`` (when the trainable was entered) and ``t_end`` (epoch
seconds), from which the benchmark takes the trials' span; every report has its ``t_report``.
``device``: ``cuda`` (default) or ``cpu`` for a dry run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn

from tuner.trial import Trial

DATA = 8192


def make_model() -> nn.Module:
    def block(cin: int, cout: int) -> nn.Module:
        conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        return nn.Sequential(conv, nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    return nn.Sequential(
        block(3, 64),
        block(64, 64),
        nn.MaxPool2d(2),
        block(64, 128),
        block(128, 128),
        nn.MaxPool2d(2),
        block(128, 256),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(256, 10),
    )


def loop(config: dict[str, Any], report: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, float]:
    """Train as ``config`` says; returns ``samples``, ``samples_per_s``, ``t_begin`` and ``t_end``."""
    begin = time.time()
    steps, batch = int(config.get("steps", 600)), int(config.get("batch", 256))
    every = int(config.get("report_every", 100))
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    dev = torch.device(config.get("device", "cuda"))
    g = torch.Generator(device=dev).manual_seed(0)
    x = torch.randn(DATA, 3, 32, 32, device=dev, generator=g)
    y = torch.randint(0, 10, (DATA,), device=dev, generator=g)
    model = make_model().to(dev).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = torch.optim.SGD(model.parameters(), lr=float(config.get("lr", 0.05)), momentum=0.9)
    t0 = time.time()
    for step in range(1, steps + 1):
        idx = torch.randint(0, DATA, (batch,), device=dev)
        xb = x[idx].contiguous(memory_format=torch.channels_last)
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            loss = nn.functional.cross_entropy(model(xb), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if report is not None and step % every == 0 and step < steps:
            now = time.time()
            report(step, {"loss": loss.item(), "samples_per_s": step * batch / (now - t0), "t_report": now})
    final = loss.item()  # waits for the device
    end = time.time()
    out = {"loss": final, "samples": float(steps * batch), "samples_per_s": steps * batch / (end - t0)}
    if report is not None:
        report(steps, {**out, "t_begin": begin, "t_end": end, "t_report": end})
    return {**out, "t_begin": begin, "t_end": end}


def train(config: dict[str, Any], trial: Trial) -> None:
    loop(config, lambda step, metrics: trial.report(step, **metrics))


def train_tune(config: dict[str, Any]) -> None:
    from ray import tune

    loop(config, lambda step, metrics: tune.report({"step": step, **metrics}))


def fill_memory(config: dict[str, Any], trial: Trial) -> None:
    """A trial whose memory grows with its batch, for the out-of-memory retry check: on a GPU, a
    step of ``batch`` (256) samples holds ``fill`` x the device's memory x batch / 128 in eight
    activations (0.55: it runs out at 256 and fits at 128, after ``on_oom: halve_batch``); on a
    CPU, a few MB. Reports ``micro_batch``, the samples a step really took."""
    micro = int(config.get("batch", 256)) // trial.accumulation
    dev = trial.device
    total = torch.cuda.get_device_properties(dev).total_memory if dev.type == "cuda" else 2**26
    per_chunk = int(float(config.get("fill", 0.55)) * total * micro / 128 / 8 / 4)  # float32 elements
    for step in range(1, int(config.get("steps", 3)) + 1):
        chunks = [torch.ones(per_chunk, device=dev) for _ in range(8)]
        loss = float(sum(float(c[-1]) for c in chunks))
        del chunks
        trial.report(step, loss=loss, micro_batch=float(micro))
