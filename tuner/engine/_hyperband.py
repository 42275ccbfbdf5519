"""W&B's hyperband stopping rule, making the decisions W&B's sweep controller makes.

W&B's ``hyperband_stop_runs`` (``sweeps/hyperband_stopping.py``) is the reference. Each time the
controller looks, every running run is judged at its band: the highest band (see
:func:`tuner.config.wandb_bands`) at or below the number of finite values of the metric it has
logged. The band's threshold is, over every run of the sweep (running, finished or stopped) that
logged that many values, the value each logged at the band, sorted best first, at index
``int(len / eta)``. A run is stopped if its value at the band (``strict``, W&B's default), or its
best value so far (``strict: false``), is worse than that threshold; a maximised metric is
negated first, as W&B does.

Here the controller looks at a trial each time it reports, which is W&B's rule with a controller
that never sleeps. Each band keeps its values sorted, so a threshold is read by index.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort

from tuner.engine._scheduler import Scheduler


class WandbHyperband(Scheduler):
    """Stops a trial worse, at its band, than the ``1/eta`` best of every trial that reached it.

    A trial's reports count in the order they come; a report at a step not past the trial's last
    one (the trial continues from a checkpoint) drops the reports from that step on, as the
    trial's curve does.
    """

    def __init__(self, *, bands: list[int], eta: float, strict: bool = True, maximize: bool = False) -> None:
        self.bands = sorted(set(bands))
        self._is_band = set(self.bands)
        self._r = 1.0 / eta  # W&B's r: the share of the runs at a band that go on
        self._strict = strict
        self._sign = -1.0 if maximize else 1.0  # W&B negates a maximised metric: lower is better
        self._steps: dict[str, list[float]] = {}  # each trial's reports, in order
        self._values: dict[str, list[float]] = {}  # their signed values
        self._best: dict[str, list[float]] = {}  # the best (lowest) signed value up to each
        self._at: dict[int, list[float]] = {band: [] for band in self.bands}  # signed values at each band, sorted

    def add(self, trial_id: str) -> None:
        for table in (self._steps, self._values, self._best):
            table.setdefault(trial_id, [])

    def report(self, trial_id: str, step: float, value: float) -> bool:
        self.record(trial_id, step, value)
        return self.judge(trial_id)

    def end(self, trial_id: str, last: tuple[float, float] | None) -> None:
        # Its reports stay: W&B compares with every run of the sweep, ended ones too. The last
        # result counts when it was not judged (a trial ended at its budget).
        steps = self._steps.get(trial_id)
        if last is not None and (not steps or last[0] > steps[-1]):
            self.record(trial_id, *last)

    def record(self, trial_id: str, step: float, value: float) -> None:
        """A report of ``trial_id``; a NaN or infinite value is not counted (W&B filters it out)."""
        if not math.isfinite(value):
            return
        self.add(trial_id)
        steps, values, best = self._steps[trial_id], self._values[trial_id], self._best[trial_id]
        while steps and steps[-1] >= step:  # continued from an earlier step: its later reports are gone
            if len(values) in self._is_band:
                at = self._at[len(values)]
                del at[bisect_left(at, values[-1])]  # equal values are interchangeable
            steps.pop(), values.pop(), best.pop()
        signed = self._sign * value
        steps.append(step)
        values.append(signed)
        best.append(min(best[-1], signed) if best else signed)
        if len(values) in self._is_band:
            insort(self._at[len(values)], signed)

    def judge(self, trial_id: str) -> bool:
        """W&B's verdict on a running trial now: ``True``, stop it."""
        count = len(self._values.get(trial_id, ()))
        k = bisect_right(self.bands, count) - 1
        if k < 0:
            return False  # no band reached yet
        band = self.bands[k]
        at = self._at[band]
        threshold = at[int(self._r * len(at))]
        mine = self._values[trial_id][band - 1] if self._strict else self._best[trial_id][-1]
        return mine > threshold

    def threshold(self, band: int) -> float | None:
        """The value a trial must not be worse than at ``band``, as reported (``None``: no trial there)."""
        at = self._at.get(band)
        return None if not at else self._sign * at[int(self._r * len(at))]

    def reached(self, band: int) -> int:
        """How many trials have reported ``band`` times."""
        return len(self._at.get(band, ()))
