"""Hugging Face's ``transformers.Trainer`` inside a trial::

    from transformers import Trainer, TrainingArguments
    from tuner.integrations.transformers import TunerCallback, training_arguments

    def train(config, trial):
        callback = TunerCallback(trial)
        args = TrainingArguments(output_dir=f"out/{trial.trial_id}/rank{trial.rank}", ..., **training_arguments(trial))
        trainer = Trainer(model=..., args=args, train_dataset=..., eval_dataset=..., callbacks=[callback])
        trainer.train(resume_from_checkpoint=callback.resume_from_checkpoint)

``TunerCallback`` reports the evaluation metrics at each evaluation (the global step is the step,
or the epoch), stops the Trainer when the scheduler prunes the trial, and keeps the Trainer's
checkpoint in the study's checkpoint store, which ``resume_from_checkpoint`` hands back to a
retried or resumed trial. ``training_arguments`` runs the Trainer on the trial's device and, for
``workers: N``, as DDP over the trial's worker group. :func:`search` is
``Trainer.hyperparameter_search`` over a tuner study: a factory builds the Trainer from each
trial's configuration. Importing this module without the
``transformers`` extra raises :class:`tuner.errors.MissingExtra`; see ``docs/transformers.md``.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import shutil
import sys
import tempfile
import uuid
import warnings
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.errors import MissingExtra, StudyFailed, TrialPruned
from tuner.integrations import _retune
from tuner.integrations._hf_distributed import distributed, training_arguments
from tuner.trial import Trial

if TYPE_CHECKING:  # to a type checker, the base class the extra installs
    from transformers import TrainerCallback as _Callback

    from tuner.config import Study
else:
    _Callback = object

__all__ = ["TunerCallback", "search", "training_arguments"]

STEPS = ("global_step", "epoch")

# The TrainingArguments the Trainer builds its optimizer from, and the param group keys they set.
OPTIMIZER_ARGUMENTS = ("learning_rate", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon")

if importlib.util.find_spec("transformers") is None:
    raise MissingExtra("transformers", "transformers")

_CLASSES: dict[type, type] = {}


def _concrete(base: type) -> type:
    """``base`` made a subclass of ``transformers.TrainerCallback``, which is imported only when a
    callback is made (importing transformers takes seconds)."""
    if base not in _CLASSES:
        from transformers import TrainerCallback

        _CLASSES[base] = type(base.__name__, (base, TrainerCallback), {"__module__": base.__module__})
    return _CLASSES[base]


class TunerCallback(_Callback):
    """A ``transformers.TrainerCallback`` that ties a ``Trainer`` to ``trial``.

    At each evaluation (``on_evaluate``) it reports every number in the metrics (``eval_loss``,
    what ``compute_metrics`` adds, ``epoch``) at the Trainer's global step, or at its epoch with
    ``step="epoch"``; an evaluation at a step already reported (``trainer.evaluate()`` after
    ``train``) is not reported again. When the study keeps checkpoints and the Trainer saves at the
    evaluation's step, the report waits for the save (``on_save``) and takes the checkpoint
    folder's files with it (with ``save_strategy="best"``, for the evaluations the Trainer saves as
    a new best). ``fp16``/``bf16`` set on the arguments after the Trainer was made, which its
    accelerator does not follow, stop training at its start with an error. When the scheduler has
    stopped the trial, it sets ``control.should_training_stop`` and raises
    :class:`tuner.errors.TrialPruned` out of ``trainer.train()``; the trainable lets it propagate
    and the trial ends pruned. With ``workers: N`` (the Trainer running DDP over the worker group:
    :func:`training_arguments`) every rank reports at the same steps, every rank stops at the same
    step, and rank 0 alone sends the metrics and the checkpoint.

    The checkpoint records the optimizer's ``TrainingArguments`` (``OPTIMIZER_ARGUMENTS``). A
    Trainer that goes on from a checkpoint written under other ones (a PBT exploit) gets, after
    the Trainer has loaded the checkpoint's optimizer and scheduler, its own learning rate, weight
    decay, betas and epsilon set on them, and keeps the optimizer's state and the schedule's
    progress.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> TunerCallback:
        instance: TunerCallback = super().__new__(_concrete(cls))
        return instance

    def __init__(
        self,
        trial: Trial,
        step: str = "global_step",
        compute_objective: Callable[[dict[str, float]], float] | None = None,
    ) -> None:
        if step not in STEPS:
            raise ValueError(f"TunerCallback: step must be one of {', '.join(STEPS)}, got {step!r}")
        self.trial = trial
        self.step = step
        self.compute_objective = compute_objective  # reported as "objective", as hyperparameter_search's
        self.reported = 0  # reports made so far
        self._last: float | None = None
        self._pending: tuple[float, dict[str, float]] | None = None  # waiting for the save at its step
        self._training = False
        self.retuned: list[str] = []  # the param group keys the last resume set from the arguments
        self._restored: dict[str, Any] | None = None  # the arguments that wrote the checkpoint resumed from
        self._folder = Path(tempfile.mkdtemp(prefix="tuner-transformers-"))
        weakref.finalize(self, shutil.rmtree, self._folder, True)

    @property
    def resume_from_checkpoint(self) -> str | None:
        """The trial's last Trainer checkpoint as a folder for
        ``trainer.train(resume_from_checkpoint=...)`` when the trial goes on from one (a retry, a
        resumed study); ``None`` for a fresh start."""
        state = self.trial.checkpoint()
        if not isinstance(state, dict) or "transformers" not in state:
            return None
        folder = self._folder / f"checkpoint-{int(state['global_step'])}"
        for name, data in state["transformers"].items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data.numpy().tobytes())
        self._restored = state.get("arguments")
        return str(folder)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._training = True
        _check_precision(args)
        old, self._restored = self._restored, None
        optimizer = kwargs.get("optimizer")
        self.retuned = []
        if old is None or optimizer is None or state.global_step == 0:  # not going on from our checkpoint
            return
        changes = _changes(old, _arguments(args), optimizer.param_groups)
        schedulers = [s for s in [kwargs.get("lr_scheduler")] if s is not None]
        self.retuned = _retune.retune(optimizer, schedulers, changes)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._flush(control)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._training = False
        self._flush(control)

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any) -> None:
        self._flush(control)
        step = float(state.epoch or 0.0) if self.step == "epoch" else float(state.global_step)
        if self._last is not None and step <= self._last:
            return
        values = _scalars(metrics or {})
        if self.compute_objective is not None:
            values["objective"] = float(self.compute_objective(dict(values)))
        # The Trainer saves next, at this step: report with the checkpoint. With save_strategy
        # "best" it decides after this call, and saves only a new best: wait and see.
        if self._training and (control.should_save or _saves_best(args)) and self.trial.store is not None:
            self._pending = (step, values)
            return
        self._report(step, values, None, control)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._pending is None:
            return
        step, values = self._pending
        self._pending = None
        self._report(step, values, self._checkpoint(args, state), control)

    def _flush(self, control: Any) -> None:
        """Report an evaluation that waited for a save that did not come (another callback
        cancelled it), before anything else happens."""
        if self._pending is not None:
            step, values = self._pending
            self._pending = None
            self._report(step, values, None, control)

    def _report(self, step: float, values: dict[str, float], checkpoint: Any, control: Any) -> None:
        self._last = step
        self.reported += 1
        try:
            self.trial.report(step, checkpoint=checkpoint, **values)
        except TrialPruned:
            control.should_training_stop = True
            raise

    def _checkpoint(self, args: Any, state: Any) -> dict[str, Any] | None:
        """The files of the checkpoint folder the Trainer has just written, as bytes in tensors so
        that the study's store keeps them as it keeps any state; ``None`` on ranks but 0."""
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if self.trial.rank != 0 or not folder.is_dir():
            return None
        files = {
            p.relative_to(folder).as_posix(): _tensor(p.read_bytes()) for p in sorted(folder.rglob("*")) if p.is_file()
        }
        return {"transformers": files, "global_step": int(state.global_step), "arguments": _arguments(args)}


