"""The Ray boundary: the only package that imports Ray."""

from tuner.backends.ray._cluster import Connection, capacity, connect, fits, token_auth, token_hint
from tuner.backends.ray._execute import Outcomes, execute, plan_slots
from tuner.backends.ray._usage import Usage, rss_mb

__all__ = [
    "Connection",
    "Outcomes",
    "Usage",
    "capacity",
    "connect",
    "execute",
    "fits",
    "plan_slots",
    "rss_mb",
    "token_auth",
    "token_hint",
]
