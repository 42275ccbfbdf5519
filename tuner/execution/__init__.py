"""The Ray boundary: the only package that imports Ray."""

from tuner.execution._cluster import Connection, capacity, connect
from tuner.execution._engine import Outcomes, execute

__all__ = ["Connection", "Outcomes", "capacity", "connect", "execute"]
