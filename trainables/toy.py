"""Fast toy trainables for smoke tests: a known optimum, no data, milliseconds per step."""

from __future__ import annotations

import functools
import math
import time
from typing import Any

from tuner.trial import Trial


def quadratic(config: dict[str, Any], trial: Trial) -> None:
    """A noisy bowl whose loss falls with steps; best near lr=0.01, layers=3, act=relu.

    Reports ``loss`` (to minimise) and ``score`` (to maximise) once per step.
    """
    lr = float(config.get("lr", 0.01))
    layers = int(config.get("layers", 3))
    act = config.get("act", "relu")
    steps = int(config.get("steps", trial.max_steps or 10))
    sleep = float(config.get("sleep", 0.0))
    base = (math.log10(lr) + 2) ** 2 + 0.1 * (layers - 3) ** 2 + (0.0 if act == "relu" else 0.3)
    for step in range(1, steps + 1):
        if sleep:
            time.sleep(sleep)
        loss = base + 1.0 / step
        trial.report(step, loss=loss, score=-loss)


def sleep(config: dict[str, Any], trial: Trial) -> None:
    """Sleep ``seconds`` and report once: a trial of known, fixed length (for benchmarks)."""
    time.sleep(float(config.get("seconds", 1.0)))
    trial.report(1, loss=float(config.get("x", 0.0)))


def faulty(config: dict[str, Any], trial: Trial) -> None:
    """Misbehaves as ``config['mode']`` says: raise, nan, no_metric, a real torch error (shape,
    dtype, labels: a class label past the model's outputs), exit (``os._exit(3)``), segv (a real
    segmentation fault: reading address 0), kill (SIGKILL to itself, as the OOM killer does), hang
    after one report, or behave."""
    mode = config.get("mode", "ok")
    if mode == "raise":
        raise RuntimeError("boom: the trainable failed on purpose")
    if mode in ("shape", "dtype", "labels"):
        import torch

        layer = torch.nn.Linear(3, 2)
        if mode == "shape":
            layer(torch.ones(4, 5))
        elif mode == "dtype":
            layer(torch.ones(4, 3, dtype=torch.float64))
        else:
            torch.nn.functional.cross_entropy(layer(torch.ones(4, 3)), torch.tensor([0, 1, 1, 7]))
    if mode == "hang":  # reports once, then never again
        trial.report(1, loss=1.0)
        while True:
            time.sleep(1)
    if mode == "exit":
        import os

        os._exit(3)
    if mode == "segv":
        import ctypes

        ctypes.string_at(0)
    if mode == "kill":
        import os
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "nan":
        trial.report(1, loss=float("nan"))
        return
    if mode == "no_metric":
        trial.report(1, other=1.0)
        return
    for step in range(1, 4):
        trial.report(step, loss=float(config.get("x", 1.0)) / step)


def ranks(config: dict[str, Any], trial: Trial) -> None:
    """Reports ``rank`` and a per-rank ``loss`` (so the average over ranks is checkable)."""
    import os

    saved = trial.checkpoint()
    first = 1 if saved is None else int(saved["step"]) + 1
    for step in range(first, int(config.get("steps", 3)) + 1):
        dies = trial.rank == int(config.get("die_rank", -1)) and step == int(config.get("die_at", 0))
        if dies and saved is None:  # only the first attempt dies
            if config.get("how") == "raise":
                raise RuntimeError(f"rank {trial.rank} failed on purpose")
            os._exit(1)
        time.sleep(float(config.get("sleep", 0.0)))
        trial.report(
            step,
            loss=float(trial.rank + step + config.get("offset", 0)),
            rank=float(trial.rank),
            world=float(trial.world_size),
            checkpoint={"step": step},
        )


def memory_hungry(config: dict[str, Any], trial: Trial) -> None:
    """Raises torch's real CUDA out-of-memory error until the per-step batch is small enough.

    ``batch_size // trial.accumulation`` must be at most ``fits``; reports the accumulation used.
    """
    import torch

    per_step = int(config.get("batch_size", 64)) // trial.accumulation
    if per_step > int(config.get("fits", 64)):
        raise torch.cuda.OutOfMemoryError(f"CUDA out of memory. Tried to allocate a batch of {per_step}")
    for step in range(1, 3):
        trial.report(step, loss=float(config.get("x", 1.0)) / step, accumulation=float(trial.accumulation))


def leaky(config: dict[str, Any], trial: Trial) -> None:
    """Keeps every step's loss with its graph (``total = total + loss``, the classic leak) when
    ``keep_graph``, else accumulates ``loss.item()``: about 16 MB a step more, or nothing."""
    import torch

    weights = torch.randn(2048, 1024, requires_grad=True)
    total: Any = 0.0
    for step in range(1, int(config.get("steps", 14)) + 1):
        loss = (weights * torch.randn(2048, 1024)).square().mean()
        total = total + loss if config.get("keep_graph", True) else total + loss.item()
        trial.report(step, loss=float(loss))


