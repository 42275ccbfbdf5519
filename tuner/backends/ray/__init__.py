"""The Ray boundary: the only package that imports Ray."""

from tuner.backends.ray._cluster import Connection, capacity, connect
from tuner.backends.ray._execute import Outcomes, execute, plan_slots

__all__ = ["Connection", "Outcomes", "capacity", "connect", "execute", "plan_slots"]
