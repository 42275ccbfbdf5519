"""The ``tracking:`` block of a study file: where the driver also writes the study's runs.

Each key names a tracker (:mod:`tuner.tracking`); one whose library is not installed is refused
here, when the file is read, with the extra that installs it.
"""

from __future__ import annotations

import importlib.util
import os
import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class MlflowOptions(_Options):
    """One parent run for the study and a child run per trial.

    ``tracking_uri``: MLflow's store (``sqlite:///mlflow.db``, ``http://host:5000``, ...); default
    MLflow's own (``MLFLOW_TRACKING_URI``). ``experiment``: default the study's name."""

    tracking_uri: str | None = Field(default=None, min_length=1)
    experiment: str | None = Field(default=None, min_length=1)

    @field_validator("tracking_uri")
    @classmethod
    def _not_a_refused_file_store(cls, v: str | None, info: ValidationInfo) -> str | None:
        """A folder (``./mlruns``, ``file:///...``: MLflow's file store, which Ray's
        ``MLflowLoggerCallback`` examples pass) is refused by MLflow 3 unless
        ``MLFLOW_ALLOW_FILE_STORE`` is true: said here rather than by a tracker that stops at the
        study's first write. Not for a study read for its results (``check_import=False``): they
        are read in whatever environment, the variable set or not."""
        if (info.context or {}).get("check_import") is False:
            return v
        if v is None or not _file_store(v) or not _file_store_refused():
            return v
        raise ValueError(
            f"{v} is MLflow's file store, which this MLflow refuses unless MLFLOW_ALLOW_FILE_STORE=true; "
            "use a SQLite store (sqlite:///mlflow.db) or set that variable"
        )


class WandbOptions(_Options):
    """A W&B run per trial, grouped by the study. ``dir``: where W&B keeps its files (default
    the study's results folder)."""

    project: str = Field(min_length=1)
    entity: str | None = Field(default=None, min_length=1)
    mode: Literal["online", "offline", "disabled"] = "online"
    dir: str | None = Field(default=None, min_length=1)
    tags: list[str] = Field(default_factory=list)


class TensorboardOptions(_Options):
    """A TensorBoard run per trial under ``dir``, written as the study runs."""

    dir: str = Field(min_length=1)


def _file_store(uri: str) -> bool:
    if uri in ("databricks", "databricks-uc", "uc"):  # MLflow's names of hosted stores, not paths
        return False
    scheme = urlsplit(uri).scheme
    return scheme in ("", "file") or len(scheme) == 1  # a path (a Windows drive's letter too)


def _file_store_refused() -> bool:
    """Whether the installed MLflow refuses its file store as the environment stands now."""
    if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").strip().lower() in ("true", "1"):
        return False
    if importlib.util.find_spec("mlflow") is None:  # said by the tracking block's own check
        return False
    try:
        from mlflow import environment_variables
    except Exception:  # an MLflow that cannot be imported fails the study where it is used
        return False
    return hasattr(environment_variables, "MLFLOW_ALLOW_FILE_STORE")


# tracker -> (the module it imports, the extra that installs it)
EXTRAS = {"mlflow": ("mlflow", "mlflow"), "wandb": ("wandb", "wandb"), "tensorboard": ("tensorboardX", None)}


class TrackingOptions(_Options):
    """The trackers a study writes to (any of them, or none)."""

    mlflow: MlflowOptions | None = None
    wandb: WandbOptions | None = None
    tensorboard: TensorboardOptions | None = None
    # Ray Tune callbacks (``ray.tune.Callback`` instances, classes or LoggerCallbacks), pkg.module:name each
    callbacks: list[str] = Field(default_factory=list)

    @field_validator("callbacks")
    @classmethod
    def _dotted(cls, v: list[str]) -> list[str]:
        for name in v:
            if not re.fullmatch(r"[A-Za-z_][\w.]*[:.][A-Za-z_]\w*", name):
                raise ValueError(f"each must be a dotted path 'package.module:name', got {name!r}")
        return v

    @field_validator("mlflow", "wandb", "tensorboard")
    @classmethod
    def _installed(cls, v: _Options | None, info: ValidationInfo) -> _Options | None:
        module, extra = EXTRAS[str(info.field_name)]
        if v is not None and importlib.util.find_spec(module) is None:
            how = f"pip install 'tuner[{extra}]'" if extra else f"pip install {module}"
            raise ValueError(f"needs {module}, which is not installed: {how}")
        return v

    @property
    def names(self) -> list[str]:
        """The trackers given, in a fixed order."""
        return [name for name in EXTRAS if getattr(self, name) is not None] + (["callbacks"] if self.callbacks else [])
