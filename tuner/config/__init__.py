"""Reading study files: strict YAML, one schema, one frozen :class:`Study`."""

from tuner.config._load import Study, import_trainable, load_study
from tuner.config._schema import Asha, Hyperband, Median, Metric, Resources, StudySpec, parse_duration
from tuner.config._yaml import parse_yaml, read_yaml

__all__ = [
    "Asha",
    "Hyperband",
    "Median",
    "Metric",
    "Resources",
    "Study",
    "StudySpec",
    "import_trainable",
    "load_study",
    "parse_duration",
    "parse_yaml",
    "read_yaml",
]
