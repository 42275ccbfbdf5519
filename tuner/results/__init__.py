"""Results on disk and the choice of the best trial; pure pandas, no Ray."""

from tuner.results._best import best_row
from tuner.results._recorder import Recorder, TrialRecord
from tuner.results._store import load_best, load_history, load_results, new_study_dir

__all__ = ["Recorder", "TrialRecord", "best_row", "load_best", "load_history", "load_results", "new_study_dir"]
