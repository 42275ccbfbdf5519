"""The long-lived process that runs trials one after another: one rank of a worker group.

Reusing it across trials is what makes a short trial cheap: the interpreter, torch and the
trainable's module are loaded once, and a DDP trial only forms a fresh process group. A new
process is readied by :meth:`TrialWorker.warm` as it starts (the trainable and torch imported;
on a GPU, CUDA initialised and its cuBLAS and cuDNN libraries loaded), and a trial sent to it
meanwhile starts, and starts its clock, only once that is done. Before each trial the process
drops what the last one left (:func:`~tuner.backends.ray._usage.reset_memory`): an empty
CUDA cache and fresh peak counters, so that its memory figures are its own and an
out-of-memory retry starts from nothing cached. Each
trial runs in a thread of the actor so that the driver can ask it to stop while it trains;
events stream back as a Ray generator (rank 0 streams reports, and on a GPU its memory once
settled; every rank ends with one of ``done``/``pruned``/``error``). A Ray Tune-style trainable
(``train_fn(config)``) runs bound to a :class:`~tuner.backends.ray._tune_api.Session` that
answers Ray's ``report`` and the like.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import importlib
import os
import queue
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from tuner.backends.ray import _by_value, _last_words, _tune_api, _tune_hook
from tuner.backends.ray._usage import Usage, cuda, reset_memory
from tuner.backends.ray._user_runs import end_user_runs
from tuner.config import trainable_style
from tuner.errors import TrialPruned
from tuner.storage import CheckpointStore
from tuner.trial import Trial

COLLECTIVE_TIMEOUT_S = 120  # a backstop only: the driver kills a group whose rank died
JOIN_S = 5.0  # how long a finished stream waits for its trial's thread to wind down
# torch cannot be imported by two threads at once (half-initialised modules): warm() and a
# trial's thread take turns.
_IMPORTS = threading.Lock()


def _die_quietly() -> None:
    """Ray ends a killed actor with SIGTERM, which Ray's handler turns into ``SystemExit`` raised
    wherever the process happens to be (often in garbage collection): a traceback on the driver's
    terminal when the driver shows its workers' output (a script's own ``ray.init``). Ray's
    handler still runs; what the process says while it dies goes nowhere."""
    previous = signal.getsignal(signal.SIGTERM)
    if not callable(previous):  # ignored or default: left as it is
        return

    def quiet(signum: int, frame: Any) -> None:
        with contextlib.suppress(Exception):
            sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - held until the process ends
        previous(signum, frame)
        raise SystemExit(128 + signum)

    with contextlib.suppress(ValueError):  # not the main thread: Ray's handler stays
        signal.signal(signal.SIGTERM, quiet)


def _import(trainable: str) -> Any:
    from tuner.config import import_trainable

    with _IMPORTS:
        _by_value.install()
        _tune_hook.install()  # before the trainable's module imports Ray Tune's functions
        return import_trainable(trainable)


@dataclass(frozen=True)
class TrialTask:
    """Everything a rank needs to run its part of one trial."""

    trial_id: str
    trainable: str
    config: dict[str, Any]
    seed: int
    max_steps: int | None
    gpus: float
    rank: int = 0
    world_size: int = 1
    master: tuple[str, int] | None = None
    backend: str = "gloo"
    store: CheckpointStore | None = None  # where rank 0 writes checkpoints (None: none are kept)
    checkpoint: str | None = None  # the checkpoint to continue from (a retry, a resumed trial)
    accumulation: int = 1  # gradient accumulation steps; doubled by each out-of-memory retry
    final: bool = False  # a final run (train, confirm): the trainable may report on its test split
    strategy: Any = None  # how the model is spread over the ranks (tuner.strategies.StrategyOptions)
    api: str = "auto"  # the trainable's API (trainable_api): auto, tuner or tune
    study: str = ""  # the study's name (a Ray Tune-style trainable's experiment name)
    settle: bool = False  # gpus: auto: rank 0 says when its GPU memory settles (a "memory" event)


class TrialWorker:
    """Made a Ray actor by the engine; plain Python here so it can be tested without Ray."""

    def __init__(
        self,
        path_entries: list[str] | None = None,
        warm: tuple[str, float] | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        """``warm``: the trainable and GPUs of this process's trials, to ready it for them (:meth:`warm`)
        before any method runs: a trial sent meanwhile waits, and its clock starts after.
        ``settings``: environment variables to set where this process has none (before torch is imported)."""
        for name, value in (settings or {}).items():
            os.environ.setdefault(name, value)
        for entry in reversed(path_entries or []):
            if entry not in sys.path:
                sys.path.insert(0, entry)
        self._stops: dict[str, threading.Event] = {}
        self._last: threading.Thread | None = None  # the last trial's thread
        key = _actor_key()
        if key is not None:  # a Ray actor: it leaves its exit code or fatal signal on its node
            with contextlib.suppress(OSError):
                _last_words.install(key)
            _die_quietly()
        self._readied: dict[str, float] = {}
        if warm is not None:
            with contextlib.suppress(Exception):  # a trainable that fails to import fails its trial, with the reason
                self._readied = self.warm(*warm)

    def warm(self, trainable: str, gpus: float = 0.0) -> dict[str, float]:
        """Ready this process for a first trial: import the trainable (and torch), and with
        ``gpus``, initialise CUDA and load its libraries (:func:`ready_cuda`). Returns the seconds
        each took (``import_s``, ``cuda_s``)."""
        start = time.perf_counter()
        _import(trainable)
        if gpus > 0:  # a trainable that imports torch only when called: it will use it
            with _IMPORTS:
                importlib.import_module("torch")
        took = {"import_s": round(time.perf_counter() - start, 3)}
        torch = sys.modules.get("torch")
        if gpus > 0 and torch is not None:
            start = time.perf_counter()
            if ready_cuda(torch):
                took["cuda_s"] = round(time.perf_counter() - start, 3)
        return took

    def readied(self) -> dict[str, float]:
        """What readying this process took when it started (:meth:`warm`'s figures)."""
        return self._readied

    def stacks(self) -> str:
        """Where this rank's trial threads are now: their Python stacks, innermost call last."""
        frames = sys._current_frames()
        out = []
        for thread in threading.enumerate():
            frame = frames.get(thread.ident or -1)
            if thread.name.startswith("trial-") and frame is not None:
                out.append(f"Thread {thread.name}:\n" + "".join(traceback.format_stack(frame)))
        return "\n".join(out) or "no trial thread is running"

    def address(self) -> tuple[str, int]:
        """This node's address and a free port, for rank 0 to host the process group."""
        import ray

        with socket.socket() as sock:
            sock.bind(("", 0))
            port = int(sock.getsockname()[1])
        return ray.util.get_node_ip_address(), port

    def stop(self, trial_id: str) -> None:
        event = self._stops.get(trial_id)
        if event is not None:
            event.set()

    def run(self, task: TrialTask, master: tuple[str, int] | None = None) -> Iterator[dict[str, Any]]:
        """Run this rank's part of a trial, yielding its events.

        ``master``: rank 0's address for the process group (Ray resolves it from rank 0's
        ``address()`` call before this runs, so the driver never waits for it).
        """
        if master is not None:
            task = dataclasses.replace(task, master=(str(master[0]), int(master[1])))
        stop = self._stops[task.trial_id] = threading.Event()
        events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._ready()
        started = time.time()

        def settled(mb: float) -> None:  # gpus: auto packs next to this trial once its appetite is known
            events.put({"kind": "memory", "gpu_reserved_mb": mb})

        usage = Usage(settled=settled if task.settle and task.rank == 0 and task.gpus > 0 else None)

        def emit(record: dict[str, Any]) -> None:
            state = record.pop("checkpoint", None)  # never through Ray: to storage, the driver gets where
            if state is not None and task.store is not None:
                record["checkpoint_path"] = task.store.save(task.trial_id, record["step"], state)
            events.put(
                {
                    "kind": "report",
                    "time": time.time() - started,
                    "rss_mb": usage.sample(),
                    "gpu_mb": usage.gpu_mb(),
                    "gpu_reserved_mb": usage.gpu_reserved_mb(),
                    **record,
                }
            )

        def end(event: dict[str, Any]) -> None:
            with contextlib.suppress(BaseException):  # a figure that cannot be read must not hide the end
                event["usage"] = usage.stop()
            events.put(event)

        thread = threading.Thread(
            target=_train,
            args=(task, stop, emit, end),
            daemon=True,
            name=f"trial-{task.trial_id}-rank{task.rank}",
        )
        thread.start()
        self._last = thread
        try:
            while True:
                event = events.get()
                yield event
                if event["kind"] not in ("report", "memory"):
                    break
        finally:
            thread.join(timeout=JOIN_S)  # a thread stuck in user code is left to the driver's kill
            self._stops.pop(task.trial_id, None)

    def _ready(self) -> None:
        """Before a trial: wait for the last trial's thread (the next trial may be sent as soon as
        the last one's end is read; the thread frees what its trial left as it ends), then return
        the CUDA cache and start the memory counters again."""
        last, self._last = self._last, None
        if last is not None:
            last.join(timeout=JOIN_S)
        torch = sys.modules.get("torch")
        if torch is not None:
            with contextlib.suppress(Exception):  # a broken CUDA context is the trial's to report
                reset_memory(torch, collect=last is None or last.is_alive())


def _train(task: TrialTask, stop: threading.Event, emit: Any, end: Any) -> None:
    joined = False

    def put(event: dict[str, Any]) -> None:  # the MLflow runs its code left open, ended before its end is told
        end_user_runs(event["kind"] == "error")
        end(event)

    try:
        fn = _import(task.trainable)
        tune = trainable_style(fn, task.api) == "tune"
        saved = None
        if task.checkpoint is not None and task.store is not None and not task.store.is_directory(task.checkpoint):
            saved = task.store.load(task.checkpoint)[1]
        if task.world_size > 1:
            import torch.distributed as dist

            assert task.master is not None
            host, port = task.master
            dist.init_process_group(
                task.backend,
                init_method=f"tcp://{host}:{port}",
                rank=task.rank,
                world_size=task.world_size,
                timeout=timedelta(seconds=COLLECTIVE_TIMEOUT_S),
            )
            joined = True
        trial_emit = emit if task.rank == 0 else None
        trial = Trial(
            task.trial_id,
            task.seed,
            max_steps=task.max_steps,
            gpus=task.gpus,
            rank=task.rank,
            world_size=task.world_size,
            emit=trial_emit,
            should_stop=stop.is_set,
            checkpoint=saved,
            accumulation=task.accumulation,
            final=task.final,
            strategy=task.strategy,
            store=task.store,
        )
        if tune:
            session = _tune_api.Session(trial, trial_emit, stop.is_set, task.store, task.checkpoint, task.study)
            _tune_api.run(fn, task.config, session)
        else:
            fn(task.config, trial)
        put({"kind": "done"})
    except TrialPruned:
        put({"kind": "pruned"})
    except BaseException as exc:  # everything is reported, nothing lost
        # the driver diagnoses it (tuner.diagnose), from the traceback: it holds the whole message
        event: dict[str, Any] = {"kind": "error", "error": _last_line(exc), "traceback": traceback.format_exc()}
        with contextlib.suppress(BaseException):  # the failure itself must reach the driver
            event.update(oom=_is_oom(exc))
        put(event)
    finally:
        if joined:
            import torch.distributed as dist

            dist.destroy_process_group()
        _free_memory()  # at once, for a packed neighbour (after an out-of-memory above all)


def _actor_key() -> str | None:
    """This process's actor id when it runs as a Ray actor (the name of its last-words file)."""
    ray = sys.modules.get("ray")
    if ray is None:
        return None
    try:
        return str(ray.get_runtime_context().get_actor_id() or "") or None
    except Exception:
        return None


def _last_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[-1] if text else type(exc).__name__


def _is_oom(exc: BaseException) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError)


def _free_memory() -> None:
    """Drop what the last trial left behind, so the next one starts clean."""
    with contextlib.suppress(Exception):
        gc.collect()
        if (gpu := cuda()) is not None:
            gpu.empty_cache()


def ready_cuda(torch: Any) -> bool:
    """Initialise CUDA in this process and load the libraries a first trial would wait for: a
    small matrix product (cuBLAS) and a small convolution (cuDNN). False where there is no GPU
    (nothing is done). What it allocated is freed before the next trial (:func:`reset_memory`)."""
    if not torch.cuda.is_available():
        return False
    torch.cuda.init()
    a = torch.randn(64, 64, device="cuda")
    (a @ a).sum().item()
    image = torch.randn(1, 3, 16, 16, device="cuda")
    torch.nn.functional.conv2d(image, torch.randn(4, 3, 3, 3, device="cuda"), padding=1).sum().item()
    torch.cuda.synchronize()
    return True
