"""The Python entry points behind ``python -m tuner run`` and ``resume``."""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.config import Study, load_study
from tuner.errors import StudyFailed, UserError
from tuner.results import (
    HANDED,
    NO_METRIC,
    STUDY,
    alive,
    handed_names,
    new_study_dir,
    read_journal,
    read_state,
    read_study,
    unfinished_run,
)
from tuner.status import FINISHED

if TYPE_CHECKING:
    from tuner.engine import Outcomes

BUDGET = ("run_cap", "time_limit", "max_concurrent", "stall_timeout")  # what a resume may change
# What a final run (train, confirm) leaves out of the search it comes from: it runs its configurations once.
_UNSEARCHED: dict[str, Any] = dict.fromkeys(
    ("early_terminate", "run_cap", "time_limit", "searcher", "warm_start", "points_to_evaluate")
)


def _printer(quiet: bool) -> Callable[[str], None]:
    def say(msg: str) -> None:
        if not quiet:
            print(msg, file=sys.stderr, flush=True)

    return say


def run(
    study: str | os.PathLike[str] | Study,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    dashboard: bool | None = None,
    seed: int | None = None,
    quiet: bool = False,
    say: Callable[[str], None] | None = None,
) -> Outcomes:
    """Run a study (a YAML path or a loaded :class:`Study`) and return its outcomes.

    Joins the Ray at ``address`` (or ``RAY_ADDRESS``), else starts an embedded one and shuts
    it down at the end. Refuses to start while an unfinished run of the same name exists.
    """
    say = say or _printer(quiet)
    if not isinstance(study, Study):
        study = load_study(study)
    storage = Path(study.spec.storage).resolve()
    left = unfinished_run(storage, study.name)
    if left is not None:
        raise UserError(f"{left[1]}; continue it with: python -m tuner resume {left[0]} (or give another --name)")
    for notice in study.notices:
        say(notice)
    if "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ and storage.is_relative_to(Path.cwd()):
        say(  # a Ray job runs in a copy of its working dir that Ray deletes when the job ends
            f"note: results go to {storage}, inside this Ray job's working dir, which Ray deletes when the "
            "job ends; pass --storage with a path that outlives it (a shared volume, an absolute path)"
        )
    if seed is None:
        seed = study.spec.seed if study.spec.seed is not None else random.SystemRandom().randrange(2**31)
    return _execute(study, seed, lambda: new_study_dir(storage, study.name), say, quiet, address, num_cpus, dashboard)


def resume(
    folder: str | os.PathLike[str],
    *,
    space: str | os.PathLike[str] | None = None,
    trainable: str | None = None,
    force: bool = False,
    allow_modules: Sequence[str] = (),
    address: str | None = None,
    num_cpus: int | None = None,
    dashboard: bool | None = None,
    quiet: bool = False,
    say: Callable[[str], None] | None = None,
) -> Outcomes:
    """Continue an interrupted run: finished trials stay, unfinished ones continue from their
    last checkpoint, and the searcher and ASHA's rungs are restored by replaying the journal.

    ``space`` may change the budget (run_cap, time_limit, max_concurrent); any other change
    is refused unless ``force``. Where the run took its trainable, name and storage from the
    command line, the file is read with them too (``trainable`` overrides the trainable).
    """
    say = say or _printer(quiet)
    path = Path(folder).resolve()
    state = read_state(path) or {}
    if state.get("state") == "running" and alive(state) and not force:
        raise UserError(f"{folder} is being run now (pid {state.get('pid')}); pass --force if it is not")
    _handed_back(path, trainable)
    study = read_study(path, trainable=trainable, allow_modules=allow_modules)
    seed = study.spec.seed
    assert seed is not None  # the run records the seed it drew
    if space is not None:  # new input from the user: validated as any study file
        new = load_study(
            space,
            name=study.name,
            trainable=trainable or _unless_given(space, "trainable", study.raw.get("trainable")),
            storage=_unless_given(space, "storage", study.raw.get("storage")),
            allow_modules=allow_modules,
        )
        changed = _changes(study.raw, new.raw)
        if changed and not force:
            raise UserError(
                f"{space}: differs from the run in {', '.join(changed)}; a resume may change only "
                f"{', '.join(BUDGET)} (pass --force to resume anyway)"
            )
        study = new
    journal = read_journal(path)
    elapsed = float(state.get("elapsed_s", 0.0))
    return _execute(study, seed, lambda: path, say, quiet, address, num_cpus, dashboard, journal, elapsed)


