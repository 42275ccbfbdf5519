"""The Ray boundary: the only package that imports Ray."""

from tuner.execution._cluster import Connection, capacity, connect
from tuner.execution._execute import Outcomes, execute, plan_slots

__all__ = ["Connection", "Outcomes", "capacity", "connect", "execute", "plan_slots"]