def _saves_best(args: Any) -> bool:
    strategy = getattr(args, "save_strategy", None)
    return str(getattr(strategy, "value", strategy)) == "best"


PRECISIONS = ("fp16", "bf16")


def _precision(args: Any) -> str | None:
    """The mixed precision ``fp16``/``bf16`` of ``args`` ask for; ``None`` when neither."""
    return next((name for name in PRECISIONS if getattr(args, name, False)), None)


def _check_precision(args: Any) -> None:
    """A clear error for ``fp16``/``bf16`` set on the arguments after they were made (the
    accelerator follows the precision they were made with), and a notice for ``fp16`` on the
    CPU, where accelerate trains in float32."""
    wanted = _precision(args)
    made = getattr(args, "mixed_precision", None)  # what the accelerator is made with (transformers 5)
    if made is None:
        return
    if wanted is not None and made != wanted:
        changed = f"{wanted}=True"
    elif wanted is None and made in PRECISIONS and os.environ.get("ACCELERATE_MIXED_PRECISION") != made:
        changed = f"{made}=False"
    else:
        changed = ""
    if changed:
        raise ValueError(
            f"TunerCallback: TrainingArguments {changed} was set after the arguments were made, and the"
            f" Trainer's accelerator trains in the precision they were made with, {made!r}: pass {changed} to"
            " TrainingArguments(...) (search() does so for a searched fp16/bf16)"
        )
    device = getattr(getattr(args, "device", None), "type", None)
    if wanted == "fp16" and device == "cpu":
        warnings.warn(
            "fp16=True on the CPU: accelerate trains in float32 there (bf16=True is mixed precision on the CPU)",
            stacklevel=2,
        )


