"""What ``tuner.load`` returns: a study's or a Ray Tune experiment's trials, asked the way Ray
Tune's ``ExperimentAnalysis`` is asked (``get_best_trial``, ``get_best_config``,
``get_best_checkpoint``, ``dataframe``) and answering as it does.

Every answer follows Ray 2.60's rules: the scopes ``all``, ``last``, ``avg``, ``last-5-avg`` and
``last-10-avg`` over each trial's recorded figures, NaN and infinite scores left out unless
asked, ties to the earlier trial, ``None`` (and a logged warning) when no trial has the metric,
and the same errors for a missing metric or mode or an unknown scope. Unlike tuner's own best
(``best.yaml``), nothing here prefers trials that ran to the full budget.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from tuner.errors import ResultsError, ResultsMissing
from tuner.results._checkpoint import Checkpoint
from tuner.results._scopes import MODES, SCOPES, best_of, flat, flat_in_rays_order, lookup
from tuner.status import FAILED, SCORED

logger = logging.getLogger(__name__)
DEFAULT_METRIC = "_metric"  # Ray's name for the metric when only a mode was given
TRAINING_ITERATION = "training_iteration"
ERROR, TERMINATED = "ERROR", "TERMINATED"  # a Tune trial's failed and ended statuses


class TrialError(Exception):
    """A failed trial's error as a Ray ``Result.error`` is one: an exception whose message is the
    whole error as the run recorded it (the traceback, ending with the exception's line), as
    ``str(RayTaskError)`` is. ``line`` is that last line (``ValueError: ...``, the ``error`` column
    of ``trials.parquet``); the error equals either string. Where that line names a built-in
    exception, the error is an instance of it too and ``cause`` is one, as Ray's
    ``RayTaskError`` is an instance of its cause's class (``except ValueError`` catches it)."""

    line: str
    cause: BaseException | None

    def __new__(cls, text: str = "", line: str | None = None) -> TrialError:
        line = _last_line(text) if line is None else line
        kind = _builtin(line)
        made = _with(kind) if cls is TrialError and kind is not None else cls
        return super().__new__(made)

    def __init__(self, text: str = "", line: str | None = None) -> None:
        Exception.__init__(self, text.strip())  # not the built-in's own, which may want more
        self.line = _last_line(text) if line is None else line
        self.cause = _cause(self.line)

    def __str__(self) -> str:  # a KeyError's own would quote it
        return str(self.args[0]) if self.args else ""

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TrialError | str):
            return str(other) in (str(self), self.line)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.line)

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return TrialError, (str(self), self.line)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _builtin(line: str) -> type[Exception] | None:
    """The built-in exception class a traceback's last line names (``ValueError: ...``)."""
    import builtins

    name = line.partition(":")[0].strip()
    kind = getattr(builtins, name, None) if name.isidentifier() else None
    warning = isinstance(kind, type) and issubclass(kind, Warning)
    return kind if isinstance(kind, type) and issubclass(kind, Exception) and not warning else None


def _cause(line: str) -> BaseException | None:
    kind = _builtin(line)
    try:
        return None if kind is None else kind(line.partition(":")[2].strip())
    except TypeError:  # one that takes other arguments (an exception group)
        return None


_KINDS: dict[type[Exception], type[TrialError]] = {}


def _with(kind: type[Exception]) -> type[TrialError]:
    """``TrialError`` that is also a ``kind`` (as Ray names it: ``RayTaskError(ValueError)``)."""
    if kind not in _KINDS:
        try:
            made = type(f"TrialError({kind.__name__})", (TrialError, kind), {"__module__": __name__})
            Exception.__new__(made)  # refused where the built-in makes its own (OSError's family)
        except TypeError:
            made = TrialError
        _KINDS[kind] = made
    return _KINDS[kind]


