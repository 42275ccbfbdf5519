"""Results on disk and the choice of the best trial; pure pandas, no Ray."""

from tuner.results._best import best_row
from tuner.results._recorder import FAILED, Recorder, TrialRecord
from tuner.results._state import write_state
from tuner.results._store import SUMMARY, load_best, load_history, load_results, new_study_dir, write_yaml
from tuner.results._warm import read_warm_start

__all__ = [
    "FAILED",
    "SUMMARY",
    "Recorder",
    "TrialRecord",
    "best_row",
    "load_best",
    "load_history",
    "load_results",
    "new_study_dir",
    "read_warm_start",
    "write_state",
    "write_yaml",
]