def wide(config: dict[str, Any], trial: Trial) -> None:
    """One step of a two-layer network ``width`` units wide: a model whose size the space sets
    (a large enough width cannot be allocated)."""
    import torch

    width, batch = int(config["width"]), int(config.get("batch_size", 8))
    model = trial.prepare(torch.nn.Sequential(torch.nn.Linear(16, width), torch.nn.ReLU(), torch.nn.Linear(width, 1)))
    for step in range(1, int(config.get("steps", 1)) + 1):
        loss = model(torch.randn(batch, 16, device=trial.device)).square().mean()
        loss.backward()
        trial.report(step, loss=loss.item())


def tradeoff(config: dict[str, Any], trial: Trial) -> None:
    """Two objectives that pull apart: ``loss`` falls with ``width`` (and is best near lr=0.01),
    ``cost`` rises with it; reports both every step, for multi-objective studies."""
    lr, width = float(config.get("lr", 0.01)), float(config.get("width", 64))
    steps = int(config.get("steps", trial.max_steps or 4))
    base = (math.log10(lr) + 2) ** 2 + 32.0 / width
    for step in range(1, steps + 1):
        trial.report(step, loss=base + 1.0 / step, cost=width / 100.0)


def flaky_digits(config: dict[str, Any], trial: Trial) -> None:
    """A digits trainable (``config['fn']``: ``train_mlp`` or ``train_mlp_pipeline``) whose rank 1
    process exits at epoch ``die_at`` of its first attempt: a retry from its checkpoint, for any
    strategy."""
    import os

    from trainables import digits

    inner = getattr(digits, str(config.get("fn", "train_mlp")))
    report, first_attempt = trial.report, trial.checkpoint() is None

    def dying(step: float, **metrics: Any) -> None:
        if first_attempt and trial.rank == 1 and step == int(config.get("die_at", 0)):
            os._exit(1)
        report(step, **metrics)

    trial.report = dying  # type: ignore[method-assign]
    inner(config, trial)


def descent(config: dict[str, Any], trial: Trial) -> None:
    """Minibatch SGD on a small, ill-conditioned linear regression: a problem whose best answer
    is a schedule. A large ``lr`` moves fast along the flat directions but settles high (its
    noise), a small one settles low but slowly; within 24 steps a rate that starts high and falls
    (0.2, 0.05, 0.01 for 8 steps each: ``loss`` about 0.011, median over seeds) beats every fixed
    one (about 0.034 at best, near 0.075; 0.017 for the luckiest of 40 seeds). ``loss``: the
    error above the least-squares optimum, averaged over the step's 10 updates. The weights are
    checkpointed every step (``checkpoint_every``); the noise is seeded by the trial's seed and
    the step, so a schedule replays exactly."""
    import torch

    lr = float(config.get("lr", 0.05))
    steps = int(config.get("steps", trial.max_steps or 24))
    every = int(config.get("checkpoint_every", 1))
    pause = float(config.get("sleep", 0.0))  # seconds per step: members that overlap in time
    w, first = torch.zeros(8, 1), 1
    if (saved := trial.checkpoint()) is not None:
        w, first = saved["w"].clone(), int(saved["step"]) + 1
    for step in range(first, steps + 1):
        time.sleep(pause)
        w, loss = descent_step(w, lr, trial.seed, step)
        state = {"w": w, "step": step} if step % every == 0 or step == steps else None
        trial.report(step, loss=loss if math.isfinite(loss) else math.inf, checkpoint=state)


def descent_step(w: Any, lr: float, seed: int, step: int) -> tuple[Any, float]:
    """Step ``step`` of :func:`descent` (10 updates on minibatches of 4) from the weights ``w``:
    the new weights, and the step's ``loss``."""
    import torch

    x, y, floor = _regression()
    g = torch.Generator().manual_seed(seed * 1000 + step)
    total = 0.0
    for _ in range(10):
        rows = torch.randint(0, len(x), (4,), generator=g)
        xb, yb = x[rows], y[rows]
        w = w - lr * 2 * xb.T @ (xb @ w - yb) / len(rows)
        total += float(((x @ w - y) ** 2).mean()) - floor
    return w, total / 10


@functools.cache
def _regression() -> tuple[Any, Any, float]:
    import torch

    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 8, generator=g) * torch.logspace(-1, math.log10(1.5), 8)
    y = x @ torch.randn(8, 1, generator=g) + 0.5 * torch.randn(512, 1, generator=g)
    floor = float(((x @ torch.linalg.lstsq(x, y).solution - y) ** 2).mean())
    return x, y, floor


def descent_ranks(config: dict[str, Any], trial: Trial) -> None:
    """:func:`descent` that reports, with each step, where this rank went on from: ``restored``
    (the step of the checkpoint it loaded, 0 for none) and ``restored_sq`` (its square). Averaged
    over the ranks, ``restored_sq == restored ** 2`` only when every rank loaded the same step."""
    saved = trial.checkpoint()
    at = 0.0 if saved is None else float(saved["step"])
    report = trial.report

    def reporting(step: float, **metrics: Any) -> None:
        report(step, restored=at, restored_sq=at * at, **metrics)

    trial.report = reporting  # type: ignore[method-assign]
    descent(config, trial)
