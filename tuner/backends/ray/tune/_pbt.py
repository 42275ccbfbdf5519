"""``early_terminate: {type: pbt}`` and ``{type: pb2}`` on Ray Tune: Ray's own
``PopulationBasedTraining`` and ``PB2``, with the study's options, over tuner ids.

The mutations convert to Ray's ``hyperparam_mutations`` by :func:`mutation` (one pure function)
and, for PB2, to ``hyperparam_bounds``. Ray makes every decision (quantiles, donors, explore);
this module adds what the engine guarantees on the other backends:

- each member keeps its own tuner id and seed through an exploit (Ray's new configuration is a
  copy of the donor's, :data:`RESERVED` included);
- a perturbed or resampled value stays within its mutation's range (Ray multiplies without a
  bound);
- the member goes on from its own copy of the donor's checkpoint (``<member>/from-<donor>/...``
  beside Tune's own folders; for a group trial, in the study's store), so the donor pruning its
  checkpoints never takes the member's away;
- each exploit is one ``exploit`` event in the journal (member, donor, steps, old and new
  values, the copy), so ``history.parquet`` and ``best.yaml``'s schedule read as the engine's;
- at most ``slots`` members run at a time (``max_concurrent``): the others wait paused, so Ray's
  PBT pauses a member at its boundary and the waiting ones take turns;
- a member brought back by ``Tuner.restore`` (which restores no scheduler state) is ranked again
  at once, by the result its checkpoint was saved with, and can be copied from that checkpoint.
"""

from __future__ import annotations

import copy
import logging
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ray.tune import Checkpoint
from ray.tune.experiment import Trial
from ray.tune.schedulers import PopulationBasedTraining
from ray.tune.schedulers.pb2 import PB2

from tuner.backends.ray.tune._callback import LIVE, ours
from tuner.backends.ray.tune._trainable import POINTER, RESERVED
from tuner.config import Pb2, Pbt, Study
from tuner.results import read_journal
from tuner.space import Beta, Categorical, Constant, Float, Int, Normal, Parameter, nest

_MISSING = object()
logger = logging.getLogger(__name__)


def mutation(param: Parameter) -> Any:
    """One mutation as Ray's PBT takes it: a Tune domain it resamples from (and multiplies a
    value of by a perturbation factor), or a list of values it moves along (categorical).

    ``Float(a, b)``: ``tune.uniform(a, b)`` (``loguniform`` with ``log``, ``q`` forms with ``q``);
    ``Int(a, b)``: ``tune.randint(a, b + 1)`` (Tune's upper bound is exclusive; ``lograndint``
    with ``log``); ``Normal(mu, sigma)``: ``tune.randn`` (``qrandn`` with ``q``);
    ``Categorical``: its values as a list (Ray then shifts to a neighbouring value, or resamples);
    any other: a function drawing from our own parameter."""
    from ray import tune

    if isinstance(param, Categorical):
        return list(param.values)
    if isinstance(param, Float) and param.integer and param.q is not None:
        low, high, q = int(param.low), int(param.high), int(param.q)
        if q == 1:  # Tune's upper bound is then exclusive
            return (tune.lograndint if param.log else tune.randint)(low, high + 1)
        return (tune.qlograndint if param.log else tune.qrandint)(low, high, q)
    if isinstance(param, Float):
        if param.q is not None:
            return (tune.qloguniform if param.log else tune.quniform)(param.low, param.high, param.q)
        return (tune.loguniform if param.log else tune.uniform)(param.low, param.high)
    if isinstance(param, Int):
        return (tune.lograndint if param.log else tune.randint)(param.low, param.high + 1)
    if isinstance(param, Normal) and not param.log:
        return tune.randn(param.mu, param.sigma) if param.q is None else tune.qrandn(param.mu, param.sigma, param.q)
    if isinstance(param, Constant):
        raise ValueError("a constant cannot mutate")
    assert isinstance(param, Normal | Beta)
    return Draw(param)


