"""A whole Ray Tune script on tuner's engine: ``Tuner`` and ``run`` with Ray Tune's signatures.

``Tuner(trainable, param_space=..., tune_config=..., run_config=...).fit()`` reads Tune's
arguments as the study file that says the same (:func:`tuner.backends.ray.tune.study_data`),
runs it as ``tuner.run`` does, and returns the results as :func:`tuner.load` reads them, with a
``ResultGrid``'s names (``get_best_result``, ``get_dataframe``, ``errors``, ``len``, iteration).
The script's own functions are handed over by value, so a trainable defined in ``__main__`` runs
in the workers as it does under Ray Tune. Joins the Ray the script started with ``ray.init``, else
starts an embedded one, as Tune does.

Ray is imported when a ``Tuner`` is made, not with this module.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tuner as _tuner
from tuner.results import HANDED, JOURNAL, STUDY
from tuner.status import FAILED


class Tuner:
    """Ray Tune's ``tune.Tuner``, running the study on tuner's engine (see the module)."""

    def __init__(
        self,
        trainable: Any = None,
        *,
        param_space: Mapping[str, Any] | None = None,
        tune_config: Any = None,
        run_config: Any = None,
        _folder: Path | None = None,
    ) -> None:
        from tuner.backends.ray.tune import study_data

        self._folder = _folder
        self._quiet = getattr(run_config, "verbose", None) == 0
        if _folder is None:
            self._script = study_data(trainable, param_space, tune_config, run_config)

    def fit(self) -> _tuner.Analysis:
        """Run the study (or, after :meth:`restore`, go on with it) and return its results."""
        from tuner.config import load_study

        if self._folder is not None:
            out = _tuner.resume(self._folder, quiet=self._quiet)
        else:
            text = self._script.text()
            study = load_study(text=text, source="Tuner")
            _refuse_over_unfinished(Path(study.spec.storage), study.name)
            if not self._quiet:
                for notice in self._script.notices:
                    print(f"Tuner: {notice}")
            out = _tuner.run(study, quiet=self._quiet)
        self._folder = out.folder
        return _tuner.load(out.folder)

    def get_results(self) -> _tuner.Analysis:
        """The results of the last :meth:`fit` (or of the run :meth:`restore` read)."""
        if self._folder is None:
            raise RuntimeError("get_results: fit() has not run yet")
        return _tuner.load(self._folder)

    @classmethod
    def restore(
        cls,
        path: str | Path,
        trainable: Any,
        resume_unfinished: bool = True,
        resume_errored: bool = False,
        restart_errored: bool = False,
        param_space: Mapping[str, Any] | None = None,
        storage_filesystem: Any = None,
        _resume_config: Any = None,
    ) -> Tuner:
        """Ray's ``Tuner.restore``: the run at ``path`` (its results folder), to continue with
        :meth:`fit`: finished and failed trials stay as they ended, unfinished ones go on from their
        last checkpoint, and the searcher and scheduler are restored from the journal."""
        from tuner.config import by_value, read_yaml
        from tuner.errors import UserError

        folder = Path(path)
        if not cls.can_restore(folder):
            raise UserError(f"Tuner.restore: no tuner run at {str(path)!r} (a results/<name> folder)")
        refused = {
            "resume_unfinished=False": not resume_unfinished,
            "resume_errored=True": resume_errored,
            "restart_errored=True": restart_errored,
            "storage_filesystem": storage_filesystem is not None,
        }
        for what, given in refused.items():
            if given:
                raise UserError(
                    f"Tuner.restore: {what} is not supported: unfinished trials continue from their last "
                    "checkpoint and failed ones stay as they ended (storage is a path)"
                )
        raw = read_yaml(folder / STUDY)
        handed = folder / HANDED
        if handed.is_file():
            import cloudpickle

            for name, blob in pickle.loads(handed.read_bytes()).items():
                if name != raw.get("trainable"):  # the trainable is the one given now, as Ray's restore takes it
                    by_value.keep(name, cloudpickle.loads(blob))
        if isinstance(raw.get("trainable"), str):
            by_value.keep(raw["trainable"], trainable)
        return cls(_folder=folder)

    @classmethod
    def can_restore(cls, path: str | Path, storage_filesystem: Any = None) -> bool:
        """Whether ``path`` holds a tuner run that :meth:`restore` can continue."""
        folder = Path(path)
        return (folder / STUDY).is_file() and (folder / JOURNAL).is_file()


def _refuse_over_unfinished(storage: Path, name: str) -> None:
    """A run of the same name left unfinished (Ctrl-C, a crash) is continued, not started over."""
    from tuner.errors import UserError
    from tuner.results import unfinished_run

    left = unfinished_run(storage, name)
    if left is not None:
        folder, why = left
        raise UserError(
            f"{why}; continue it with Tuner.restore({str(folder)!r}, trainable=...).fit(), or give "
            "RunConfig(name=...) another name"
        )


def run(
    run_or_experiment: Any,
    *,
    config: Mapping[str, Any] | None = None,
    num_samples: int = 1,
    metric: str | None = None,
    mode: str | None = None,
    search_alg: Any = None,
    scheduler: Any = None,
    stop: Any = None,
    resources_per_trial: Any = None,
    max_failures: int = 0,
    fail_fast: bool = False,
    name: str | None = None,
    storage_path: str | None = None,
    local_dir: str | None = None,
    time_budget_s: Any = None,
    max_concurrent_trials: int | None = None,
    keep_checkpoints_num: int | None = None,
    checkpoint_config: Any = None,
    callbacks: Any = None,
    verbose: Any = None,
    raise_on_failed_trial: bool = True,
    **ignored: Any,
) -> _tuner.Analysis:
    """Ray Tune's ``tune.run`` on tuner's engine: the same study as a :class:`Tuner` with these
    arguments; returns the results with ``ExperimentAnalysis``'s names (``best_config``,
    ``get_best_trial``, ``dataframe()``, ``trial_dataframes``). A failed trial raises
    ``ray.tune.TuneError`` after the run when ``raise_on_failed_trial``, as ``tune.run`` does.
    ``resume="AUTO"`` (or ``True``) continues the run of the same name where there is one (a
    finished one gives its results again), else starts it."""
    from ray import tune
    from ray.tune.error import TuneError

    from tuner.errors import UserError

    resume = ignored.get("resume")
    if ignored.get("restore"):
        raise UserError(f"tune.run: restore={ignored['restore']!r} is not supported; continue a run with Tuner.restore")
    if resume not in (None, False, True, "AUTO", "LOCAL", "REMOTE", "PROMPT"):
        raise UserError(f"tune.run: resume={resume!r} is not supported; continue a run with Tuner.restore")
    unused = sorted(k for k, v in ignored.items() if v not in (None, False, 0, "") and k not in ("resume", "restore"))
    if unused and verbose != 0:
        print(f"tune.run: not used by tuner: {', '.join(unused)}")
    trainable = run_or_experiment
    if resources_per_trial is not None:
        trainable = tune.with_resources(trainable, resources_per_trial)
    if keep_checkpoints_num and checkpoint_config is None:
        checkpoint_config = tune.CheckpointConfig(num_to_keep=keep_checkpoints_num)
    tune_config = tune.TuneConfig(
        metric=metric,
        mode=mode,
        search_alg=search_alg,
        scheduler=scheduler,
        num_samples=num_samples,
        max_concurrent_trials=max_concurrent_trials,
        time_budget_s=time_budget_s,
    )
    run_config = tune.RunConfig(
        name=name,
        storage_path=storage_path or local_dir,
        stop=stop,
        failure_config=tune.FailureConfig(max_failures=max_failures, fail_fast=fail_fast),
        checkpoint_config=checkpoint_config,
        callbacks=callbacks,
        verbose=verbose,
    )
    made = Tuner(trainable, param_space=config, tune_config=tune_config, run_config=run_config)
    if resume:  # "AUTO" and the like, as Tune: the run of this name goes on where it is, else a new one starts
        folder = Path(made._script.data["storage"]) / made._script.data["name"]
        if Tuner.can_restore(folder):
            made = Tuner.restore(folder, trainable=trainable)
    results = made.fit()
    failed = [t.trial_id for t in results.trials if t.status in FAILED or t.status == "ERROR"]
    if failed and raise_on_failed_trial:
        raise TuneError(f"Trials did not complete: {', '.join(failed)}")
    return results


def run_script(path: str, argv: list[str]) -> None:
    """Run the Ray Tune script at ``path`` unchanged (``argv`` its arguments), its ``tune.Tuner``
    and ``tune.run`` being :class:`Tuner` and :func:`run` while it runs: ``python -m tuner run
    script.py [args...]``."""
    import runpy
    import sys

    import ray.tune
    import ray.tune.tune
    import ray.tune.tuner

    swapped = {
        (ray.tune, "Tuner"): Tuner,
        (ray.tune.tuner, "Tuner"): Tuner,
        (ray.tune, "run"): run,
        (ray.tune.tune, "run"): run,
        (ray.tune, "ExperimentAnalysis"): _tuner.load,  # ExperimentAnalysis(path, default_metric, default_mode)
    }
    kept = {target: getattr(*target) for target in swapped}
    old_argv, old_path = sys.argv, list(sys.path)
    sys.argv = [path, *argv]
    sys.path.insert(0, str(Path(path).resolve().parent))
    try:
        for (module, name), value in swapped.items():
            setattr(module, name, value)
        runpy.run_path(path, run_name="__main__")
    finally:
        for (module, name), value in kept.items():
            setattr(module, name, value)
        sys.argv, sys.path[:] = old_argv, old_path