def _arguments(args: Any) -> dict[str, float]:
    return {name: float(getattr(args, name)) for name in OPTIMIZER_ARGUMENTS if hasattr(args, name)}


def _changes(old: dict[str, float], new: dict[str, float], groups: list[dict[str, Any]]) -> list[_retune.Changes]:
    """Per param group of the restored optimizer, what ``new`` arguments change from ``old``: in
    the groups whose value the ``old`` ones set (an optimizer made otherwise is left alone). A zero
    weight decay is also the Trainer's no-decay group's: then only the first group, the decayed
    one, takes the new weight decay."""
    out: list[_retune.Changes] = []
    for index, group in enumerate(groups):
        changes: _retune.Changes = {}
        lr = group.get("initial_lr", group.get("lr"))
        if "learning_rate" in old and old["learning_rate"] != new.get("learning_rate") and lr == old["learning_rate"]:
            changes["lr"] = (old["learning_rate"], new["learning_rate"])
        decay = old.get("weight_decay")
        if decay != new.get("weight_decay") and group.get("weight_decay") == decay and (decay or index == 0):
            changes["weight_decay"] = (decay, new["weight_decay"])
        betas = (old.get("adam_beta1"), old.get("adam_beta2"))
        fresh = (new.get("adam_beta1"), new.get("adam_beta2"))
        if betas != fresh and _retune.same(group.get("betas"), betas):
            changes["betas"] = (betas, fresh)
        if old.get("adam_epsilon") != new.get("adam_epsilon") and group.get("eps") == old.get("adam_epsilon"):
            changes["eps"] = (old["adam_epsilon"], new["adam_epsilon"])
        out.append(changes)
    return out


def _tensor(data: bytes) -> Any:
    import torch

    return torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        if hasattr(value, "item") and getattr(value, "size", 1) in (1, ()):
            value = value.item()
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = float(value)
    return out


# -- search: Trainer.hyperparameter_search over a tuner study -----------------------------------

_MODULE = '''"""The trial of a study run by tuner.integrations.transformers.search."""
from pathlib import Path

from tuner.integrations.transformers import trial_function

train = trial_function(Path(__file__).with_name("factory.pkl"))
'''


