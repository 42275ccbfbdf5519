"""A W&B sweep file's ``program`` (or its ``command`` alone) as the study's trial, when no
trainable is given.

W&B's agent starts ``program`` for every run with the file's ``command`` (default
``${env} ${interpreter} ${program} ${args}``); a file with a ``command`` and no ``program``
(``python -m package.train ${args}``) runs that command. Here the trainable :data:`RUNNER`
(:mod:`tuner.integrations.wandb`) does the same inside the trial's process; what it needs of the
study reaches every trial process, on any node, as one environment variable, :data:`SETTINGS`.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

from tuner.errors import Problem

RUNNER = "tuner.integrations.wandb:train"
SETTINGS = "TUNER_WANDB_PROGRAM"  # JSON: program, command, cwd, project, entity, study
EXTRA = "pip install 'tuner[wandb]'"
# The keys W&B's agent reads to start a run, used here when the file's program is the trial.
PROGRAM_KEYS = ("program", "command", "project", "entity")
# The macros of W&B's agent (wandb/sdk/launch/sweeps/utils.py::create_sweep_command_args, and
# wandb_agent.py for env, interpreter, program, args_json_file); ${envvar:NAME} is an
# environment variable.
MACROS = (
    "env",
    "interpreter",
    "program",
    "args",
    "args_no_equals",
    "args_no_hyphens",
    "args_no_boolean_flags",
    "args_json",
    "args_json_file",
    "args_append_hydra",
    "args_override_hydra",
)
DEFAULT_COMMAND = ("${env}", "${interpreter}", "${program}", "${args}")
_MACRO = re.compile(r"^\$\{(\w+)\}$")


def runs_program(data: dict[str, Any], trainable: str | None) -> bool:
    """Whether the study's trial is the file's W&B ``program`` (or ``command``): it has one and no
    trainable is given."""
    if trainable is not None or data.get("trainable") is not None:
        return False
    return data.get("program") is not None or data.get("command") is not None


def resolve_program(data: dict[str, Any], source: Path | None, check: bool = True) -> list[Problem]:
    """Check ``program`` and ``command`` in ``data`` and make ``program`` an absolute path, in place.

    A relative ``program`` is looked up in the working folder first (where W&B's agent runs it),
    then next to the study file. ``check=False`` leaves a path that is not there as it is (the
    results of a study read on another machine).
    """
    problems: list[Problem] = []
    program = data.get("program")
    if program is None:  # the command alone: it names what it runs
        problems += _check_command(data.get("command"), program=False)
    elif not isinstance(program, str) or not program.strip():
        return [Problem("program", f"must be the path of a script, got {program!r}")]
    else:
        where = [Path.cwd()] + ([source.parent.resolve()] if source is not None else [])
        found = next((folder / program for folder in where if (folder / program).is_file()), None)
        if found is not None:
            data["program"] = str(found.resolve())
        elif check:
            places = " or ".join(str(folder) for folder in dict.fromkeys(where))
            problems.append(Problem("program", f"no file {program!r} in {places} (or pass the function: --trainable)"))
        problems += _check_command(data.get("command"))
    for key in ("project", "entity"):
        if data.get(key) is not None and not isinstance(data[key], str):
            problems.append(Problem(key, f"must be a name, got {data[key]!r}"))
    if check and importlib.util.find_spec("wandb") is None:
        problems.append(Problem("program", f"runs a W&B script, which needs the wandb package: {EXTRA}"))
    return problems


def _check_command(command: Any, program: bool = True) -> list[Problem]:
    if command is None:
        return []
    if not isinstance(command, list) or not command:
        return [Problem("command", f"must be a list of the command's parts, got {command!r}")]
    problems = []
    for i, part in enumerate(command):
        if not isinstance(part, str | int | float) or isinstance(part, bool):
            problems.append(Problem(f"command[{i}]", f"must be a string, got {part!r}"))
        elif (m := _MACRO.match(str(part))) and m.group(1) not in MACROS:
            known = ", ".join("${" + name + "}" for name in MACROS)
            problems.append(Problem(f"command[{i}]", f"unknown macro {part!r}; W&B's macros: {known}"))
        elif not program and m and m.group(1) == "program":
            problems.append(Problem(f"command[{i}]", "${program} needs the file's program, and it has none"))
    return problems


def program_problems(spec: Any) -> list[Problem]:
    """What a study whose trial is a W&B program cannot do (``spec``: its StudySpec)."""
    problems = []
    if spec.backend != "ray":
        problems.append(Problem("backend", f"a W&B program runs on backend ray, not {spec.backend}"))
    if spec.resources.workers > 1:
        problems.append(
            Problem(
                "resources.workers",
                "a W&B program is one process per trial (workers: 1); its command may start more",
            )
        )
    return problems


def program_settings(raw: dict[str, Any], study: str) -> dict[str, str]:
    """The environment every trial process of a program study gets (see :data:`SETTINGS`)."""
    settings = {
        "program": raw.get("program"),
        "command": [str(part) for part in raw.get("command") or DEFAULT_COMMAND],
        "cwd": str(Path.cwd()),
        "project": raw.get("project"),
        "entity": raw.get("entity"),
        "study": study,
    }
    return {SETTINGS: json.dumps(settings)}