def _handed_back(folder: Path, trainable: str | None) -> None:
    """A run whose trainable (or stopper) a Python script handed over continues only where that
    object is given again: ``Tuner.restore`` in Python, not the command line."""
    from tuner.config import by_value, read_yaml

    if not (folder / HANDED).is_file():
        return
    raw = read_yaml(folder / STUDY)  # its names, not the pickled objects: nothing of the folder runs here
    names = [n for n in handed_names(raw) if isinstance(n, str) and not by_value.given(n)]
    if names and trainable is None:
        raise UserError(
            f"{folder}: {', '.join(names)} was handed over by a Python script (tuner.integrations.ray_tune.Tuner); "
            "continue it from Python with Tuner.restore(path, trainable=...)"
        )


def _unless_given(space: str | os.PathLike[str], key: str, value: Any) -> Any:
    """``value`` where the study file leaves ``key`` out (it came from the command line)."""
    from tuner.config import read_yaml

    return value if key not in read_yaml(Path(space)) else None


def _changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    ignore = {*BUDGET, "name", "seed"}
    keys = (set(old) | set(new)) - ignore
    return sorted(k for k in keys if old.get(k) != new.get(k))


def _execute(
    study: Study,
    seed: int,
    folder_for: Callable[[], Path],
    say: Callable[[str], None],
    quiet: bool,
    address: str | None,
    num_cpus: int | None,
    dashboard: bool | None,
    journal: list[dict[str, Any]] | None = None,
    elapsed: float = 0.0,
    trial_seed: int | None = None,
    max_steps: int | None = None,
    schedule: dict[str, list[list[Any]]] | None = None,
) -> Outcomes:
    from tuner.backends import run as run_on

    return run_on(
        study,
        seed,
        folder_for,
        say,
        address=address,
        num_cpus=num_cpus,
        dashboard=dashboard,
        quiet=quiet,
        journal=journal,
        elapsed=elapsed,
        trial_seed=trial_seed,
        max_steps=max_steps,
        **({"schedule": schedule} if schedule else {}),
    )


def _with(config: dict[str, Any], name: str, value: Any) -> dict[str, Any]:
    """``config`` with the value at the dotted ``name`` replaced."""
    head, _, rest = name.partition(".")
    if not rest:
        return {**config, head: value}
    return {**config, head: _with(dict(config.get(head) or {}), rest, value)}


def train(
    study: str | os.PathLike[str] | Study,
    config: dict[str, Any],
    *,
    out: str | os.PathLike[str],
    epochs: int | None = None,
    seed: int | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
    dashboard: bool | None = None,
    quiet: bool = False,
    say: Callable[[str], None] | None = None,
    schedule: dict[str, list[list[Any]]] | None = None,
) -> dict[str, Any]:
    """Train once with ``config`` at the full budget (DDP if the study asks for workers), outside
    any search; the final ``state_dict`` and metrics go to ``out`` (``model.pt``, ``metrics.yaml``).

    ``schedule`` (``best.yaml``'s, from population-based training): each parameter's values over
    the steps, ``{lr: [[0, 0.01], [10, 0.005]]}``; the trial starts with the first values and at
    each later step named goes on from its own checkpoint there with the values given.
    """
    import torch

    from tuner.results import write_yaml

    say = say or _printer(quiet)
    if not isinstance(study, Study):
        study = load_study(study)
    config = dict(config)
    scheduler = study.spec.scheduler
    max_steps = getattr(scheduler, "max_t", None)  # the full budget of the search (asha's, a population's)
    for name, points in (schedule or {}).items():
        config = _with(config, name, points[0][1])
    if epochs is not None:
        config["epochs"] = max_steps = epochs
    final = study.derive(
        name="final",
        method="grid",
        parameters=_constants(config),
        max_concurrent=1,
        final=True,
        **_UNSEARCHED,
        # Ray Tune has no schedule to replay: the engine replays it
        **({"backend": "ray"} if schedule and study.spec.backend == "tune" else {}),
    )
    folder = Path(out).resolve()
    outcome = _execute(
        final,
        0,
        lambda: new_study_dir(folder.parent, folder.name),
        say,
        quiet,
        address,
        num_cpus,
        dashboard,
        trial_seed=seed,
        max_steps=max_steps,
        schedule=schedule,
    )
    rec = outcome.best
    if rec is None or rec.status != FINISHED:
        failed = outcome.failures[0].error if outcome.failures else "it did not finish"
        raise StudyFailed(f"training failed: {failed} (logs in {outcome.folder}/logs)")
    result: dict[str, Any] = {
        "metrics": rec.metrics,
        "step": rec.step,
        "seed": rec.seed,
        "config": rec.config,
        "folder": str(outcome.folder),
        "model": None,
    }
    from tuner.storage import CheckpointStore

    if outcome.checkpoint is not None and CheckpointStore.is_directory(outcome.checkpoint):
        # a Ray Tune-style trainable's checkpoint: its directory, as the trainable wrote it
        store = CheckpointStore(outcome.checkpoint_location)
        result["checkpoint"] = store.download(outcome.checkpoint, str(outcome.folder / "checkpoint"))
    elif outcome.checkpoint is not None and not outcome.checkpoint.startswith("sim://"):  # simulated: no files
        state = CheckpointStore(outcome.checkpoint_location).load(outcome.checkpoint)[1]
        if isinstance(state, dict) and "sharded" in state:  # FSDP's shards: joined here, in one process
            state = _join_shards(state["sharded"], outcome.folder / "model.full.pt")
        model = state.get("model", state) if isinstance(state, dict) else state
        torch.save(model, outcome.folder / "model.pt")
        result["model"] = str(outcome.folder / "model.pt")
    write_yaml(outcome.folder / "metrics.yaml", result)
    return result