def search(
    trainer_factory: Callable[..., Any],
    study: str | os.PathLike[str] | dict[str, Any] | Study,
    *,
    hp_space: Callable[[Any], dict[str, Any]] | None = None,
    compute_objective: Callable[[dict[str, float]], float] | None = None,
    direction: str | None = None,
    step: str = "global_step",
    n_trials: int | None = None,
    allow_modules: Sequence[str] = (),
    address: str | None = None,
    num_cpus: int | None = None,
    dashboard: bool | None = None,
    seed: int | None = None,
    quiet: bool = False,
    say: Callable[[str], None] | None = None,
) -> Any:
    """Run ``study`` (a YAML path, the study as a dict, or a loaded :class:`tuner.Study`; its
    ``trainable`` is this search's) with each trial's ``Trainer`` built by
    ``trainer_factory(config)`` (or ``trainer_factory(config, trial)``); return the best trial as
    ``transformers.trainer_utils.BestRun`` (``run_id``, ``objective``, ``hyperparameters``, and
    the study's outcomes as ``run_summary``, whose ``folder`` holds its results).

    In each trial every key of the configuration that names a ``TrainingArguments`` field
    (``learning_rate``, ``per_device_train_batch_size``, ``num_train_epochs``...) is set on the
    Trainer's arguments, as ``hyperparameter_search`` does, the Trainer writes to
    ``<output_dir>/run-<trial id>``, a :class:`TunerCallback` with ``step`` is added, and the
    Trainer trains (from the trial's checkpoint on a retry); a Trainer that did not evaluate while
    training is evaluated once at the end. ``trainer_factory`` goes to the trials pickled by
    ``cloudpickle``: a function of the user's script travels by value, one of an importable
    module by reference. ``trainer_factory`` may also be a ``Trainer`` made with ``model_init``, as
    ``hyperparameter_search`` takes it: each trial trains a copy of it. ``hp_space`` is
    ``hyperparameter_search`` 's, written for its Optuna backend (``trial.suggest_float(...)``) or
    its Ray backend (``tune.loguniform(...)``): its hyperparameters become the study's
    ``parameters`` (over those the study has), see :func:`hp_parameters`. With
    ``compute_objective`` or ``direction``, each report also carries ``objective``:
    ``compute_objective(metrics)``, by default ``hyperparameter_search`` 's (the evaluation loss,
    or the sum of ``compute_metrics`` ' values), and a study without ``metric`` ranks by it,
    towards ``direction`` (``"minimize"``, the default, or ``"maximize"``). ``n_trials`` overrides
    ``run_cap``; the other keywords are :func:`tuner.run` 's.
    """
    from transformers.trainer_utils import BestRun

    import tuner

    try:
        import cloudpickle
    except ModuleNotFoundError as exc:
        raise MissingExtra("cloudpickle", "transformers") from exc
    if step not in STEPS:
        raise ValueError(f"search: step must be one of {', '.join(STEPS)}, got {step!r}")
    if _is_trainer(trainer_factory):
        trainer_factory = TrainerCopy(trainer_factory)
    parameters = None if hp_space is None else hp_parameters(hp_space)
    objective, metric = _objective(compute_objective, direction)
    module = f"_tuner_transformers_{uuid.uuid4().hex[:12]}"
    with tempfile.TemporaryDirectory(prefix="tuner-search-") as where:
        package = Path(where) / module
        package.mkdir()
        (package / "factory.pkl").write_bytes(cloudpickle.dumps((trainer_factory, step, objective)))
        (package / "__init__.py").write_text(_MODULE)
        sys.path.insert(0, where)  # the workers get the driver's path
        try:
            loaded = _study(study, f"{module}:train", n_trials, [module, *allow_modules], parameters, metric)
            outcome = tuner.run(
                loaded, address=address, num_cpus=num_cpus, dashboard=dashboard, seed=seed, quiet=quiet, say=say
            )
        finally:
            sys.path.remove(where)
            sys.modules.pop(module, None)
    best = outcome.best
    if best is None or best.value is None:
        failed = outcome.failures[0].error if outcome.failures else "no trial reported the metric"
        raise StudyFailed(f"search found no best trial: {failed} (logs in {outcome.folder}/logs)")
    return BestRun(run_id=best.trial_id, objective=best.value, hyperparameters=dict(best.params), run_summary=outcome)


def _objective(
    compute_objective: Callable[[dict[str, float]], float] | None, direction: str | None
) -> tuple[Callable[[dict[str, float]], float] | None, dict[str, str] | None]:
    """The objective each report carries, and the study's metric when the study names none."""
    if compute_objective is None and direction is None:
        return None, None
    if direction not in (None, "minimize", "maximize"):
        raise ValueError(f"search: direction must be 'minimize' or 'maximize' (one objective), got {direction!r}")
    if compute_objective is None:
        from transformers.trainer_utils import default_compute_objective

        compute_objective = default_compute_objective
    return compute_objective, {"name": "objective", "goal": direction or "minimize"}


