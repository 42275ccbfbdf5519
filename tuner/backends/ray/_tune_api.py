"""Ray Tune and Ray Train's trainable API, answered by the trial that runs the trainable.

A trainable written for Ray Tune (``train_fn(config)`` calling ``tune.report``) or for a
``TorchTrainer`` (``train_loop_per_worker`` calling ``ray.train.report`` and
``ray.train.torch.prepare_model``) runs unchanged on a rank of a worker group: :func:`run` calls
it in the trial's thread bound to a :class:`Session`, which answers Ray's functions there (see
:mod:`tuner.backends.ray._tune_hook` for how they reach it).
"""

from __future__ import annotations

import contextlib
import inspect
import numbers
import os
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from tuner.backends.ray import _tune_hook
from tuner.backends.ray._tune_class import function_of
from tuner.config import is_tune_class
from tuner.errors import TrialPruned
from tuner.results import DEFAULT_METRIC  # Ray Tune's name for a number a trainable returns
from tuner.storage import CheckpointStore, is_remote
from tuner.trial import Trial


class NotReported(RuntimeError):
    """A Ray Tune-style trainable returned without a report."""


class Done(BaseException):
    """Raised by a report whose metrics say ``done``: the trial ends there, finished. A
    ``BaseException`` so that a trainable's ``except Exception`` does not swallow it."""


class Session:
    """One rank of a Ray Tune-style trial: its reports (``training_iteration`` 1, 2, ... is the
    step), its directory checkpoints in the study's store, and its context."""

    def __init__(
        self,
        trial: Trial,
        emit: Callable[[dict[str, Any]], None] | None,
        should_stop: Callable[[], bool],
        store: CheckpointStore | None,
        checkpoint: str | None = None,
        study: str = "",
    ) -> None:
        self.trial, self.emit, self.should_stop, self.store, self.study = trial, emit, should_stop, store, study
        resumed = None if checkpoint is None else CheckpointStore.step_of(checkpoint)
        self.latest = checkpoint if resumed is not None else None  # the checkpoint get_checkpoint() answers
        self.start = self.iteration = resumed or 0
        self.local_rank, self.local_world_size, self.node_rank = 0, 1, 0

    def begin(self) -> None:
        """Before the trainable runs: an earlier attempt's checkpoints past this one's start are
        dropped (rank 0), then, with several ranks, each learns its node's ranks (a collective
        that also keeps the others from writing before the drop)."""
        if self.trial.rank == 0 and self.store is not None:
            self.store.drop_after(self.trial.trial_id, self.start)
        if self.trial.world_size > 1:
            self.local_rank, self.local_world_size, self.node_rank = _node_ranks(self.trial.rank, self.trial.world_size)

    # -- ray.tune.report, ray.train.report -------------------------------------------------
    def report(self, metrics: Mapping[str, Any], checkpoint: Any = None, **options: Any) -> None:
        if not isinstance(metrics, Mapping):
            raise TypeError(f"report: metrics must be a dict, got {type(metrics).__name__}")
        for option in ("checkpoint_upload_fn", "validation"):
            if options.get(option):
                raise NotImplementedError(f"report: {option} is not supported by tuner")
        step = self.iteration + 1
        clean = numeric(metrics)
        clean["training_iteration"] = float(step)
        path = None
        stop, done = self.should_stop(), bool(metrics.get("done"))  # several ranks agree on both below
        # a single rank told to stop copies nothing: nobody would record its checkpoint
        if checkpoint is not None and self.store is not None and not (stop and self.trial.world_size == 1):
            source = getattr(checkpoint, "path", None)
            if source is None:
                raise TypeError(
                    "report: checkpoint must be a ray.tune.Checkpoint or ray.train.Checkpoint "
                    f"(Checkpoint.from_directory(dir)), got {type(checkpoint).__name__}"
                )
            path = self.store.save_directory(self.trial.trial_id, step, source, getattr(checkpoint, "filesystem", None))
        if self.trial.world_size > 1:  # also the barrier after every rank's copy
            stop, saved, done = _agree(stop, path is not None, done)
            if stop and not done:  # copied before the ranks knew of the stop: nobody records it
                if saved and self.trial.rank == 0 and self.store is not None:
                    self.store.drop_after(self.trial.trial_id, self.iteration)
                path = None
            elif saved and path is None and self.store is not None:
                path = self.store.directory(self.trial.trial_id, step)
        self.iteration = step
        if path is not None:
            self.latest = path
        if self.emit is not None:
            self.emit({"step": step, "metrics": clean, **({"checkpoint_path": path} if path else {})})
        if done:  # Ray Tune ends a trial whose result says done, as finished
            raise Done(self.trial.trial_id)
        budget = self.trial.max_steps
        if stop or (budget is not None and step >= budget):  # at max_t it ends here, as Tune stops it
            raise TrialPruned(self.trial.trial_id)

    def tune_checkpoint(self) -> Any:
        from ray.tune import Checkpoint

        return self._checkpoint(Checkpoint)

    def train_checkpoint(self) -> Any:
        from ray.train import Checkpoint

        return self._checkpoint(Checkpoint)

    def _checkpoint(self, cls: Any) -> Any:
        """The trial's last checkpoint (this attempt's, or the one it resumed from), in the store."""
        if self.latest is None or self.store is None:
            return None
        return cls(path=self.latest, filesystem=self.store.filesystem)

    def context(self) -> Context:
        return Context(self)

    def dataset(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            "ray.train.get_dataset_shard: tuner hands no Ray Datasets to a trial; build a DataLoader in the "
            "trainable (ray.train.torch.prepare_data_loader gives each rank its shard)"
        )

    # -- ray.train.torch -------------------------------------------------------------------
    def get_device(self) -> Any:
        return self.trial.device

    def get_devices(self) -> list[Any]:
        return [self.trial.device]

    def prepare_model(self, *args: Any, **kwargs: Any) -> Any:
        return _tune_hook.original(_tune_hook.V2_TORCH, "prepare_model")(*args, **kwargs)

    def prepare_data_loader(self, *args: Any, **kwargs: Any) -> Any:
        return _tune_hook.original(_tune_hook.V2_TORCH, "prepare_data_loader")(*args, **kwargs)

    # -- ray.train.collective --------------------------------------------------------------
    def barrier(self) -> None:
        if self.trial.world_size > 1:
            import torch.distributed as dist

            dist.barrier()

    def broadcast(self, data: Any) -> Any:
        if self.trial.world_size == 1:
            return data
        import torch.distributed as dist

        box = [data]
        dist.broadcast_object_list(box, src=0)
        return box[0]