def _join_shards(folder: str, scratch: Path) -> dict[str, Any]:
    """A sharded checkpoint (torch.distributed.checkpoint) as one full state, without a process group."""
    import torch
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    dcp_to_torch_save(folder, scratch)
    try:
        state: dict[str, Any] = torch.load(scratch, weights_only=False, map_location="cpu")
    finally:
        scratch.unlink(missing_ok=True)
    return state


def _constants(config: dict[str, Any]) -> dict[str, Any]:
    """A ``parameters`` block that fixes every value of ``config`` (nested blocks stay nested)."""
    return {k: {"parameters": _constants(v)} if isinstance(v, dict) and v else {"value": v} for k, v in config.items()}


def confirm(
    folder: str | os.PathLike[str],
    *,
    top: int = 3,
    seeds: int = 3,
    address: str | None = None,
    num_cpus: int | None = None,
    dashboard: bool | None = None,
    quiet: bool = False,
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train the study's ``top`` trials again at the full budget with ``seeds`` fresh seeds each,
    through the same engine and in parallel (a study of its own in ``<folder>/confirm``, its
    trials final runs: ``trial.final`` is true); returns each configuration's mean and spread
    and the winner, also written to ``confirm.yaml`` and to ``best.yaml``'s ``confirmed``.

    With several objectives the top trials are the Pareto-optimal ones (the one ``select`` picks
    first), every objective is averaged, and the winner is ``select``'s pick among the
    configurations whose means are Pareto-optimal."""
    from tuner.config import Asha
    from tuner.results import candidates, load_results, row_params, summarise

    say = say or _printer(quiet)
    path = Path(folder).resolve()
    study = read_study(path)
    if study.metric is None:
        raise UserError(f"{folder}: confirm compares trials on the study's metric; {NO_METRIC}")
    trials = load_results(path)
    best = candidates(trials, study.objectives, study.spec.select).head(top)
    if best.empty:
        raise UserError(f"{folder}: no trial with a value to confirm")
    searched = list(study.space.searchable)
    chosen: list[dict[str, Any]] = [
        {
            "trial_id": str(row["trial_id"]),
            "params": {k: v for k, v in row_params(row).items() if k in searched},
            "value": float(row["value"]),
        }
        for _, row in best.iterrows()
    ]
    scheduler = study.spec.scheduler
    max_steps = scheduler.max_t if isinstance(scheduler, Asha) else None  # the search's full budget
    points = [dict(c["params"]) for _ in range(seeds) for c in chosen]  # seed by seed: all progress
    # one objective in the run itself (the others are still reported, and averaged), no select
    assert study.spec.primary is not None  # a study with no metric has no candidates
    primary = study.spec.primary.model_copy(update={"target": None})
    changes = {"run_cap": len(chosen) * seeds, "points_to_evaluate": points, "metric": primary, "select": None}
    again = study.derive(**(_UNSEARCHED | changes), name="confirm", method="random", final=True)
    say(f"confirming {len(chosen)} configuration(s) of {study.name} with {seeds} fresh seed(s) each")
    seed = random.SystemRandom().randrange(2**31)
    outcome = _execute(
        again,
        seed,
        lambda: new_study_dir(path, "confirm"),
        say,
        quiet,
        address,
        num_cpus,
        dashboard,
        max_steps=max_steps,
    )
    summary = summarise(path, load_results(outcome.folder), chosen, study.objectives, seeds, study.spec.select)
    summary["folder"] = str(outcome.folder)
    return summary
