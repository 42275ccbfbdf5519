"""``tuner.load``: a Ray Tune experiment's best trial is Ray's own answer, scope by scope; a tuner
study's scopes follow its history; ``results``, ``best`` and ``report`` read a Tune folder.

One real ``ray.tune.Tuner`` experiment (ASHA, checkpoints, NaN and infinite values, ties, a metric
some trials never report) runs once on the session's private Ray; ``ray.tune.ExperimentAnalysis``
then answers every question next to ``tuner.load``.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import tuner
from tests.conftest import cli_env, cli_here, study
from tuner.errors import ResultsError
from tuner.results import read_tables
from tuner.results._scopes import SCOPES, metric_analysis
from tuner.results._tune_folder import _results

SHAPES = ["down", "up", "vee", "nan_mid", "inf_early", "flat", "flat", "short"]
METRICS = ["loss", "acc", "nested/a", "never_reported"]


def _trainable() -> Callable[[dict[str, Any]], None]:
    """Defined in a function so that Ray ships it by value to its workers."""

    def train_fn(config: dict[str, Any]) -> None:
        import os
        import tempfile

        from ray import tune

        shape = config["shape"]
        for i in range(1, 4 if shape == "short" else 9):
            loss = {
                "down": 1.0 / i,
                "up": 0.1 * i,
                "vee": abs(i - 3) * 0.2 + 0.05,
                "nan_mid": math.nan if i == 3 else 0.4 / i,
                "inf_early": math.inf if i == 2 else 0.3,
                "flat": 0.3,
                "short": 0.2,
            }[shape]
            metrics: dict[str, Any] = {"loss": loss, "nested": {"a": i * (1 + config["k"])}}
            if shape != "up":  # a metric some trials never report
                metrics["acc"] = 1.0 - loss
            if i % 2 == 0:
                with tempfile.TemporaryDirectory() as d:
                    Path(os.path.join(d, "step.txt")).write_text(str(i))
                    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
            else:
                tune.report(metrics)

    return train_fn


@pytest.fixture(scope="module")
def experiment(ray_local: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    storage = tmp_path_factory.mktemp("tune")
    tuner_ = tune.Tuner(
        _trainable(),
        param_space={"shape": tune.grid_search(SHAPES), "k": 0},
        tune_config=tune.TuneConfig(
            metric="loss",
            mode="min",
            scheduler=ASHAScheduler(max_t=8, grace_period=2, reduction_factor=2),
            max_concurrent_trials=1,  # one at a time: ASHA decides the same way every run
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name="exp",
            storage_path=str(storage),
            verbose=0,
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=2, checkpoint_score_attribute="loss", checkpoint_score_order="min"
            ),
        ),
    )
    tuner_.fit()
    return storage / "exp"


@pytest.fixture(scope="module")
def theirs(experiment: Path) -> Any:
    """Ray's analysis with the experiment's metric and mode, as ``ResultGrid`` makes it."""
    from ray.tune import ExperimentAnalysis

    return ExperimentAnalysis(str(experiment), default_metric="loss", default_mode="min")


@pytest.fixture(scope="module")
def ours(experiment: Path) -> tuner.Analysis:
    return tuner.load(experiment)


def _same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN (results hold NaN and infinity)."""
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _assert_same_trial(mine: tuner.TrialResult | None, ray_trial: Any) -> None:
    if ray_trial is None:
        assert mine is None
        return
    assert mine is not None
    assert mine.trial_id == ray_trial.trial_id
    assert mine.config == ray_trial.config
    assert _same(mine.metrics, ray_trial.last_result)
    assert mine.status == ray_trial.status
    assert mine.path == ray_trial.path


# -- a Ray Tune experiment: Ray's answers --------------------------------------------------------


@pytest.mark.slow
def test_the_experiment_has_what_the_comparison_needs(ours: tuner.Analysis) -> None:
    steps = {t.trial_id: t.metrics["training_iteration"] for t in ours.trials}
    assert len(ours.trials) == len(SHAPES) and min(steps.values()) < 8 == max(steps.values())  # ASHA stopped some
    assert any(t.checkpoint for t in ours.trials) and ours.default_metric == "loss" and ours.default_mode == "min"


