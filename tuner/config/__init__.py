"""Reading study files: strict YAML, one schema, one frozen :class:`Study`."""

from tuner.config import _by_value as by_value
from tuner.config._bands import wandb_bands
from tuner.config._direction import better, minimised, sign
from tuner.config._load import Study, load_study, until_stopped
from tuner.config._population import Pb2, Pbt
from tuner.config._program import EXTRA as WANDB_EXTRA
from tuner.config._program import SETTINGS as PROGRAM_SETTINGS
from tuner.config._schema import (
    Asha,
    CheckpointPolicy,
    Hyperband,
    Median,
    Metric,
    Resources,
    StudySpec,
    parse_duration,
)
from tuner.config._stop import Stop
from tuner.config._stopper import Stopping, check_stopper, load_stopper, tune_result
from tuner.config._tracking import MlflowOptions, TensorboardOptions, TrackingOptions, WandbOptions
from tuner.config._trainable import (
    allowed_modules,
    defines,
    import_named,
    import_trainable,
    is_tune_class,
    reported_metrics,
    trainable_style,
)
from tuner.config._wandb import folder_name
from tuner.config._yaml import parse_yaml, read_yaml

__all__ = [
    "PROGRAM_SETTINGS",
    "WANDB_EXTRA",
    "Asha",
    "CheckpointPolicy",
    "Hyperband",
    "Median",
    "Metric",
    "MlflowOptions",
    "Pb2",
    "Pbt",
    "Resources",
    "Stop",
    "Stopping",
    "Study",
    "StudySpec",
    "TensorboardOptions",
    "TrackingOptions",
    "WandbOptions",
    "allowed_modules",
    "better",
    "by_value",
    "check_stopper",
    "defines",
    "folder_name",
    "import_named",
    "import_trainable",
    "is_tune_class",
    "load_stopper",
    "load_study",
    "minimised",
    "parse_duration",
    "parse_yaml",
    "read_yaml",
    "reported_metrics",
    "sign",
    "trainable_style",
    "tune_result",
    "until_stopped",
    "wandb_bands",
]