class Context:
    """What ``ray.tune.get_context()`` and ``ray.train.get_context()`` answer in a trial: the
    trial's id (also its name), its folder, the study's name, and the rank's place as under a
    ``TorchTrainer``."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def get_trial_id(self) -> str:
        return self._session.trial.trial_id

    def get_trial_name(self) -> str:
        return self._session.trial.trial_id

    def get_experiment_name(self) -> str:
        return self._session.study

    def get_trial_dir(self) -> str:
        """The trial's folder in the study's checkpoint store when that is a local or shared path;
        a local scratch folder when it is an object store."""
        session = self._session
        store, trial_id = session.store, session.trial.trial_id
        if store is not None and not is_remote(store.location):
            folder = store.folder(trial_id)
        else:
            folder = os.path.join(tempfile.gettempdir(), "tuner", session.study or "study", trial_id)
        os.makedirs(folder, exist_ok=True)
        return folder

    def get_world_size(self) -> int:
        return self._session.trial.world_size

    def get_world_rank(self) -> int:
        return self._session.trial.rank

    def get_local_rank(self) -> int:
        return self._session.local_rank

    def get_local_world_size(self) -> int:
        return self._session.local_world_size

    def get_node_rank(self) -> int:
        return self._session.node_rank

    def get_metadata(self) -> dict[str, Any]:
        return {}

    def get_trial_resources(self) -> Any:
        raise NotImplementedError("get_trial_resources: a trial's resources are the study's resources block")

    def get_storage(self) -> Any:
        raise NotImplementedError("get_storage: checkpoints go to the study's checkpoints.path")


def numeric(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The numbers of a reported dict as floats, nested dicts flattened with ``/`` as Ray Tune
    does (``{"val": {"loss": 1}}`` -> ``val/loss``); a one-element tensor or array counts as its
    number. Anything else (strings, lists, None, booleans) is left out."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(numeric(value, f"{name}/"))
            continue
        if hasattr(value, "item") and not isinstance(value, numbers.Number):
            try:
                value = value.item()
            except (ValueError, RuntimeError, TypeError):  # more than one element
                continue
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def run(fn: Callable[..., Any], config: dict[str, Any], session: Session) -> None:
    """Call a Ray Tune-style trainable (``fn(config)``, or ``fn()`` when it takes nothing) in
    this thread, bound to ``session``; :class:`NotReported` when it returned without a report."""
    _tune_hook.install()
    if is_tune_class(fn):  # Ray Tune's class API, as a function trainable; its module's names rebound
        _tune_hook.rebind(vars(sys.modules[fn.__module__]))
        fn = function_of(fn)
    _tune_hook.rebind(getattr(fn, "__globals__", {}))
    session.begin()
    with _tune_hook.bind(session), contextlib.suppress(Done):
        for metrics in returned(fn(config) if _takes_config(fn) else fn()):
            session.report(metrics)
    if session.iteration == 0:
        name = getattr(fn, "__name__", "the trainable")
        raise NotReported(
            f"{name} returned without reporting: a Ray Tune-style trainable reports each iteration with "
            "ray.tune.report(metrics) or ray.train.report(metrics), or returns (or yields) a dict of metrics"
        )


def returned(output: Any) -> Iterator[dict[str, Any]]:
    """The reports a Ray Tune function trainable makes by returning or yielding, as Ray Tune takes
    them: a dict is a report, a number is ``{"_metric": number}``, ``None`` (or another false
    value) none; a generator's values are taken one by one as it yields them."""
    for value in output if inspect.isgenerator(output) else (output,):
        if not value:
            continue
        if isinstance(value, Mapping):
            yield dict(value)
        elif isinstance(value, numbers.Real) and not isinstance(value, bool):
            yield {DEFAULT_METRIC: value}
        else:
            raise ValueError(
                f"a Ray Tune trainable returned or yielded {type(value).__name__}: return or yield a dict of "
                "metrics or a single number"
            )