@dataclass(repr=False)
class TrialResult:
    """One trial as :class:`Analysis` returns it.

    ``metrics`` is the last result it reported (Ray's ``last_result``, also under that name),
    ``metric_history`` every result as a DataFrame, ``checkpoint`` its latest checkpoint (a
    path, ``None`` without one; a :class:`Checkpoint`, a ``str`` that also has Ray's
    ``as_directory()``, ``to_directory()`` and ``path``), ``status`` as its run recorded it (Ray's ``TERMINATED`` or
    ``ERROR``; tuner's ``finished``, ``pruned``, ...), ``path`` its folder (a Tune trial's own;
    a tuner study's results folder). ``metric_analysis`` holds each metric's figures by scope,
    ``checkpoints`` the kept checkpoints with the result each was reported with.
    """

    trial_id: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    metric_history: pd.DataFrame
    checkpoint: Checkpoint | str | None
    status: str
    path: str
    metric_analysis: dict[str, dict[str, Any]] = field(default_factory=dict)
    checkpoints: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    error: TrialError | str | None = None

    @property
    def last_result(self) -> dict[str, Any]:
        return self.metrics

    @property
    def metrics_dataframe(self) -> pd.DataFrame:  # a Ray ``Result``'s name
        return self.metric_history

    @property
    def best_checkpoints(self) -> list[tuple[Checkpoint, dict[str, Any]]]:
        """A Ray ``Result``'s name for :attr:`checkpoints`: each kept checkpoint with its result,
        in the order Ray returns them."""
        return list(self.checkpoints)  # type: ignore[arg-type]

    @property
    def filesystem(self) -> Any:
        """The ``pyarrow.fs`` filesystem of :attr:`path` (a local one), as a Ray ``Result``'s."""
        from pyarrow import fs

        return fs.LocalFileSystem()

    def get_best_checkpoint(self, metric: str, mode: str) -> Checkpoint | None:
        """The kept checkpoint whose result is best on ``metric`` (``mode`` ``min`` or ``max``),
        as Ray's ``Result.get_best_checkpoint`` picks it: checkpoints whose result lacks the
        metric are left out; an error when the trial kept none or none has the metric."""
        if not self.checkpoints:
            raise ResultsMissing(f"{self.trial_id}: no checkpoint was kept for this trial")
        if mode not in MODES:
            raise ResultsError(f'Unsupported mode: {mode}. Please choose from ["min", "max"]!')
        valid = [(c, _value(metric, r)) for c, r in self.checkpoints]
        valid = [(c, v) for c, v in valid if v is not None]
        if not valid:
            raise ResultsMissing(
                f"Invalid metric name {metric}! You may choose from the following metrics: {list(self.metrics)}."
            )
        pick = max if mode == "max" else min
        return pick(valid, key=lambda cv: cv[1])[0]  # type: ignore[return-value]

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], trial_id: str | None = None) -> TrialResult:
        """One trial, as Ray's ``Result.from_path(path)`` reads it: ``path`` is a Ray Tune trial's
        folder, or a tuner results folder with ``trial_id`` naming the trial (needed unless the
        study ran a single trial: its trials share the folder)."""
        from tuner.results._load import load_trial

        return load_trial(path, trial_id)

    def __post_init__(self) -> None:  # paths that also answer as Ray's Checkpoint (as_directory, ...)
        if isinstance(self.error, str):  # an exception, as a Ray Result's error is
            self.error = TrialError(self.error)
        if isinstance(self.checkpoint, str) and not isinstance(self.checkpoint, Checkpoint):
            self.checkpoint = Checkpoint(self.checkpoint)
        self.checkpoints = [(p if isinstance(p, Checkpoint) else Checkpoint(p), r) for p, r in self.checkpoints]

    def __repr__(self) -> str:
        return f"TrialResult({self.trial_id}, {self.status}, config={self.config})"


def _value(metric: str, result: dict[str, Any]) -> Any:
    try:
        return lookup(metric, result)
    except (KeyError, IndexError, ValueError, TypeError):
        return None


