"""Results on disk and the choice of the best trial; pure pandas, no Ray."""

from tuner.results._analysis import DEFAULT_METRIC, Analysis, TrialResult
from tuner.results._best import best_row, ranked
from tuner.results._confirm import CONFIRM, candidates, confirm_table, shown_metrics, summarise
from tuner.results._journal import JOURNAL, read_journal
from tuner.results._load import load
from tuner.results._pareto import pareto_mask, select
from tuner.results._recorder import FAILED, Recorder, TrialRecord, handed_names
from tuner.results._state import STATE, alive, read_state, unfinished, unfinished_run, write_state
from tuner.results._store import (
    BEST,
    HANDED,
    HISTORY,
    NO_METRIC,
    STUDY,
    SUMMARY,
    TRIALS,
    load_best,
    load_history,
    load_results,
    new_study_dir,
    objectives,
    row_params,
    write_yaml,
)
from tuner.results._study import read_study
from tuner.results._tables import Tables, read_tables
from tuner.results._tune_folder import is_tune_folder
from tuner.results._warm import WarmStart, read_warm_start

__all__ = [
    "BEST",
    "CONFIRM",
    "DEFAULT_METRIC",
    "FAILED",
    "HANDED",
    "HISTORY",
    "JOURNAL",
    "NO_METRIC",
    "STATE",
    "STUDY",
    "SUMMARY",
    "TRIALS",
    "Analysis",
    "Recorder",
    "Tables",
    "TrialRecord",
    "TrialResult",
    "WarmStart",
    "alive",
    "best_row",
    "candidates",
    "confirm_table",
    "handed_names",
    "is_tune_folder",
    "load",
    "load_best",
    "load_history",
    "load_results",
    "new_study_dir",
    "objectives",
    "pareto_mask",
    "ranked",
    "read_journal",
    "read_state",
    "read_study",
    "read_tables",
    "read_warm_start",
    "row_params",
    "select",
    "shown_metrics",
    "summarise",
    "unfinished",
    "unfinished_run",
    "write_state",
    "write_yaml",
]
