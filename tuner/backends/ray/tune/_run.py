"""A study run by Ray Tune's ``Tuner``: the study's searcher as a Tune searcher, its scheduler as
Ray's own, ``workers: N`` as a ``TorchTrainer`` inside each trial, and the same results folder
the engine writes (journal, ``trials.parquet``, ``history.parquet``, ``best.yaml``)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuner.backends.ray import _by_value, capacity, connect, path_entries
from tuner.backends.ray.tune._callback import LIVE, Judge, Recording, TuneStudy, make_scheduler
from tuner.backends.ray.tune._study_searcher import StudySearcher
from tuner.backends.ray.tune._trainable import POINTER, RESERVED, STATE, Job, trainable_for
from tuner.config import Pb2, Pbt, Stopping, Study, import_trainable, trainable_style
from tuner.engine import Outcomes, slots_for
from tuner.results import FAILED, NO_METRIC, SUMMARY, Recorder, TrialRecord, write_state, write_yaml
from tuner.space import Space
from tuner.tracking import open_tracking

EXPERIMENT = "tune"  # the Tune experiment's folder, inside the study's results folder


def run_on_tune(
    study: Study,
    seed: int,
    folder_for: Callable[[], Path],
    say: Callable[[str], None],
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    dashboard: bool | None = None,
    quiet: bool = False,
    journal: list[dict[str, Any]] | None = None,
    elapsed: float = 0.0,
    trial_seed: int | None = None,
    max_steps: int | None = None,
) -> Outcomes:
    """Run ``study`` through ``tune.Tuner`` into ``folder_for()``; with ``journal``, continue it
    through ``Tuner.restore``."""
    spec, res = study.spec, study.spec.resources
    conn = connect(address, ship=study.modules, num_cpus=num_cpus, dashboard=dashboard)
    published: list[bytes] = []
    try:
        published = _by_value.publish([study.trainable, spec.stopper])
        slots = slots_for(study, capacity(res.cpu, res.gpu))  # before any file is written
        folder = folder_for()
        key = str(folder)
        recorder = Recorder(folder, study.metric, study.maximize, tracking=open_tracking(study, folder, seed, say))
        population = spec.scheduler if isinstance(spec.scheduler, Pbt | Pb2) else None
        if population is not None:  # each report records the values it trained with
            recorder.mutable = list(population.mutable(study.space))
        if journal is None:
            recorder.save_study({**study.raw, "name": study.title, "seed": seed})
        else:
            reload(recorder, journal, study.space)
        style = trainable_style(import_trainable(study.trainable), spec.trainable_api)
        time_attr = "step" if style == "tuner" else "training_iteration"
        budget = max_steps if max_steps is not None else spec.step_budget  # max_t, or stop.training_iteration
        live = LIVE[key] = TuneStudy(study, recorder, max_steps=budget, time_attr=time_attr, say=say)
        live.stopper = None if spec.stopper is None else Stopping(spec.stopper)  # Tuner.restore: imported afresh
        if spec.time_limit is not None:  # the time left, counted here: Tune would restore the first budget
            live.deadline = time.monotonic() + max(spec.time_limit - elapsed, 1.0)
        job = Job(
            trainable=study.trainable,
            api=style,
            study=study.name,
            entries=tuple(path_entries()),
            max_steps=budget,
            gpus=res.gpu,
            final=spec.final,
            strategy=res.strategy_options() if res.workers > 1 else None,
            store=spec.checkpoints.path or str(folder / "checkpoints"),
        )
        live.store = job.store
        trainable = trainable_for(job, res.workers, res.cpu, res.gpu)
        os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "0")  # Tune's state saved at every step: a kill loses little
        tuner = _tuner(study, seed, folder, trainable, slots, time_attr, trial_seed, quiet, journal)
        workers = f"{res.workers} DDP workers" if res.workers > 1 else "1 process"
        shape = f"method {spec.method}, {slots} trial(s) at a time, {workers} each"
        say(f"running {study.name} on Ray Tune: {shape} -> {folder}")
        write_state(folder, "running", elapsed)
        began = time.monotonic()
        chatty = logging.getLogger("ray.tune")
        level = chatty.level
        if quiet:
            chatty.setLevel(logging.WARNING)  # Tune's "View detailed results here" and the like
        try:
            with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
                tuner.fit()  # Tune prints where its results are even at verbose 0
        finally:
            chatty.setLevel(level)
            spent = elapsed + time.monotonic() - began
            interrupted = any(r.status == "running" for r in recorder.trials.values())
            summary = {"elapsed_s": round(spent, 3), "backend": "tune", "stop_reason": live.halt}
            summary |= {"best": NO_METRIC} if study.metric is None else {}
            write_yaml(folder / SUMMARY, summary)
            best = recorder.finish({"study": study.name, "study_seed": seed}, live.checkpoints.get)
            recorder.journal.close()
            write_state(folder, "interrupted" if interrupted else "done", spent)
            LIVE.pop(key, None)
    finally:
        _by_value.withdraw(published)
        if conn.started_here:
            conn.close()
    failures = [r for r in recorder.trials.values() if r.status in FAILED]
    checkpoint = _state_file(live.checkpoints.get(best.trial_id)) if best is not None else None
    location = spec.checkpoints.path or str(folder / "checkpoints")
    return Outcomes(folder, best, recorder.counts(), failures, interrupted, live.halt, summary, checkpoint, location)


def _tuner(
    study: Study,
    seed: int,
    folder: Path,
    trainable: Any,
    slots: int,
    time_attr: str,
    trial_seed: int | None,
    quiet: bool,
    journal: list[dict[str, Any]] | None,
) -> Any:
    from ray import tune

    spec, key = study.spec, str(folder)
    experiment = folder / EXPERIMENT
    if journal is not None and any(experiment.glob("experiment_state-*.json")):
        return tune.Tuner.restore(str(experiment), trainable=trainable, resume_unfinished=True)
    if experiment.exists():  # killed before Tune saved any state: nothing of Tune's to restore
        shutil.rmtree(experiment)
    searcher = StudySearcher(study, seed, key, time_attr, trial_seed)
    # a population is added whole (Tune's max_concurrent_trials would hold members back until others
    # end): its scheduler runs `slots` members at a time, pausing one at a boundary while another waits
    population = isinstance(spec.scheduler, Pbt | Pb2)
    return tune.Tuner(
        trainable,
        param_space={},
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            # (without a run_cap Tune would add paused members without end: the cluster bounds them)
            scheduler=make_scheduler(study, time_attr, key, slots if spec.run_cap is not None else None),
            num_samples=spec.run_cap or -1,
            max_concurrent_trials=None if population else slots,
            reuse_actors=True,  # a trial costs ~0.5 s of Tune instead of ~2 s
            trial_name_creator=trial_name,
            trial_dirname_creator=trial_name,
        ),
        run_config=tune.RunConfig(
            name=EXPERIMENT,
            storage_path=str(folder),
            callbacks=[Recording(key, time_attr)],
            stop=Judge(key),
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=spec.checkpoints.keep),
            verbose=0 if quiet else 1,
            log_to_file=("stdout.log", "stderr.log"),  # each trial's output, in its folder under tune/
        ),
    )


def trial_name(trial: Any) -> str:
    """A Tune trial's name and folder: its tuner id (``t0001``)."""
    return str(trial.config.get(RESERVED, {}).get("id", trial.trial_id))


