"""A study's state as Ray metrics (``ray.util.metrics``), so that the cluster's Prometheus
endpoint, and the dashboard's Metrics view when Prometheus and Grafana are set up, show it.

All carry a ``study`` tag: ``tuner_trials`` (by ``status``), ``tuner_best_value``,
``tuner_reports_total`` (a counter: its rate is reports per second), ``tuner_reports_per_second``
(over the last 10 s), and ``tuner_trial_metric`` (each running trial's latest value, by ``trial``).
"""

from __future__ import annotations

import collections
import math
import time
from typing import Any

WINDOW_S = 10.0


class StudyMetrics:
    def __init__(self, study: str, metric: str) -> None:
        from ray.util.metrics import Counter, Gauge

        self.tags = {"study": study}
        self.metric = metric
        self.trials = Gauge("tuner_trials", "trials of the study by status", tag_keys=("study", "status"))
        self.best = Gauge("tuner_best_value", f"the best {metric} so far", tag_keys=("study",))
        self.reports = Counter("tuner_reports_total", "reports received from trials", tag_keys=("study",))
        self.rate = Gauge("tuner_reports_per_second", "reports per second, last 10 s", tag_keys=("study",))
        self.latest = Gauge("tuner_trial_metric", f"each trial's latest {metric}", tag_keys=("study", "trial"))
        self._times: collections.deque[float] = collections.deque()
        self._counts: dict[str, int] = {}

    def report(self, trial_id: str, value: float | None) -> None:
        self.reports.inc(1.0, tags=self.tags)
        self._times.append(time.monotonic())
        if value is not None and math.isfinite(value):
            self.latest.set(value, tags={**self.tags, "trial": trial_id})

    def update(self, counts: dict[str, int], best: float | None) -> None:
        """Called every pass of the loop: cheap, it only sets what changed."""
        now = time.monotonic()
        while self._times and now - self._times[0] > WINDOW_S:
            self._times.popleft()
        self.rate.set(len(self._times) / WINDOW_S, tags=self.tags)
        for status, n in counts.items():
            if self._counts.get(status) != n:
                self.trials.set(n, tags={**self.tags, "status": status})
        self._counts = dict(counts)
        if best is not None and math.isfinite(best):
            self.best.set(best, tags=self.tags)


def study_metrics(study: str, metric: str) -> Any:
    """The study's metrics, or ``None`` where Ray's metrics are not available."""
    try:
        return StudyMetrics(study, metric)
    except (ImportError, ValueError, RuntimeError):
        return None