def run_here(
    fn: Callable[..., Any], config: dict[str, Any], trial: Trial, emit: Callable[[dict[str, Any]], None]
) -> None:
    """A Ray Tune-style trainable run in this thread as ``trial``, its reports handed to ``emit``
    and no checkpoint kept (``plan`` 's smoke step)."""
    run(fn, config, Session(trial, emit, lambda: False, None))


def _takes_config(fn: Callable[..., Any]) -> bool:
    try:
        inspect.signature(fn).bind(None)
    except TypeError:
        return False
    except ValueError:  # no signature to read
        pass
    return True


# -- collectives -------------------------------------------------------------------------------
def _agree(stop: bool, saved: bool, done: bool) -> tuple[bool, bool, bool]:
    """Over the ranks: whether any was told to stop, whether any saved a checkpoint, and whether
    any reported ``done``."""
    import torch
    import torch.distributed as dist

    flags = torch.tensor([float(stop), float(saved), float(done)], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        flags = flags.cuda()
    dist.all_reduce(flags)
    out = flags.cpu().tolist()
    return out[0] > 0, out[1] > 0, out[2] > 0


def _node_ranks(rank: int, world_size: int) -> tuple[int, int, int]:
    """``(local rank, local world size, node rank)`` from every rank's node, in rank order."""
    import torch.distributed as dist

    nodes: list[Any] = [None] * world_size
    dist.all_gather_object(nodes, _node_id())
    mine = nodes[rank]
    here = [r for r, node in enumerate(nodes) if node == mine]
    return here.index(rank), len(here), list(dict.fromkeys(nodes)).index(mine)


def _node_id() -> str:
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        return str(ray.get_runtime_context().get_node_id())
    return socket.gethostname()
