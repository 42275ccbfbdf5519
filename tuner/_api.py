"""The Python entry point behind ``python -m tuner run``."""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tuner.config import Study, load_study
from tuner.results import new_study_dir

if TYPE_CHECKING:
    from tuner.execution import Outcomes


def run(
    study: str | os.PathLike[str] | Study,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    dashboard: bool | None = None,
    temp_dir: str | None = None,
    seed: int | None = None,
    quiet: bool = False,
    say: Callable[[str], None] | None = None,
) -> Outcomes:
    """Run a study (a YAML path or a loaded :class:`Study`) and return its outcomes.

    Joins the Ray at ``address`` (or ``RAY_ADDRESS``), else starts an embedded one and shuts
    it down at the end.
    """
    from tuner.execution import connect, execute

    if say is None:

        def say(msg: str) -> None:
            if not quiet:
                print(msg, file=sys.stderr, flush=True)

    if not isinstance(study, Study):
        study = load_study(study)
    for notice in study.notices:
        say(notice)
    if seed is None:
        seed = study.spec.seed if study.spec.seed is not None else random.SystemRandom().randrange(2**31)
    conn = connect(address, num_cpus=num_cpus, dashboard=dashboard, temp_dir=temp_dir)
    try:
        if conn.dashboard_url:
            say(f"Ray dashboard: {conn.dashboard_url}")
        storage = Path(study.spec.storage).resolve()
        return execute(study, seed, lambda: new_study_dir(storage, study.name), say, quiet=quiet)
    finally:
        if conn.started_here:
            conn.close()