def _study(
    study: Any,
    trainable: str,
    n_trials: int | None,
    allowed: list[str],
    parameters: dict[str, Any] | None = None,
    metric: dict[str, str] | None = None,
) -> Study:
    import yaml

    from tuner.config import Study, load_study, read_yaml

    if isinstance(study, Study) and metric is not None and not study.raw.get("metric"):
        study, allowed = dict(study.raw), [*allowed, *study.allowed]  # read again, with the metric
    if isinstance(study, Study):
        changes: dict[str, Any] = {"trainable": trainable}
        if n_trials is not None:
            changes["run_cap"] = n_trials
        if parameters is not None:
            changes["parameters"] = {**study.raw.get("parameters", {}), **parameters}
        return study.derive(**changes)
    path = None if isinstance(study, dict) else study  # named in what the study's problems say
    if parameters is not None or metric is not None:
        data = dict(study) if path is None else read_yaml(Path(path))
        if parameters is not None:  # the study's own parameters, and hp_space's over them
            data["parameters"] = {**(data.get("parameters") or {}), **parameters}
        if metric is not None and not data.get("metric"):
            data["metric"] = metric
        study = data
    if isinstance(study, dict):
        text = yaml.safe_dump(study, sort_keys=False)
        return load_study(path, text=text, trainable=trainable, run_cap=n_trials, allow_modules=allowed)
    return load_study(study, trainable=trainable, run_cap=n_trials, allow_modules=allowed)


def _is_trainer(value: Any) -> bool:
    trainer = sys.modules.get("transformers.trainer")
    return trainer is not None and isinstance(value, trainer.Trainer)


class TrainerCopy:
    """A ``Trainer`` made with ``model_init`` as a factory: each call, a fresh copy of it (its
    model left out: ``model_init`` builds each trial's), as ``hyperparameter_search`` 's Ray
    backend hands each trial the Trainer."""

    def __init__(self, trainer: Any) -> None:
        import cloudpickle

        if getattr(trainer, "model_init", None) is None:
            raise ValueError(
                "search: a Trainer given in place of a factory must be made with model_init=..., which"
                " builds each trial's model (as for hyperparameter_search)"
            )
        # Left out: the model wherever the Trainer holds it (with its optimizer, which train()
        # makes again for a model_init's model), and the accelerator (process-wide state, which
        # may hold weak references once the Trainer has run), made again in each copy.
        handler = getattr(trainer, "callback_handler", None)
        left_out = [
            *((trainer, name) for name in ("model", "model_wrapped", "optimizer", "lr_scheduler")),
            *((trainer, name) for name in ("accelerator", "gather_function")),
            *((handler, name) for name in ("model", "optimizer", "lr_scheduler") if handler is not None),
        ]
        kept = [getattr(holder, name, None) for holder, name in left_out]
        try:
            for holder, name in left_out:
                setattr(holder, name, None)
            self.pickled = cloudpickle.dumps(trainer)
        finally:
            for (holder, name), value in zip(left_out, kept, strict=True):
                setattr(holder, name, value)

    def __call__(self, config: dict[str, Any]) -> Any:
        import pickle

        from accelerate.state import AcceleratorState

        trainer = pickle.loads(self.pickled)
        # The arguments' devices and processes, found when the Trainer was made, are those of the
        # process that made it: found again here, in the trial's (its GPU, its worker group).
        trainer.args.__dict__.pop("_setup_devices", None)
        trainer.args._setup_devices  # noqa: B018  # a cached property: found now
        AcceleratorState._reset_state()  # the process's distributed state (PartialState) is kept
        trainer.create_accelerator_and_postprocess()
        return trainer


# -- hp_space: hyperparameter_search's search space as the study's parameters ---------------


class _Suggestions:
    """An Optuna trial for a define-by-run ``hp_space``: records what it suggests and answers
    each suggestion with its lowest (or highest) value."""

    def __init__(self, end: str) -> None:
        self.end = end
        self.suggested: dict[str, tuple[dict[str, Any], Any]] = {}  # name -> (parameter, value answered)

    def _answer(self, name: str, parameter: dict[str, Any], low: Any, high: Any) -> Any:
        value = low if self.end == "low" else high
        self.suggested[name] = (parameter, value)
        return value

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        if step is None:
            kind = "log_uniform_values" if log else "uniform"
            return self._answer(name, {"distribution": kind, "min": low, "max": high}, low, high)
        return self._answer(name, {"distribution": "q_uniform", "min": low, "max": high, "q": step}, low, high)

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        if log or step != 1:
            kind = "q_log_uniform_values" if log else "q_uniform"
            return self._answer(name, {"distribution": kind, "min": low, "max": high, "q": step}, low, high)
        return self._answer(name, {"distribution": "int_uniform", "min": low, "max": high}, low, high)

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._answer(name, {"values": list(choices)}, choices[0], choices[-1])

    def suggest_uniform(self, name: str, low: float, high: float) -> float:  # Optuna's older spellings
        return self.suggest_float(name, low, high)

    def suggest_loguniform(self, name: str, low: float, high: float) -> float:
        return self.suggest_float(name, low, high, log=True)

    def suggest_discrete_uniform(self, name: str, low: float, high: float, q: float) -> float:
        return self.suggest_float(name, low, high, step=q)