class Analysis:
    """The trials of one run, with Ray Tune's ``ExperimentAnalysis`` methods.

    ``default_metric`` and ``default_mode`` (``min`` or ``max``) are what a method uses when it
    is given none: a tuner study's metric and goal, a Tune experiment's ``TuneConfig``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        trials: list[TrialResult],
        default_metric: str | None = None,
        default_mode: str | None = None,
    ) -> None:
        if default_mode and default_mode not in MODES:
            raise ResultsError("`default_mode` has to be None or one of [min, max]")
        self.experiment_path = str(path)
        self.trials = list(trials)
        self.default_metric = default_metric or (DEFAULT_METRIC if default_mode else None)
        self.default_mode = default_mode

    def __repr__(self) -> str:
        return (
            f"Analysis({self.experiment_path!r}, {len(self.trials)} trials, "
            f"metric={self.default_metric!r}, mode={self.default_mode!r})"
        )

    # -- the trials, as a ResultGrid holds them -----------------------------------------------

    def __len__(self) -> int:
        return len(self.trials)

    def __getitem__(self, i: int) -> TrialResult:
        return self.trials[i]

    def __iter__(self) -> Iterator[TrialResult]:
        return iter(self.trials)

    @property
    def filesystem(self) -> Any:
        """The ``pyarrow.fs`` filesystem of :attr:`experiment_path` (a local one)."""
        from pyarrow import fs

        return fs.LocalFileSystem()

    @property
    def errors(self) -> list[TrialError]:
        """The errors of the trials that failed (each a :class:`TrialError`, an exception)."""
        return [t.error for t in self.trials if isinstance(t.error, TrialError)]

    @property
    def num_errors(self) -> int:
        """How many trials failed: Tune's ``ERROR``; tuner's ``errored``, ``nan`` and ``oom``."""
        return sum(t.status == ERROR or t.status in FAILED for t in self.trials)

    @property
    def num_terminated(self) -> int:
        """How many trials ended without failing: Tune's ``TERMINATED``; tuner's ``finished``,
        ``pruned`` and ``stopped``."""
        return sum(t.status == TERMINATED or t.status in SCORED for t in self.trials)

    @property
    def results_df(self) -> pd.DataFrame:
        """Each trial's last result, nested keys joined by ``/``, indexed by ``trial_id``."""
        return pd.DataFrame.from_records(
            [{"trial_id": t.trial_id, **flat_in_rays_order(t.metrics)} for t in self.trials], index="trial_id"
        )

    @property
    def trial_dataframes(self) -> dict[str, pd.DataFrame]:
        """Each trial's results, by trial id."""
        return {t.trial_id: t.metric_history for t in self.trials}

    @property
    def results(self) -> dict[str, dict[str, Any]]:
        """Each trial's last result, by trial id."""
        return {t.trial_id: t.metrics for t in self.trials}

    def get_all_configs(self, prefix: bool = False) -> dict[str, dict[str, Any]]:
        """Each trial's configuration, by trial id; ``prefix``: flat, keys ``config/<name>``."""
        return {t.trial_id: flat({"config": t.config}) if prefix else t.config for t in self.trials}

    def _trial(self, trial: TrialResult | str) -> TrialResult:
        if isinstance(trial, TrialResult):
            return trial
        for t in self.trials:
            if t.trial_id == trial:
                return t
        raise ResultsError(f"no trial {trial!r} in {self.experiment_path}")

    # -- the best ---------------------------------------------------------------------------

    def get_best_trial(
        self,
        metric: str | None = None,
        mode: str | None = None,
        scope: str = "last",
        filter_nan_and_inf: bool = True,
    ) -> TrialResult | None:
        """The best trial on ``metric`` (``mode`` ``min`` or ``max``) under ``scope``: ``last``
        compares each trial's last value, ``avg`` the mean of all its values, ``last-5-avg`` and
        ``last-10-avg`` the mean of its last 5 or 10, ``all`` its best value (its min or max by
        ``mode``). With ``filter_nan_and_inf``, a NaN or infinite score never wins. Ties go to
        the earlier trial; ``None`` when no trial has the metric. A run of one trial returns
        that trial whatever is asked, as Ray does."""
        if len(self.trials) == 1:
            return self.trials[0]
        metric = self._validate_metric(metric)
        mode = self._validate_mode(mode)
        if scope not in SCOPES:
            raise ResultsError(
                f"attempting to get best trial for metric {metric} for scope {scope} not in "
                '["all", "last", "avg", "last-5-avg", "last-10-avg"]. If you didn\'t pass a `metric` '
                "when the run started, you have to pass one when fetching the best trial."
            )
        best = best_of([t.metric_analysis for t in self.trials], metric, mode, scope, filter_nan_and_inf)
        if best is None:
            logger.warning("Could not find best trial. Did you pass the correct `metric` parameter?")
            return None
        return self.trials[best]

    def get_best_result(
        self,
        metric: str | None = None,
        mode: str | None = None,
        scope: str = "last",
        filter_nan_and_inf: bool = True,
    ) -> TrialResult:
        """:meth:`get_best_trial` as Ray's ``ResultGrid.get_best_result`` asks it: an error
        rather than ``None`` when no trial has the metric."""
        if len(self.trials) != 1:
            self._validate_metric(metric)
            self._validate_mode(mode)
        best = self.get_best_trial(metric, mode, scope, filter_nan_and_inf)
        if best is None:
            nan = ", or all its values are NaN (pass filter_nan_and_inf=False to count them)"
            raise ResultsError(
                f"No best trial found for the given metric: {metric or self.default_metric}. "
                f"No trial has reported this metric{nan if filter_nan_and_inf else ''}."
            )
        return best

    def get_best_config(
        self, metric: str | None = None, mode: str | None = None, scope: str = "last"
    ) -> dict[str, Any] | None:
        """The configuration of :meth:`get_best_trial`'s trial, ``None`` when there is none."""
        best = self.get_best_trial(metric, mode, scope)
        return best.config if best else None

    def get_best_checkpoint(
        self, trial: TrialResult | str, metric: str | None = None, mode: str | None = None
    ) -> str | None:
        """The path of the trial's kept checkpoint whose result was best on ``metric`` (default:
        the default metric, else ``training_iteration``), NaN left out; ``None`` without one."""
        metric = metric or self.default_metric or TRAINING_ITERATION
        mode = self._validate_mode(mode)
        record = self._trial(trial)
        scored = []
        for path, result in record.checkpoints:
            try:
                scored.append((path, lookup(metric, result)))
            except (KeyError, IndexError, ValueError):
                raise ResultsError(f"{metric}: not in the result of checkpoint {path}") from None
        scored = [(p, v) for p, v in scored if not (isinstance(v, float) and math.isnan(v))]
        if not scored:
            logger.error(f"No checkpoints have been found for trial {record.trial_id}.")
            return None
        factor = -1 if mode == "min" else 1
        return max(scored, key=lambda pv: factor * pv[1])[0]

    def get_last_checkpoint(
        self, trial: TrialResult | str | None = None, metric: str = TRAINING_ITERATION, mode: str = "max"
    ) -> str | None:
        """The trial's checkpoint of the highest ``training_iteration`` (without ``trial``, of the
        best trial on ``metric`` and ``mode``)."""
        found = trial or self.get_best_trial(metric, mode)
        return None if found is None else self.get_best_checkpoint(found, TRAINING_ITERATION, "max")

    # -- tables -----------------------------------------------------------------------------

    def dataframe(self, metric: str | None = None, mode: str | None = None) -> pd.DataFrame:
        """One row per trial that reported: its last result, or with ``metric`` and ``mode`` the
        result where ``metric`` was lowest (``min``) or highest (``max``), and its configuration
        as ``config/<name>`` columns. The defaults are not used here, as in Ray."""
        if mode and mode not in MODES:
            raise ResultsError("If set, `mode` has to be one of [min, max]")
        if mode and not metric:
            raise ResultsError("If a `mode` is passed, you'll also have to pass a `metric`!")
        rows: dict[str, dict[str, Any]] = {}
        for trial in self.trials:
            df = trial.metric_history
            if df.empty:
                continue
            idx: Any = -1
            if metric in df and mode == "max":
                idx = df[metric].idxmax()
            elif metric in df and mode == "min":
                idx = df[metric].idxmin()
            try:
                rows[trial.trial_id] = df.iloc[idx].to_dict()
            except TypeError:  # idx is NaN
                logger.warning(f"Warning: Non-numerical value(s) encountered for {trial.trial_id}")
        for trial_id, config in self.get_all_configs(prefix=True).items():
            if trial_id in rows:
                rows[trial_id].update(config)
                rows[trial_id].update(logdir=trial_id)
        return pd.DataFrame(list(rows.values()))

    def get_dataframe(self, filter_metric: str | None = None, filter_mode: str | None = None) -> pd.DataFrame:
        """:meth:`dataframe` under Ray's ``ResultGrid`` names."""
        return self.dataframe(metric=filter_metric, mode=filter_mode)

    # -- with the default metric and mode ---------------------------------------------------

    def _defaults(self, what: str) -> None:
        if not self.default_metric or not self.default_mode:
            raise ResultsError(
                f"To fetch the `{what}`, the run must have a metric and mode (a Tune experiment's "
                "TuneConfig); otherwise pass `metric` and `mode` to get_best_trial and the like"
            )

    @property
    def best_trial(self) -> TrialResult | None:
        self._defaults("best_trial")
        return self.get_best_trial(self.default_metric, self.default_mode)

    @property
    def best_config(self) -> dict[str, Any] | None:
        self._defaults("best_config")
        return self.get_best_config(self.default_metric, self.default_mode)

    @property
    def best_checkpoint(self) -> str | None:
        self._defaults("best_checkpoint")
        best = self.best_trial
        if not best:
            raise ResultsError(
                f"No best trial found. Please check if you specified the correct default metric "
                f"({self.default_metric}) and mode ({self.default_mode})."
            )
        return self.get_best_checkpoint(best, self.default_metric, self.default_mode)

    @property
    def best_dataframe(self) -> pd.DataFrame:
        self._defaults("best_dataframe")
        best = self.best_trial
        if best is None:
            raise ResultsError(f"no trial reported {self.default_metric}")
        return best.metric_history

    @property
    def best_result_df(self) -> pd.DataFrame:
        """:attr:`best_result` as a one-row DataFrame indexed by ``trial_id``."""
        return pd.DataFrame.from_records([flat_in_rays_order(self.best_result)], index="trial_id")

    @property
    def best_result(self) -> dict[str, Any]:
        self._defaults("best_result")
        best = self.best_trial
        if best is None:
            raise ResultsError(f"no trial reported {self.default_metric}")
        return best.metrics

    def _validate_metric(self, metric: str | None) -> str:
        if not metric and not self.default_metric:
            raise ResultsError(
                "No `metric` has been passed and `default_metric` has not been set. "
                "Please specify the `metric` parameter."
            )
        return metric or self.default_metric  # type: ignore[return-value]

    def _validate_mode(self, mode: str | None) -> str:
        if not mode and not self.default_mode:
            raise ResultsError(
                "No `mode` has been passed and `default_mode` has not been set. Please specify the `mode` parameter."
            )
        if mode and mode not in MODES:
            raise ResultsError("If set, `mode` has to be one of [min, max]")
        return mode or self.default_mode  # type: ignore[return-value]
