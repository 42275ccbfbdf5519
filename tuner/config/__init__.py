"""Reading study files: strict YAML, one schema, one frozen :class:`Study`."""

from tuner.config._direction import better, minimised, sign
from tuner.config._load import Study, load_study
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
from tuner.config._tracking import MlflowOptions, TensorboardOptions, TrackingOptions, WandbOptions
from tuner.config._trainable import allowed_modules, import_trainable, reported_metrics, trainable_style
from tuner.config._yaml import parse_yaml, read_yaml

__all__ = [
    "Asha",
    "CheckpointPolicy",
    "Hyperband",
    "Median",
    "Metric",
    "MlflowOptions",
    "Resources",
    "Study",
    "StudySpec",
    "TensorboardOptions",
    "TrackingOptions",
    "WandbOptions",
    "allowed_modules",
    "better",
    "import_trainable",
    "load_study",
    "minimised",
    "parse_duration",
    "parse_yaml",
    "read_yaml",
    "reported_metrics",
    "sign",
    "trainable_style",
]
