"""A results folder's ``study.yaml`` (the study as it ran, with its name and seed) as a :class:`Study`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from tuner.config import Study, load_study
from tuner.errors import UserError
from tuner.results._store import STUDY


def read_study(
    folder: str | os.PathLike[str],
    *,
    trainable: str | None = None,
    allow_modules: Sequence[str] = (),
    check_import: bool = True,
) -> Study:
    """The study a results folder ran, read and validated once; ``trainable`` replaces its trainable
    (a moved module), ``check_import=False`` leaves the trainable unimported (a report)."""
    path = Path(folder) / STUDY
    if not path.is_file():
        raise UserError(f"{folder}: not a tuner results folder (no {STUDY})")
    return load_study(path, trainable=trainable, check_import=check_import, allow_modules=allow_modules)
