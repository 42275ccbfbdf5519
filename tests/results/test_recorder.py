"""The recorder and its journal: what a run writes, and what resume reads back."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from tuner.results import Recorder, TrialRecord
from tuner.results._journal import Journal, read_journal


def recorder(tmp_path: Path) -> Recorder:
    rec = Recorder(tmp_path, "loss", maximize=False, every=0.0)
    rec.start(TrialRecord("t1", {"lr": 0.1}, {"lr": 0.1}, seed=3, started=1.0))
    for step, loss in [(1, 3.0), (2, 2.0), (3, 2.5)]:
        rec.report("t1", step, 0.1 * step, {"loss": loss, "acc": 1 / loss})
    return rec


def test_reports_keep_the_last_and_the_best_value(tmp_path: Path) -> None:
    trial = recorder(tmp_path).trials["t1"]
    assert (trial.value, trial.best_value, trial.step, trial.iterations) == (2.5, 2.0, 3, 3)


def test_rewind_forgets_reports_after_the_checkpoint(tmp_path: Path) -> None:
    rec = recorder(tmp_path)
    rec.rewind("t1", 1, "RuntimeError: boom")
    trial = rec.trials["t1"]
    assert [h["step"] for h in rec.history] == [1]
    assert (trial.value, trial.best_value, trial.iterations) == (3.0, 3.0, 1)
    rec.rewind("t1", None)
    assert rec.history == [] and rec.trials["t1"].value is None
    kinds = [e["e"] for e in read_journal(tmp_path)]
    assert kinds == ["start", "report", "report", "report", "retry", "retry"]  # replayed reports are not re-logged


def test_seconds_a_step_count_within_an_attempt_only(tmp_path: Path) -> None:
    """An attempt's clock starts again at 0 (a retry, a resume, a population's exploit): its
    start-up is no step, and the seconds a step never go negative."""
    rec = recorder(tmp_path)  # reports at 0.1, 0.2, 0.3 s
    rec.rewind("t1", 2, "resumed")  # steps 1 and 2 kept, at 0.1 and 0.2 s
    for step, at in [(3, 0.05), (4, 0.15), (5, 0.25)]:  # the next attempt, its clock from 0
        rec.report("t1", step, at, {"loss": 1.0})
    assert math.isclose(rec.trials["t1"].s_per_step or 0.0, 0.1)


def test_nothing_is_journaled_while_replaying(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, "loss", maximize=False)
    rec.replaying = True
    rec.start(TrialRecord("t1", {}, {}, seed=0))
    rec.report("t1", 1, 0.1, {"loss": 1.0})
    assert read_journal(tmp_path) == []


def test_snapshot_is_a_job_for_another_thread_taken_only_when_something_changed(tmp_path: Path) -> None:
    rec = recorder(tmp_path)
    job = rec.snapshot()
    assert job is not None and rec.snapshot() is None  # nothing new since
    rec.report("t1", 4, 0.4, {"loss": 1.0, "acc": 1.0})  # after the snapshot was taken...
    job()
    trials = pd.read_parquet(tmp_path / "trials.parquet")
    assert trials.loc[0, "value"] == 2.5  # ...the job writes the state it was taken at
    assert len(pd.read_parquet(tmp_path / "history.parquet")) == 3
    rec.end("t1", "finished")
    assert rec.flush() and pd.read_parquet(tmp_path / "trials.parquet").loc[0, "status"] == "finished"


def test_the_journal_survives_a_torn_last_line_and_keeps_nan(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    journal.write({"e": "report", "metrics": {"loss": math.nan}})
    journal.write({"e": "end", "status": "nan"})
    journal.close()
    with (tmp_path / "journal.jsonl").open("a") as f:
        f.write('{"e": "rep')  # the driver died mid-line
    events = read_journal(tmp_path)
    assert [e["e"] for e in events] == ["report", "end"]
    assert math.isnan(events[0]["metrics"]["loss"])
    assert json.loads((tmp_path / "journal.jsonl").read_text().splitlines()[1]) == {"e": "end", "status": "nan"}


def test_usage_and_seconds_per_step_reach_the_results_and_the_live_view(tmp_path: Path) -> None:
    import io

    from tuner.backends.ray._usage import FIELDS, combine
    from tuner.progress import Progress
    from tuner.results._recorder import USAGE

    assert FIELDS == USAGE  # the worker's figures and the results' columns are one list
    rec = recorder(tmp_path)
    rec.trials["t1"].usage["peak_rss_mb"] = 512.0  # what rank 0's reports showed so far
    lines = Progress(rec, stream=io.StringIO()).lines()
    assert "running: t1 step 3, 512 MB, 0.1 s/step" in lines
    ranks = [
        {"peak_rss_mb": 900.0, "cpu_s": 3.0, "gpu_device_busy": 80.0, "gpu_util_note": "no per-process samples"},
        {"peak_rss_mb": 700.0, "cpu_s": 2.0, "gpu_device_busy": 60.0},
    ]
    rec.end("t1", "finished", usage=combine(ranks))
    row = rec.trials_frame().iloc[0]
    assert (row["peak_rss_mb"], row["cpu_s"], row["gpu_device_busy"]) == (900.0, 5.0, 70.0)  # largest, sum, mean
    assert row["gpu_util_note"] == "no per-process samples" and pd.isna(row["gpu_util_own"])  # missing, with why
    assert row["s_per_step"] == 0.1 and pd.isna(row["peak_gpu_mb"])
    rec.journal.sync()
    ended = [e for e in read_journal(tmp_path) if e["e"] == "end"]
    assert ended[0]["usage"]["peak_rss_mb"] == 900.0  # journaled, so resume keeps it


def test_a_study_that_recorded_gpu_util_is_read_with_it_as_the_devices_busy_fraction(tmp_path: Path) -> None:
    from tuner.results import load_results
    from tuner.results._store import TRIALS

    rec = recorder(tmp_path)
    rec.end("t1", "finished", usage={"peak_gpu_mb": 100.0, "gpu_util": 55.0})  # an old journal, replayed
    assert rec.trials["t1"].usage["gpu_device_busy"] == 55.0
    rec.trials_frame().drop(columns=["gpu_device_busy"]).assign(gpu_util=[41.0]).to_parquet(tmp_path / TRIALS)
    trials = load_results(tmp_path)  # an old study's table: read by the report, tuner.load_results...
    assert trials.loc[0, "gpu_device_busy"] == 41.0 and "gpu_util" not in trials


def test_result_files_get_the_users_permissions_not_a_temporary_files(tmp_path: Path) -> None:
    """Written atomically, the tables and YAML files are still 0666 less the umask (as the journal,
    the logs and the checkpoints are), so that a study on a shared disk stays readable; no
    temporary file is left behind."""
    import os
    import stat

    before = os.umask(0o022)
    try:
        rec = recorder(tmp_path)
        rec.flush(force=True)
        (tmp_path / "plain").write_text("x")
    finally:
        os.umask(before)
    plain = stat.S_IMODE((tmp_path / "plain").stat().st_mode)
    written = sorted(p.name for p in tmp_path.iterdir() if p.suffix in {".parquet", ".yaml", ".json"})
    assert {"trials.parquet", "history.parquet"} <= set(written)
    assert {n: stat.S_IMODE((tmp_path / n).stat().st_mode) for n in written} == dict.fromkeys(written, plain)
    assert plain == 0o644 and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