@pytest.mark.slow
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("filter_nan_and_inf", [True, False])
def test_best_trial_is_rays(
    ours: tuner.Analysis, theirs: Any, metric: str, mode: str, scope: str, filter_nan_and_inf: bool
) -> None:
    mine = ours.get_best_trial(metric, mode, scope, filter_nan_and_inf)
    _assert_same_trial(mine, theirs.get_best_trial(metric, mode, scope, filter_nan_and_inf))
    assert ours.get_best_config(metric, mode, scope) == theirs.get_best_config(metric, mode, scope)


@pytest.mark.slow
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("scope", ["last", "all"])
def test_best_result_is_the_result_grids(ours: tuner.Analysis, theirs: Any, metric: str, scope: str) -> None:
    from ray.tune import ResultGrid

    try:
        expected = ResultGrid(theirs).get_best_result(metric, "max", scope)
    except RuntimeError:  # no trial has the metric
        with pytest.raises(ResultsError, match="No best trial found"):
            ours.get_best_result(metric, "max", scope)
        return
    mine = ours.get_best_result(metric, "max", scope)
    assert mine.path == expected.path and _same(mine.metrics, expected.metrics)
    assert mine.checkpoint == (expected.checkpoint.path if expected.checkpoint else None)
    pd.testing.assert_frame_equal(mine.metrics_dataframe, expected.metrics_dataframe)


@pytest.mark.slow
def test_scopes_disagree_in_this_experiment(ours: tuner.Analysis) -> None:
    """Otherwise the comparison above would prove little."""
    picks = {(s, m): ours.get_best_trial("loss", m, s) for s in SCOPES for m in ("min", "max")}
    assert len({p.trial_id for p in picks.values() if p}) >= 3
    assert picks["last", "min"] != picks["avg", "min"]  # nan_mid ends lowest, but its mean is NaN


@pytest.mark.slow
@pytest.mark.parametrize("metric", [None, "loss", "acc", "training_iteration", "nested/a"])
@pytest.mark.parametrize("mode", [None, "min", "max"])
def test_best_checkpoint_is_rays(ours: tuner.Analysis, theirs: Any, metric: str | None, mode: str | None) -> None:
    for mine, ray_trial in zip(ours.trials, theirs.trials, strict=True):
        try:
            expected = theirs.get_best_checkpoint(ray_trial, metric, mode)
        except KeyError:  # a checkpoint's result lacks the metric (a trial that never reports acc)
            with pytest.raises(ResultsError, match="not in the result of checkpoint"):
                ours.get_best_checkpoint(mine, metric, mode)
            continue
        assert ours.get_best_checkpoint(mine, metric, mode) == (expected.path if expected else None)
        latest = ray_trial.checkpoint
        assert mine.checkpoint == (latest.path if latest else None)
        if latest is not None:  # and it reads as Ray's Checkpoint does
            with mine.checkpoint.as_directory() as folder, latest.as_directory() as theirs_:
                assert sorted(p.name for p in Path(folder).iterdir()) == sorted(p.name for p in Path(theirs_).iterdir())


@pytest.mark.slow
@pytest.mark.parametrize(("metric", "mode"), [(None, None), ("loss", "min"), ("loss", "max"), ("acc", "max")])
def test_dataframe_is_rays(ours: tuner.Analysis, theirs: Any, metric: str | None, mode: str | None) -> None:
    pd.testing.assert_frame_equal(ours.get_dataframe(metric, mode), theirs.dataframe(metric, mode))
    pd.testing.assert_frame_equal(ours.dataframe(metric, mode), theirs.dataframe(metric, mode))
    for mine in ours.trials:
        pd.testing.assert_frame_equal(mine.metric_history, theirs.trial_dataframes[mine.trial_id])


@pytest.mark.slow
def test_the_tune_config_gives_the_defaults(ours: tuner.Analysis, theirs: Any) -> None:
    _assert_same_trial(ours.best_trial, theirs.best_trial)
    _assert_same_trial(ours.get_best_trial(scope="avg"), theirs.get_best_trial(scope="avg"))
    assert ours.best_config == theirs.best_config
    assert ours.best_checkpoint == theirs.best_checkpoint.path
    pd.testing.assert_frame_equal(ours.best_dataframe, theirs.best_dataframe)
    assert _same(ours.best_result, theirs.best_result)


