"""The study's decisions, as plain Python over plain data: no Ray is imported here.

The engine asks the searcher, judges each report (scheduler, budget, leaks), decides what a
failure leads to, and records everything; a :class:`Backend` runs the trials it starts.
"""

from tuner.engine._admission import Admission, slots_for
from tuner.engine._backend import Backend, End, Event, Launch, Memory, Report
from tuner.engine._loop import Engine
from tuner.engine._packing import CONTEXT_MB, HEADROOM, SETTLE_S, Gpu, Packing, memory_parameters, per_gpu_bound
from tuner.engine._run import Outcomes, execute
from tuner.engine._schedulers import (
    AsyncSuccessiveHalving,
    MedianStopping,
    NoScheduler,
    Pruner,
    Scheduler,
    WandbHyperband,
)

__all__ = [
    "CONTEXT_MB",
    "HEADROOM",
    "SETTLE_S",
    "Admission",
    "AsyncSuccessiveHalving",
    "Backend",
    "End",
    "Engine",
    "Event",
    "Gpu",
    "Launch",
    "MedianStopping",
    "Memory",
    "NoScheduler",
    "Outcomes",
    "Packing",
    "Pruner",
    "Report",
    "Scheduler",
    "WandbHyperband",
    "execute",
    "memory_parameters",
    "per_gpu_bound",
    "slots_for",
]