def _state_file(checkpoint: str | None) -> str | None:
    """A trial's last checkpoint as ``train`` reads it: the state file inside a tuner trial's Tune
    checkpoint, the path in the store a group trial's points at, or a Ray Tune trainable's directory."""
    if checkpoint is None:
        return None
    for name, found in ((STATE, lambda p: str(p)), (POINTER, lambda p: p.read_text().strip())):
        path = Path(checkpoint) / name
        if path.exists():
            return found(path)
    return checkpoint


def reload(recorder: Recorder, events: list[dict[str, Any]], space: Space) -> None:
    """The recorder as the journal leaves it: every trial, report, retry and end, nothing rewritten."""
    recorder.replaying = True
    try:
        for ev in events:
            kind, trial_id = ev.get("e"), ev.get("trial", "")
            if kind == "start":
                params = ev["params"]
                recorder.start(TrialRecord(trial_id, params, space.nest(params), ev["seed"], started=ev["t"]))
            elif trial_id not in recorder.trials:
                continue
            elif kind == "report":
                recorder.report(trial_id, ev["step"], ev["time"], ev["metrics"])
            elif kind == "retry":
                recorder.rewind(trial_id, ev["step"], ev.get("error"), ev.get("cause"))
                if ev.get("error") != "resumed":
                    recorder.trials[trial_id].attempts += 1
            elif kind == "exploit":
                recorder.exploit(ev)
            elif kind == "end":
                recorder.end(
                    trial_id, ev["status"], ev.get("error"), at=ev.get("t"), cause=ev.get("cause"), hint=ev.get("hint")
                )
    finally:
        recorder.replaying = False