class Draw:
    """A value of one of our parameters, drawn afresh (what Ray calls when it resamples)."""

    def __init__(self, param: Parameter) -> None:
        self.param = param

    def __call__(self) -> Any:
        import numpy as np

        return self.param.sample(np.random.default_rng())


def bounded(param: Parameter, value: Any) -> Any:
    """A perturbed value brought back within its parameter's range (and onto its grid)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if isinstance(param, Float | Int):
        return param.decode(value)
    if isinstance(param, Normal) and param.q is not None:
        return round(value / param.q) * param.q
    return value


def population_scheduler(
    study: Study, spec: Pbt | Pb2, time_attr: str, key: str, slots: int | None = None
) -> PopulationBasedTraining:
    """Ray's PBT (or PB2) configured as ``spec`` asks, its mutations nested as the config is;
    ``slots``: the most members running at a time."""
    mutations = spec.mutable(study.space)
    paths = {name: study.space.paths.get(name) or tuple(name.split(".")) for name in mutations}
    options: dict[str, Any] = {
        "time_attr": time_attr,
        "metric": study.metric,
        "mode": "max" if study.maximize else "min",
        "perturbation_interval": spec.perturbation_interval,
        "quantile_fraction": spec.quantile_fraction,
        "log_config": False,  # the journal has every exploit
        "slots": slots,
    }
    if isinstance(spec, Pb2):
        bounds = {name: [p.low, p.high] for name, p in mutations.items() if isinstance(p, Float | Int)}
        return TunePb2(key=key, mutations=mutations, paths=paths, hyperparam_bounds=nest(bounds, paths), **options)
    return TunePbt(
        key=key,
        mutations=mutations,
        paths=paths,
        hyperparam_mutations=nest({name: mutation(p) for name, p in mutations.items()}, paths),
        resample_probability=spec.resample_probability,
        perturbation_factors=spec.perturbation_factors,
        **options,
    )


class _Unsearched:
    """The controller as Ray's PBT sees it when a trial is added: without a searcher. Ray refuses
    a searcher beside PBT because it would be told results of configurations PBT changed; the
    study's searcher only draws the initial population."""

    search_alg = None

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _Population:
    """What :class:`TunePbt` and :class:`TunePb2` add to Ray's classes (a mixin before them)."""

    key: str
    mutations: dict[str, Parameter]
    paths: dict[str, tuple[str, ...]]  # where each mutation sits in the nested config
    _time_attr: str
    _trial_state: dict[Any, Any]

    _metric: Any
    _metric_op: Any
    _perturbation_interval: Any

    def __init__(
        self,
        *,
        key: str,
        mutations: Mapping[str, Parameter],
        paths: dict[str, tuple[str, ...]],
        slots: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.key, self.mutations, self.paths, self.slots = key, dict(mutations), paths, slots
        self._journal: list[dict[str, Any]] | None = None  # read once, by the first member a restore brings back

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        with warnings.catch_warnings():  # each member copies the donor's checkpoint: none is lost to num_to_keep
            warnings.filterwarnings("ignore", message=".*num_to_keep.*")
            super().on_trial_add(_Unsearched(tune_controller), trial)  # type: ignore[misc]
        self._restored(trial)
        others = [t for t in tune_controller.get_trials() if t is not trial]
        if trial.status == Trial.PENDING and not self._room(others):
            trial.set_status(Trial.PAUSED)  # it waits its turn: Ray's PBT then pauses members at their boundaries

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        if not self._room(tune_controller.get_trials()):
            return None
        return super().choose_trial_to_run(tune_controller)  # type: ignore[misc]

    def _room(self, trials: list[Any]) -> bool:
        """Whether one more member may run (``slots`` bounds those running or about to)."""
        busy = sum(1 for t in trials if t.status in (Trial.RUNNING, Trial.PENDING))
        return self.slots is None or busy < self.slots

    def _restored(self, trial: Any) -> None:
        """A member ``Tuner.restore`` brought back: ranked by the result its checkpoint was saved
        with, a donor of that checkpoint, its next boundary an interval after it (Ray's PBT keeps
        no state across a restore and would start it afresh, unranked until its next boundary)."""
        live = LIVE.get(self.key)
        if live is None:
            return
        rec = live.recorder.trials.get(ours(trial))
        latest = trial.run_metadata.checkpoint_manager.latest_checkpoint_result
        if rec is None or not rec.iterations or latest is None or latest.checkpoint is None:
            return
        if self._journal is None:
            self._journal = read_journal(Path(self.key))
        events = self._journal
        pending = pending_exploit(events, rec.trial_id, latest.checkpoint.path)
        if pending is not None:  # journaled, but the driver died before Tune saved it: carried out now
            latest = self._carry_out(trial, pending, _reported(events, pending["donor"], pending["donor_step"]))
        metrics = dict(latest.metrics or {})
        at = metrics.get(self._time_attr, metrics.get("step"))
        value = metrics.get(self._metric)
        if at is None or value is None:
            return
        changed = live.recorder.schedules.get(rec.trial_id) or [(0, {})]
        steps = [h["step"] for h in live.recorder.history if h["trial_id"] == rec.trial_id]
        state = self._trial_state[trial]
        state.last_result, state.last_checkpoint = metrics, latest.checkpoint
        state.last_score = self._metric_op * float(value)
        state.last_train_time = at
        state.last_perturbation_time = last_boundary(steps, changed[-1][0], at, self._perturbation_interval)

    def _carry_out(self, trial: Any, exploit: dict[str, Any], metrics: dict[str, Any]) -> Any:
        """The member's Tune state as a journaled exploit left it: its new values, and its copy of
        the donor's checkpoint as the one it goes on from."""
        from ray.train._internal.session import _TrainingResult

        config = copy.deepcopy(trial.config)
        for name, value in exploit["new"].items():
            *parents, leaf = self.paths.get(name, (name,))
            node = config
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        trial.set_config(config)
        at = exploit["donor_step"]
        result = _TrainingResult(
            checkpoint=Checkpoint.from_directory(exploit["copy"]), metrics={**metrics, "step": at, self._time_attr: at}
        )
        trial.run_metadata.checkpoint_manager._latest_checkpoint_result = result
        trial.run_metadata.invalidate_cache()
        return result

    def _get_new_config(self, trial: Any, trial_to_clone: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        new, operations = super()._get_new_config(trial, trial_to_clone)  # type: ignore[misc]
        for name, param in self.mutations.items():
            *parents, leaf = self.paths[name]
            node = new
            for part in parents:
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, dict) and leaf in node:
                node[leaf] = bounded(param, node[leaf])
        return {**new, RESERVED: trial.config[RESERVED]}, operations  # the member stays itself

    def _exploit(self, tune_controller: Any, trial: Any, trial_to_clone: Any) -> None:
        """Ray's exploit, from the member's own copy of the donor's checkpoint; a checkpoint that
        cannot be copied (Tune deleted it: ``checkpoints.keep``) leaves the member as it was."""
        from ray.train._internal.session import _TrainingResult

        member, donor, live = ours(trial), ours(trial_to_clone), LIVE[self.key]
        taken = self._trial_state[trial_to_clone].last_checkpoint  # resolved by Ray before this call
        metrics = _reported_with(trial_to_clone, taken) or dict(self._trial_state[trial_to_clone].last_result or {})
        found = metrics.get("step", metrics.get(self._time_attr))
        donor_step = float(found) if found is not None else 0.0
        try:
            own = _own_copy(taken, member, donor, donor_step, live.store)
        except OSError as exc:
            logger.warning("%s: cannot copy %s's checkpoint (%s); it goes on as it was", member, donor, exc)
            return
        step = self._trial_state[trial].last_train_time
        old = _values(trial.config, self.paths)
        super()._exploit(tune_controller, trial, trial_to_clone)  # type: ignore[misc]
        # the member restores the copy, and its results are rewound to the copy's step
        trial.run_metadata.checkpoint_manager._latest_checkpoint_result = _TrainingResult(
            checkpoint=own, metrics=metrics
        )
        trial.run_metadata.invalidate_cache()  # else Tune saves the member's state without its new checkpoint
        live.checkpoints[member] = own.path
        event = {"trial": member, "donor": donor, "step": step, "donor_step": donor_step, "path": taken.path}
        new = _values(trial.config, self.paths)
        live.recorder.exploit({**event, "old": old, "new": new, "copy": own.path})


class TunePbt(_Population, PopulationBasedTraining):
    """Ray's ``PopulationBasedTraining`` over tuner ids, recording each exploit."""


class TunePb2(_Population, PB2):
    """Ray's ``PB2`` over tuner ids, recording each exploit."""


def last_boundary(steps: list[float], since: float, until: float, interval: float) -> float:
    """The step of a member's last perturbation boundary up to ``until``, as Ray's PBT counts them
    (the first report at least ``interval`` steps after the last one), from ``since`` (its last
    exploit's step, or 0) over the steps it reported."""
    last = since
    for step in sorted(s for s in steps if since < s <= until):
        if step - last >= interval:
            last = step
    return last


def pending_exploit(events: list[dict[str, Any]], member: str, latest: str) -> dict[str, Any] | None:
    """The member's last journaled exploit when Tune's state does not have it: no checkpoint of the
    member's was journaled after it, yet the checkpoint Tune would restore is not its copy."""
    found: dict[str, Any] | None = None
    for ev in events:
        if ev.get("trial") != member:
            continue
        if ev.get("e") == "exploit":
            found = ev if ev.get("copy") else None
        elif ev.get("e") == "ckpt" or (ev.get("e") == "retry" and found is not None):
            found = None  # it went on after the exploit: Tune had it
    if found is None or Path(found["copy"]) == Path(latest) or not Path(found["copy"]).exists():
        return None
    return found


def _reported(events: list[dict[str, Any]], trial: str, step: float) -> dict[str, Any]:
    """What ``trial`` reported at ``step``, as the journal has it."""
    for ev in reversed(events):
        if ev.get("e") == "report" and ev.get("trial") == trial and ev.get("step") == step:
            return dict(ev.get("metrics") or {})
    return {}


def _values(config: Mapping[str, Any], paths: Mapping[str, tuple[str, ...]]) -> dict[str, Any]:
    """The mutations' values in a nested config, by their flat names."""
    out = {}
    for name, path in paths.items():
        node: Any = config
        for part in path:
            node = node.get(part, _MISSING) if isinstance(node, Mapping) else _MISSING
        if node is not _MISSING:
            out[name] = node
    return out


def _reported_with(donor: Any, checkpoint: Any) -> dict[str, Any]:
    """The result the donor reported ``checkpoint`` with (Ray's PBT hands on the donor's last
    result, which may be later than a checkpoint saved before a pause); empty when not found."""
    manager = donor.run_metadata.checkpoint_manager
    for result in [*manager._checkpoint_results, manager.latest_checkpoint_result]:
        if result is not None and result.checkpoint is not None and result.checkpoint.path == checkpoint.path:
            return dict(result.metrics or {})
    return {}


def _own_copy(checkpoint: Any, member: str, donor: str, step: float, store: str | None) -> Any:
    """The member's own copy of the donor's Tune checkpoint: beside the member's Tune folder, or
    (a group trial's, which points into the study's store) a copy in the store and a pointer to it."""
    name = f"checkpoint_{int(step):06d}"
    folder = Path(checkpoint.path).parent.parent / member / f"from-{donor}" / name
    if folder.exists():
        shutil.rmtree(folder)
    with tempfile.TemporaryDirectory(prefix="tuner-pbt-") as local:
        checkpoint.to_directory(local)
        pointer = Path(local) / POINTER
        if pointer.exists() and store is not None:
            from tuner.storage import CheckpointStore

            pointer.write_text(CheckpointStore(store).copy(pointer.read_text().strip(), member, step))
        shutil.copytree(local, folder)
    return Checkpoint.from_directory(str(folder))
