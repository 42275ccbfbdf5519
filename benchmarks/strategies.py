"""FSDP and pipelines measured on this machine's CPUs (gloo), with processes started by
torch.multiprocessing (no Ray: the strategies alone).

    python benchmarks/strategies.py [--width 4096] [--layers 4]

1. Per-rank peak resident memory of one Adam step of an MLP of ``layers`` square layers
   (4 x 4096 x 4096: 64M parameters, 256 MB in float32) under DDP and under FSDP over 2 ranks,
   against one process. FSDP should hold about 1/N of the parameters, gradients and Adam state
   per rank.
2. A 2-stage pipeline's time per step for 1, 4 and 8 micro-batches (GPipe), and the measured
   bubble fraction next to the theory (K-1)/(M+K-1). With one micro-batch the stages take turns
   (the naive split), so a step then is the whole work of both stages; with every stage busy all
   the time it would take half of that: measured bubble = 1 - (t1 / K) / tM.
"""

from __future__ import annotations

import argparse
import gc
import resource
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tuner.strategies import StrategyOptions
from tuner.trial import Trial


def mlp(width: int, layers: int) -> nn.Sequential:
    torch.manual_seed(0)
    blocks: list[nn.Module] = []
    for _ in range(layers):
        blocks += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*blocks)


def spawn(body: Callable[..., None], world: int, *args: Any) -> None:
    """``body(rank, world, *args)`` in ``world`` processes joined in one gloo group, one thread
    each (the strategy tests use it too)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    mp.spawn(_in_group, args=(world, port, body, args), nprocs=world, join=True)


def _in_group(rank: int, world: int, port: int, body: Callable[..., None], args: tuple[Any, ...]) -> None:
    torch.set_num_threads(1)
    if world > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        body(rank, world, *args)
    finally:
        if world > 1:
            dist.destroy_process_group()
        # The model's reference cycles hold the group: freed at exit, a gloo thread would drop a
        # tensor while the interpreter shuts down and abort the rank (SIGABRT, 1 run in 10 here).
        gc.collect()


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _memory_rank(rank: int, world: int, name: str, width: int, layers: int, out: str) -> None:
    base = _peak_mb()
    trial = Trial("bench", 0, rank=rank, world_size=world, strategy=StrategyOptions(name))
    model = trial.prepare(mlp(width, layers))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(8, width)
    model(x).square().mean().backward()
    opt.step()
    Path(f"{out}.{rank}").write_text(f"{_peak_mb() - base:.0f}")


def memory(width: int, layers: int) -> None:
    params = layers * (width * width + width)
    print(
        f"1. one Adam step of {layers} x Linear({width}, {width}): {params / 1e6:.0f}M parameters, "
        f"{params * 4 / 2**20:.0f} MB in float32 (x4 with gradients and Adam's two moments)"
    )
    print("| strategy | ranks | peak memory per rank, above the process's start (MB) | vs one process |")
    print("|---|---|---|---|")
    single = None
    for name, world in [("ddp", 1), ("ddp", 2), ("fsdp", 2)]:
        with tempfile.TemporaryDirectory() as tmp:
            out = f"{tmp}/peak"
            spawn(_memory_rank, world, name, width, layers, out)
            peaks = [float(Path(f"{out}.{r}").read_text()) for r in range(world)]
        peak = max(peaks)
        single = single or peak
        label = "one process" if world == 1 else name
        print(f"| {label} | {world} | {peak:.0f} | {peak / single:.2f} |", flush=True)


def _pipeline_rank(rank: int, world: int, micro: int, width: int, layers: int, batch: int, out: str) -> None:
    options = StrategyOptions("pipeline", stages=world, microbatches=micro, schedule="gpipe")
    trial = Trial("bench", 0, rank=rank, world_size=world, strategy=options)
    model = trial.prepare(mlp(width, layers), loss_fn=lambda out, target: (out - target).square().mean())
    x, y = torch.randn(batch, width), torch.randn(batch, width)
    for _ in range(2):  # warm-up
        model.step(x, y)
    dist.barrier()
    start = time.perf_counter()
    steps = 6
    for _ in range(steps):
        model.step(x, y)
    dist.barrier()
    if rank == 0:
        Path(out).write_text(f"{(time.perf_counter() - start) / steps}")


def bubble(width: int, layers: int, batch: int, stages: int = 2) -> None:
    print(
        f"\n2. a {stages}-stage pipeline (GPipe), batch {batch} of {layers} x Linear({width}, {width}), "
        "one core a stage"
    )
    print("| micro-batches M | s a step | measured bubble | theory (K-1)/(M+K-1) |")
    print("|---|---|---|---|")
    first = None
    for micro in (1, 4, 8):
        with tempfile.TemporaryDirectory() as tmp:
            out = f"{tmp}/t"
            spawn(_pipeline_rank, stages, micro, width, layers, batch, out)
            seconds = float(Path(out).read_text())
        first = first or seconds
        measured = 1 - (first / stages) / seconds
        theory = (stages - 1) / (micro + stages - 1)
        print(f"| {micro} | {seconds:.3f} | {measured:.2f} | {theory:.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=4096)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=1024, help="the pipeline's batch")
    parser.add_argument("--pipeline-width", type=int, default=2048)
    parser.add_argument("--only", choices=["memory", "pipeline"])
    args = parser.parse_args()
    if args.only != "pipeline":
        memory(args.width, args.layers)
    if args.only != "memory":
        bubble(args.pipeline_width, args.layers, args.batch)


if __name__ == "__main__":
    main()