@pytest.mark.slow
def test_without_a_tune_config_metric_and_mode_must_be_given(experiment: Path, tmp_path: Path) -> None:
    from ray.tune import ExperimentAnalysis

    bare = shutil.copytree(experiment, tmp_path / "bare")
    (bare / "tuner.pkl").unlink()
    mine, theirs = tuner.load(bare), ExperimentAnalysis(str(bare))
    for ask in (lambda a: a.get_best_trial(), lambda a: a.get_best_trial("loss"), lambda a: a.best_trial):
        with pytest.raises(ValueError):
            ask(theirs)
        with pytest.raises(ResultsError, match=r"mode|metric"):
            ask(mine)
    _assert_same_trial(mine.get_best_trial("loss", "max"), theirs.get_best_trial("loss", "max"))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"metric": "loss", "mode": "min", "scope": "best"}, "scope best"),
        ({"metric": "loss", "mode": "lowest"}, "one of \\[min, max\\]"),
    ],
)
def test_bad_scope_or_mode_is_refused_as_by_ray(
    ours: tuner.Analysis, theirs: Any, kwargs: dict[str, str], match: str
) -> None:
    with pytest.raises(ValueError):
        theirs.get_best_trial(**kwargs)
    with pytest.raises(ResultsError, match=match):
        ours.get_best_trial(**kwargs)


@pytest.mark.slow
def test_recorded_figures_are_what_the_results_give(experiment: Path, ours: tuner.Analysis) -> None:
    """The scopes of a tuner study are computed the way Ray computed the ones it recorded."""
    for trial in ours.trials:
        assert _same(metric_analysis(_results(Path(trial.path))), trial.metric_analysis)


