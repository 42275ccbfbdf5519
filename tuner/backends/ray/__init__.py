"""The Ray backend: the only package that imports Ray."""

from tuner.backends.ray._backend import RayBackend
from tuner.backends.ray._cluster import Connection, capacity, connect, fits, token_auth, token_hint
from tuner.backends.ray._session import ray_session
from tuner.backends.ray._tune_api import run_here as run_tune_trainable
from tuner.backends.ray._usage import Usage, rss_mb

__all__ = [
    "Connection",
    "RayBackend",
    "Usage",
    "capacity",
    "connect",
    "fits",
    "ray_session",
    "rss_mb",
    "run_tune_trainable",
    "token_auth",
    "token_hint",
]
