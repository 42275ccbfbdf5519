"""The Ray backend: the only package that imports Ray."""

from tuner.backends.ray._backend import RayBackend
from tuner.backends.ray._cluster import Connection, capacity, connect, fits, path_entries, token_auth, token_hint
from tuner.backends.ray._group import WorkerGroup
from tuner.backends.ray._session import ray_session
from tuner.backends.ray._tune_api import numeric
from tuner.backends.ray._tune_api import run_here as run_tune_trainable
from tuner.backends.ray._usage import Usage, rss_mb
from tuner.backends.ray._worker import TrialTask

__all__ = [
    "Connection",
    "RayBackend",
    "TrialTask",
    "Usage",
    "WorkerGroup",
    "capacity",
    "connect",
    "fits",
    "numeric",
    "path_entries",
    "ray_session",
    "rss_mb",
    "run_tune_trainable",
    "token_auth",
    "token_hint",
]