def hp_parameters(hp_space: Callable[[Any], Any]) -> dict[str, Any]:
    """A ``hyperparameter_search`` ``hp_space`` as a study's ``parameters``. Written for Optuna
    (``trial.suggest_float(name, low, high, log=...)``, ``suggest_int``, ``suggest_categorical``),
    each key of the dict it returns becomes the parameter its value was suggested as (a value
    not suggested, a constant); written for Ray (a dict of ``tune.loguniform``, ``tune.choice``,
    ``tune.randint``...), each domain becomes the same parameter as in a Ray Tune ``param_space``;
    written for W&B (a sweep configuration), its ``parameters`` are the study's as they are.
    A define-by-run space whose suggestions depend on the values suggested is refused: write it
    as the study's ``parameters``, with ``when:``."""
    low = _Suggestions("low")
    space = hp_space(low)
    if not isinstance(space, dict):
        raise TypeError(f"hp_space must return a dict of hyperparameters, got {type(space).__name__}")
    if not low.suggested and _is_sweep(space):  # W&B's form: its parameters are a study's
        return dict(space["parameters"])
    if not low.suggested:  # Ray's form (or constants alone)
        return _tune_parameters(space)
    high = _Suggestions("high")
    hp_space(high)
    if list(high.suggested) != list(low.suggested):
        raise ValueError(
            "hp_space: what it suggests depends on the values suggested"
            f" ({', '.join(sorted(set(low.suggested) ^ set(high.suggested)))}); write the search space as the"
            " study's parameters, with when: for the conditional ones"
        )
    out: dict[str, Any] = {}
    unused = dict(low.suggested)
    for key, value in space.items():
        found = unused.pop(key, None)
        if found is None:  # returned under another key than the one it was suggested as
            name = next((n for n, (_, v) in unused.items() if v is value), None)
            found = None if name is None else unused.pop(name)
        out[key] = {"value": _plain(value)} if found is None else found[0]
    return out


def _plain(value: Any) -> Any:
    """A constant of ``hp_space`` as a study file writes it: an enum (``SchedulerType.COSINE``) its
    value, a tuple a list."""
    import enum

    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _is_sweep(space: dict[str, Any]) -> bool:
    """Whether ``space`` is a W&B sweep configuration (``hyperparameter_search`` 's W&B backend):
    ``parameters``, a mapping of parameter specs, with a sweep's other keys alone."""
    parameters = space.get("parameters")
    return (
        isinstance(parameters, dict)
        and all(isinstance(spec, dict) for spec in parameters.values())
        and set(space) <= {"parameters", "method", "metric", "name", "early_terminate", "run_cap", "description"}
    )


def _tune_parameters(space: dict[str, Any]) -> dict[str, Any]:
    from tuner.backends.ray.tune import convert_param_space

    params, constants = convert_param_space(space)
    out: dict[str, Any] = {key: {"value": _plain(value)} for key, value in constants.items()}
    for name, param in params.params.items():
        out[name] = _spec(param)
    return {key: out[key] for key in space if key in out} | out  # in hp_space's order


def _spec(param: Any) -> dict[str, Any]:
    """One parameter of :mod:`tuner.space` as a study file writes it."""
    from tuner.space import Categorical, Float, Int, Normal

    spec: dict[str, Any]
    if isinstance(param, Categorical):
        spec = {"values": list(param.values)}
        if param.probabilities is not None:
            spec["probabilities"] = list(param.probabilities)
    elif isinstance(param, Int):
        spec = {"distribution": "int_uniform", "min": param.low, "max": param.high}
        if param.log:
            spec = {"distribution": "q_log_uniform_values", "min": param.low, "max": param.high, "q": 1}
    elif isinstance(param, Float):
        number = int if param.integer else float
        spec = {"distribution": "log_uniform_values" if param.log else "uniform"}
        spec |= {"min": number(param.low), "max": number(param.high)}
        if param.q is not None:
            spec["distribution"] = "q_log_uniform_values" if param.log else "q_uniform"
            spec["q"] = number(param.q)
    elif isinstance(param, Normal):
        spec = {"distribution": ("q_" if param.q is not None else "") + ("log_normal" if param.log else "normal")}
        spec |= {"mu": param.mu, "sigma": param.sigma} | ({"q": param.q} if param.q is not None else {})
    else:
        raise ValueError(f"hp_space: {param!r} has no study file form")
    if getattr(param, "grid", False):
        spec["grid"] = True
    return spec