@pytest.mark.slow
def test_reading_a_tune_folder_imports_no_ray(experiment: Path) -> None:
    code = (
        "import sys, tuner\n"
        f"a = tuner.load({str(experiment)!r})\n"
        "a.get_best_trial('loss', 'min', 'avg'); a.dataframe(); a.get_best_checkpoint(a.best_trial)\n"
        "from tuner.report import read; read(a.experiment_path)\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=cli_env(None), capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


# -- a Ray Tune experiment through the command line -------------------------------------------------


@pytest.mark.slow
def test_results_lists_a_tune_experiment(experiment: Path, ours: tuner.Analysis, tmp_path: Path) -> None:
    done = cli_here("results", str(experiment), "--csv", str(tmp_path / "t.csv"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(tmp_path / "t.csv")
    assert sorted(table["trial_id"]) == sorted(t.trial_id for t in ours.trials)
    assert {"shape", "loss", "best_loss", "acc", "nested/a", "iterations"} <= set(table.columns)
    stopped = {t.trial_id for t in ours.trials if t.metrics["training_iteration"] < 8 and t.config["shape"] != "short"}
    assert set(table.loc[table["status"] == "pruned", "trial_id"]) >= stopped
    finite = table["loss"].dropna()
    assert list(finite) == sorted(finite)  # best first


@pytest.mark.slow
def test_best_of_a_tune_experiment_prefers_trials_that_ran_to_the_end(
    experiment: Path, theirs: Any, tmp_path: Path
) -> None:
    done = cli_here("best", str(experiment), "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    ends = [t for t in theirs.trials if t.last_result["training_iteration"] == 8]
    full = [t for t in ends if math.isfinite(t.last_result["loss"])]
    expected = min(full, key=lambda t: t.last_result["loss"])  # the first of equals
    assert json.loads(done.stdout) == expected.config
    assert expected.trial_id in done.stderr


@pytest.mark.slow
def test_report_of_a_tune_experiment(experiment: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(experiment, tmp_path / "exp")
    done = cli_here("report", str(folder), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    page = (folder / "report.html").read_text()
    best = read_tables(folder).best()
    assert best is not None and f"<b>{best['trial_id']}</b>" in page and "<td>pruned</td>" in page
    assert (folder / "curves.png").stat().st_size > 0 and (folder / "history.png").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.parametrize("verb", ["results", "best", "report"])
def test_a_tune_experiment_without_metric_and_mode_needs_the_flags(experiment: Path, tmp_path: Path, verb: str) -> None:
    bare = shutil.copytree(experiment, tmp_path / "bare")
    (bare / "tuner.pkl").unlink()
    refused = cli_here(verb, str(bare), cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "--metric" in refused.stderr and "--mode" in refused.stderr
    assert cli_here(verb, str(bare), "--metric", "loss", "--mode", "min", cwd=tmp_path).returncode == 0


# -- a tuner study: scopes from its history -----------------------------------------------------

SCOPED = """
name: scopes
trainable: tests.results.curves:scoped
backend: simulated
metric: {name: loss, goal: minimize}
method: grid
seed: 1
max_concurrent: 4
storage: STORAGE
early_terminate: {type: asha, max_t: 12, grace_period: 6, reduction_factor: 2}
parameters:
  shape: {values: [down, early, dip, late, nan_end, flat]}
  offset: {values: [0.0, 0.001]}
"""


@pytest.fixture(scope="module")
def study_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    storage = tmp_path_factory.mktemp("study")
    out = tuner.run(study(SCOPED.replace("STORAGE", str(storage)), allow_modules=["tests"]), quiet=True)
    return Path(out.folder)


def _expected(history: pd.DataFrame, order: list[str], scope: str, mode: str) -> str | None:
    """The trial the scope picks, from history.parquet by pandas: NaN counts (a NaN reported
    makes the mean NaN), NaN and infinite scores never win, the first of equals wins."""
    scores = {}
    for trial_id in order:
        loss = history.loc[history["trial_id"] == trial_id, "loss"]
        scores[trial_id] = {
            "last": loss.iloc[-1],
            "avg": loss.mean(skipna=False),
            "last-5-avg": loss.tail(5).mean(skipna=False),
            "last-10-avg": loss.tail(10).mean(skipna=False),
            "all": loss.min(skipna=False) if mode == "min" else loss.max(skipna=False),
        }[scope]
    finite = {t: s for t, s in scores.items() if math.isfinite(s)}
    if not finite:
        return None
    pick = min if mode == "min" else max
    return pick(finite, key=lambda t: finite[t])  # the first of equals in trial order


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("scope", SCOPES)
def test_scopes_of_a_study_follow_its_history(study_folder: Path, scope: str, mode: str) -> None:
    history = tuner.load_history(study_folder)
    order = list(tuner.load_results(study_folder)["trial_id"])
    best = tuner.load(study_folder).get_best_trial(mode=mode, scope=scope)
    assert (best and best.trial_id) == _expected(history, order, scope, mode)


def test_a_study_answers_with_its_metric_its_configs_and_checkpoints(study_folder: Path) -> None:
    analysis = tuner.load(study_folder)
    trials = tuner.load_results(study_folder)
    assert (analysis.default_metric, analysis.default_mode) == ("loss", "min")
    assert [t.trial_id for t in analysis.trials] == list(trials["trial_id"])
    assert [t.status for t in analysis.trials] == list(trials["status"])
    stored = tuner.load_best(study_folder)
    mine = next(t for t in analysis.trials if t.trial_id == stored["trial_id"])
    assert mine.config == stored["config"] and mine.checkpoint == stored["checkpoint"]
    for t in analysis.trials:  # the last report, and the history as history.parquet has it
        history = tuner.load_history(study_folder)
        rows = history[history["trial_id"] == t.trial_id]
        assert t.metrics["step"] == rows["step"].iloc[-1] and _same(t.metrics["loss"], rows["loss"].iloc[-1])
        assert list(t.metric_history["training_iteration"]) == list(range(1, len(rows) + 1))
    # the best trial by Ray's rule may be one that was pruned; best.yaml's never is, while one finished
    dipped = analysis.get_best_trial(scope="all")
    assert dipped is not None and dipped.status == "pruned" and stored["status"] == "finished"
    assert analysis.get_best_checkpoint(dipped) == f"sim://{dipped.trial_id}/2"  # where it dipped


def test_a_study_refuses_the_tune_flags(study_folder: Path, tmp_path: Path) -> None:
    for verb in ("results", "best", "report"):
        done = cli_here(verb, str(study_folder), "--metric", "loss", cwd=tmp_path)
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and "--metric" in done.stderr


def test_a_results_checkpoint_reads_as_a_ray_checkpoint(tmp_path: Path) -> None:
    """``best_result.checkpoint.as_directory()`` as Ray's examples read it; still the path it was."""
    import yaml

    saved = tmp_path / "t0001" / "checkpoint_000003"
    (saved / "sub").mkdir(parents=True)
    (saved / "model.pt").write_text("weights")
    (saved / "sub" / "more.txt").write_text("x")
    trial = tuner.TrialResult("t0001", {}, {}, pd.DataFrame(), str(saved), "finished", str(tmp_path),
                              checkpoints=[(str(saved), {"loss": 1.0})])  # fmt: skip
    checkpoint = trial.checkpoint
    assert checkpoint == str(saved) and checkpoint.path == str(saved) and isinstance(checkpoint, str)
    with checkpoint.as_directory() as folder:
        assert (Path(folder) / "model.pt").read_text() == "weights"
    copy = Path(checkpoint.to_directory(tmp_path / "copy"))
    assert (copy / "sub" / "more.txt").read_text() == "x" and (copy / "model.pt").exists()
    assert Path(checkpoint.to_directory()).joinpath("model.pt").exists()  # a fresh temporary folder
    assert trial.checkpoints[0][0].as_directory  # the kept ones too
    assert yaml.safe_load(yaml.safe_dump({"checkpoint": checkpoint})) == {"checkpoint": str(saved)}
    state = tmp_path / "t0002" / "step-00000003.pt"  # tuner's own trainables write a state file
    state.parent.mkdir()
    state.write_bytes(b"state")
    state_file = tuner.TrialResult("t0002", {}, {}, pd.DataFrame(), str(state), "finished", "").checkpoint
    with pytest.raises(ResultsError, match=r"step-00000003.pt: not a directory: it is a state file written by trial"):
        state_file.to_directory()


def test_numpy_numbers_in_a_tune_pickle_are_read_as_numbers() -> None:
    """Ray pickles a result holding numpy values (``loss.cpu().numpy()``, as its CIFAR example
    reports): they are read back as numbers, everything else still as stubs."""
    import pickle

    import numpy as np

    from tuner.results._pickle import Stub, read_pickle

    data = pickle.dumps({"loss": np.float32(0.5), "n": np.int64(3), "arr": np.array(2.5), "k": [np.float64(1)],
                         "x": Path("/a")})  # fmt: skip
    read = read_pickle(data)
    assert read["loss"] == 0.5 and type(read["loss"]) is float and read["n"] == 3 and type(read["n"]) is int
    assert read["arr"] == 2.5 and type(read["arr"]) is float and read["k"] == [1.0]
    assert isinstance(read["x"], Stub)
    assert list(read_pickle(pickle.dumps({"v": np.arange(3.0)}))["v"]) == [0.0, 1.0, 2.0]  # a small array
    # a crafted pickle that asks numpy for a huge empty array (numpy's own pickles never do): refused
    crafted = b"cnumpy._core.multiarray\n_reconstruct\n(cnumpy\nndarray\n(I100000000\ntS'f8'\ntR."
    assert read_pickle(crafted) is None
    numpy1 = pickle.dumps(np.float64(2.0), protocol=3).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert read_pickle(numpy1) == 2.0  # written under numpy 1


def test_a_folder_of_neither_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(tuner.UserError, match=r"not a tuner results folder.*nor a Ray Tune experiment"):
        tuner.load(tmp_path)


@pytest.mark.parametrize(
    ("policy", "maximize", "kept"),
    [
        ({}, False, ["b", "d"]),  # the last, and the best
        ({"keep": 2}, False, ["b", "c", "d"]),
        ({"keep_best": False}, False, ["d"]),
        ({}, True, ["a", "d"]),
        ({"keep": 9}, False, ["a", "b", "c", "d"]),
    ],
)
def test_an_object_stores_checkpoints_are_those_the_run_keeps(
    policy: dict[str, Any], maximize: bool, kept: list[str]
) -> None:
    """An object store is not listed: the run's own rule says which of its checkpoints are left."""
    from tuner.results._study_folder import _pruned

    saved = [("a", {"loss": 0.5}), ("b", {"loss": 0.2}), ("c", {"loss": 0.2}), ("d", {"loss": math.nan})]
    assert [path for path, _ in _pruned(saved, policy, "loss", maximize)] == kept


# -- the reading code of Ray Tune users: a ResultGrid's and an ExperimentAnalysis's names --------


@pytest.mark.slow
def test_result_grid_reading_is_rays(ours: tuner.Analysis, theirs: Any) -> None:
    """``len``, indexing, iterating, the counts, ``results_df`` and each result's
    ``best_checkpoints`` answer as ``ResultGrid`` / ``ExperimentAnalysis`` do on the same folder."""
    from ray.tune import ResultGrid

    grid = ResultGrid(theirs)
    assert len(ours) == len(grid) and [r.path for r in ours] == [r.path for r in grid]
    assert ours[0].path == grid[0].path and ours[-1].path == grid[-1].path
    kinds = [g.filesystem.get_file_info(g.experiment_path).type for g in (ours, grid)]
    assert kinds[0] == kinds[1] and kinds[0].name == "Directory"
    assert (ours.num_errors, ours.num_terminated, len(ours.errors)) == (
        grid.num_errors, grid.num_terminated, len(grid.errors))  # fmt: skip
    pd.testing.assert_frame_equal(ours.results_df, theirs.results_df)
    pd.testing.assert_frame_equal(ours.best_result_df, theirs.best_result_df)
    for mine, result in zip(ours, grid, strict=True):
        assert [c.path for c, _ in mine.best_checkpoints] == [c.path for c, _ in result.best_checkpoints]
        assert all(_same(m, r) for (_, m), (_, r) in zip(mine.best_checkpoints, result.best_checkpoints, strict=True))
        assert (mine.error is None) == (result.error is None)
        one = tuner.TrialResult.from_path(result.path)  # Ray's Result.from_path(path), by a trial's folder
        assert one.trial_id == mine.trial_id and one.config == result.config and _same(one.metrics, result.metrics)


def test_a_result_grids_reading_code_runs_on_a_study(study_folder: Path) -> None:
    """What Ray's "Analyzing Tune Experiment Results" guide does with a ``ResultGrid``, on a study."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = tuner.load(study_folder)
    trials = tuner.load_results(study_folder)
    assert len(grid) == len(trials) and [r.trial_id for r in grid] == list(trials["trial_id"])
    assert grid[0].trial_id == trials["trial_id"].iloc[0] and grid[-1].trial_id == trials["trial_id"].iloc[-1]
    nan = trials["status"] == "nan"  # nan_end's trials failed on a NaN
    assert grid.num_errors == len(grid.errors) == nan.sum() == 2 and grid.num_terminated == len(trials) - 2
    assert [str(e) for e in grid.errors] == list(trials.loc[nan, "error"])
    results_df = grid.get_dataframe()
    assert results_df["time_total_s"].min() >= 0 and set(results_df["training_iteration"]) <= set(range(1, 13))
    assert list(results_df["trial_id"]) == list(trials["trial_id"])
    df = grid.results_df
    assert list(df.index) == list(trials["trial_id"]) and df.index.name == "trial_id" and "config" not in df
    best = grid.get_best_result()
    history = best.metrics_dataframe
    assert list(history["time_total_s"]) == list(history["time_s"])
    ax = None
    for result in grid:  # the guide's plot of every trial's curve
        if ax is None:
            ax = result.metrics_dataframe.plot("training_iteration", "loss", label=result.trial_id)
        else:
            result.metrics_dataframe.plot("training_iteration", "loss", ax=ax, label=result.trial_id)
    assert ax is not None and len(ax.get_lines()) == len(trials)
    plt.close("all")
    assert best.best_checkpoints == best.checkpoints and best.best_checkpoints[-1][0] == best.checkpoint
    for checkpoint, metrics in best.best_checkpoints:  # Ray's docs: each kept checkpoint with its result
        assert checkpoint.path.startswith("sim://") and "loss" in metrics
    row = grid.best_result_df
    assert list(row.index) == [best.trial_id] and row["loss"].iloc[0] == best.metrics["loss"]


def test_failed_trials_are_errors_and_exceptions() -> None:
    """``result.error`` is an exception (Ray's docs assert it); ``num_errors`` and
    ``num_terminated`` count Tune's statuses and tuner's alike."""
    from tuner.results._analysis import TrialError

    statuses = {"a": "TERMINATED", "b": "ERROR", "c": "finished", "d": "pruned", "e": "stopped", "f": "errored",
                "g": "oom", "h": "nan"}  # fmt: skip
    failed = {"b", "f", "g", "h"}
    trials = []
    for k, status in statuses.items():
        error = f"ValueError: {k} failed" if k in failed else None
        trials.append(tuner.TrialResult(k, {"k": k}, {"trial_id": k, "loss": 1.0}, pd.DataFrame(), None, status, "",
                                        error=error))  # fmt: skip
    grid = tuner.Analysis("/x", trials, "loss", "min")
    assert grid.num_errors == 4 and grid.num_terminated == 4 and len(grid.errors) == 4
    for error in grid.errors:
        assert isinstance(error, Exception) and isinstance(error, TrialError)
    assert grid[1].error == "ValueError: b failed" and str(grid[1].error) == "ValueError: b failed"
    assert grid[0].error is None and not grid[0].error
    with pytest.raises(TrialError, match="b failed"):
        raise grid.errors[0]
    from tuner.results._tables import _converted

    table = _converted(Path("/x"), trials, "loss", False).trials
    assert table.set_index("trial_id")["error"].to_dict()["b"] == "ValueError: b failed"


def test_load_takes_a_default_metric_and_mode(study_folder: Path) -> None:
    """As ``ExperimentAnalysis(path, default_metric=..., default_mode=...)`` takes them."""
    grid = tuner.load(study_folder, default_metric="accuracy", default_mode="max")
    assert (grid.default_metric, grid.default_mode) == ("accuracy", "max")
    assert grid.best_trial == grid.get_best_trial("accuracy", "max")
    assert grid.best_trial != tuner.load(study_folder).get_best_trial("accuracy", "min")


def test_a_tune_config_pickled_with_a_lambda_gives_the_defaults(tmp_path: Path) -> None:
    """Tune pickles ``tuner.pkl`` with cloudpickle, which rebuilds a lambda in the run config
    (``RunConfig(stop=lambda trial_id, result: ...)``) by calling what it names: the metric and
    mode are read all the same."""
    from ray import cloudpickle, tune

    from tuner.results._tune_folder import _tune_config

    state = {
        "_tune_config": tune.TuneConfig(metric="loss", mode="min"),
        "_run_config": tune.RunConfig(stop=lambda trial_id, result: result["training_iteration"] >= 3),
    }
    (tmp_path / "tuner.pkl").write_bytes(cloudpickle.dumps(state))
    assert _tune_config(tmp_path) == ("loss", "min")


@pytest.mark.slow
def test_a_trial_that_finished_on_a_retry_has_no_error(experiment: Path, tmp_path: Path) -> None:
    """Tune keeps the ``error.txt`` of a trial that failed once and then finished
    (``FailureConfig(max_failures=1)``); Ray's ``Result.error`` is ``None`` for a ``TERMINATED``
    trial, and so is ours."""
    from ray.tune import ExperimentAnalysis, ResultGrid

    copy = shutil.copytree(experiment, tmp_path / "copy")
    trial = tuner.load(copy)[0]
    assert trial.status == "TERMINATED"
    Path(trial.path, "error.txt").write_text("Failure # 1 (occurred at 2026)\nTraceback:\nRuntimeError: once\n")
    theirs = ResultGrid(ExperimentAnalysis(str(copy)))
    again = tuner.load(copy)
    assert again.errors == theirs.errors == [] and again.num_errors == theirs.num_errors == 0
    assert again[0].error is None
