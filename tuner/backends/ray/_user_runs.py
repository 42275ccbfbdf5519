"""Runs a trainable opened in its own tracking library and left open when its trial ended.

A trainable that calls ``mlflow.log_metric`` (or Ray's ``setup_mlflow``) opens an MLflow run on
the thread it runs on, and MLflow ends a run only when its code does (``mlflow.end_run``, a
``with`` block) or when the process exits. A trial's thread ends long before its worker process
does, and a worker runs one trial after another: its runs would stay ``RUNNING`` for good. When a
trial ends, the runs it left active on its thread are ended here, ``FINISHED``, or ``FAILED``
when the trial raised, as MLflow ends the run of a script that returns or raises.
"""

from __future__ import annotations

import contextlib
import sys


def end_user_runs(failed: bool) -> None:
    """End the MLflow runs still active on this thread (innermost first); nothing when the
    trainable never imported MLflow."""
    mlflow = sys.modules.get("mlflow")
    if mlflow is None:
        return
    with contextlib.suppress(Exception):  # the trial's own end must not hang on a tracking server
        for _ in range(100):  # nested runs: each end_run ends the innermost
            if mlflow.active_run() is None:
                return
            mlflow.end_run(status="FAILED" if failed else "FINISHED")