def trial_function(pickled: str | os.PathLike[str]) -> Callable[[dict[str, Any], Trial], None]:
    """The trainable :func:`search` runs, from its pickled ``(trainer_factory, step)``."""
    import pickle

    factory, step, *more = pickle.loads(Path(pickled).read_bytes())
    objective = more[0] if more else None
    with_trial = _takes_trial(factory)

    def run_trial(config: dict[str, Any], trial: Trial) -> None:
        with distributed(trial):  # workers: N: the Trainer the factory makes runs DDP over the group
            trainer = factory(config, trial) if with_trial else factory(config)
            if set(apply_hyperparameters(trainer.args, config)) & set(PRECISIONS):
                _remake_accelerator(trainer)
            _model_init_with(trainer, config)
            if hasattr(trainer, "_train_batch_size"):  # the Trainer reads the batch size once, when made
                trainer._train_batch_size = trainer.args.train_batch_size
            run = f"run-{trial.trial_id}" + (f"-rank{trial.rank}" if trial.rank else "")  # each rank its folder
            trainer.args.output_dir = os.path.join(trainer.args.output_dir or "trainer_output", run)
            callback = TunerCallback(trial, step=step, compute_objective=objective)
            trainer.add_callback(callback)
            trainer.train(resume_from_checkpoint=callback.resume_from_checkpoint)
            if not callback.reported:  # no evaluation while training: one at the end, as hyperparameter_search
                trainer.evaluate()

    return run_trial


def _remake_accelerator(trainer: Any) -> None:
    """After a searched ``fp16``/``bf16`` was set on ``trainer.args``: the Trainer's accelerator
    made again in that precision, as ``hyperparameter_search`` makes it again (the accelerator, and
    accelerate's process-wide state, were made with the Trainer)."""
    from accelerate.state import AcceleratorState

    args = trainer.args
    if args.fp16 and args.bf16:
        raise ValueError("search: fp16 and bf16 are both True (configuration and Trainer); at most one may be")
    precision = _precision(args)
    if hasattr(args, "mixed_precision"):  # transformers 5: the arguments carry it
        args.mixed_precision = precision or os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    else:  # transformers 4: accelerate reads it from the environment, where TrainingArguments put it
        os.environ["ACCELERATE_MIXED_PRECISION"] = precision or "no"
    AcceleratorState._reset_state()  # the process's distributed state (PartialState) is kept
    trainer.create_accelerator_and_postprocess()


def _model_init_with(trainer: Any, config: dict[str, Any]) -> None:
    """A ``model_init(trial)`` gets the trial's configuration when ``train`` builds the model, as
    under ``hyperparameter_search(backend="ray")``, where ``trial`` is that dict: one that reads
    ``trial["dropout"]`` builds each trial's model with its own value (``train`` itself passes
    ``None``, and the value would be silently left out)."""
    from transformers.trainer_utils import number_of_arguments

    init = getattr(trainer, "model_init", None)
    if init is None or number_of_arguments(init) != 1:
        return

    def model_init(trial: Any) -> Any:
        return init(dict(config) if trial is None else trial)

    trainer.model_init = model_init


def _takes_trial(factory: Callable[..., Any]) -> bool:
    try:
        inspect.signature(factory).bind(None, None)
    except TypeError:
        return False
    except ValueError:  # no signature to read
        return False
    return True


def apply_hyperparameters(args: Any, config: dict[str, Any]) -> list[str]:
    """Set each key of ``config`` that names a field of ``args`` (``TrainingArguments``), cast to
    the field's type as ``Trainer.hyperparameter_search`` does; returns the names set."""
    import dataclasses

    fields = {f.name for f in dataclasses.fields(args)} if dataclasses.is_dataclass(args) else set()
    done = []
    for key, value in config.items():
        if key not in fields or isinstance(value, dict):
            continue
        old = getattr(args, key)
        if old is not None and not isinstance(old, bool) and isinstance(old, int | float | str):
            value = type(old)(value)
        setattr(args, key, value)
        done.append(key)
    return done
