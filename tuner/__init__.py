"""tuner: hyperparameter tuning for PyTorch on Ray, from one YAML file."""

from tuner._api import confirm, resume, run, train
from tuner.config import Study, load_study
from tuner.errors import ConfigError, ResultsError, ResultsMissing, StudyFailed, TrialPruned, TunerError, UserError
from tuner.results import Analysis, TrialResult, load, load_best, load_history, load_results
from tuner.trial import Trial

__all__ = [
    "Analysis",
    "ConfigError",
    "ResultsError",
    "ResultsMissing",
    "Study",
    "StudyFailed",
    "Trial",
    "TrialPruned",
    "TrialResult",
    "TunerError",
    "UserError",
    "confirm",
    "load",
    "load_best",
    "load_history",
    "load_results",
    "load_study",
    "resume",
    "run",
    "train",
]
__version__ = "0.1.0"
