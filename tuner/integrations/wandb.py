"""A W&B sweep file's ``program`` as the trial: the script runs unchanged, offline.

A study file with ``program`` and no trainable runs :func:`train` as its trainable. For each
trial it starts the file's ``command`` as W&B's agent does (``wandb/wandb_agent.py``): the
trial's configuration in ``WANDB_SWEEP_PARAM_PATH`` (so ``wandb.config`` holds it, locked as
a sweep's is) and on the command line (``${args}`` and the other macros), the run's id in
``WANDB_RUN_ID``. W&B runs in offline mode, its files in ``wandb/`` of the trial's checkpoint folder.

A file with a ``command`` and no ``program`` runs that command.

A small ``sitecustomize`` (``_wandb_site/``, on the script's ``PYTHONPATH``) wraps
``wandb.Run`` so that every history row the script commits, with W&B's ``_step``, is
appended to a file that :func:`train` follows and turns into ``trial.report``. When the
scheduler prunes the trial, ``trial.report`` raises and the script's process group gets
SIGTERM, then SIGKILL. A script that exits with a non-zero code fails the trial with its last
lines on stderr. The ``wandb`` package is needed where trials run (``pip install 'tuner[wandb]'``),
and never imported by this module.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tuner.config import PROGRAM_SETTINGS, WANDB_EXTRA
from tuner.storage import is_remote
from tuner.trial import Trial

__all__ = ["ProgramFailed", "command_line", "train"]

HOOK = Path(__file__).resolve().with_name("_wandb_site")  # the child's sitecustomize
EVENTS = "TUNER_WANDB_EVENTS"  # where the child appends its history rows, one JSON line each
PARENT = "TUNER_WANDB_PARENT"  # the pid the child watches: it ends itself when that is gone
SWEEP = "TUNER_WANDB_SWEEP"  # the study's name: what wandb.sweep returns in the child
POLL_S = 0.05
TERM_S = 10.0  # SIGTERM to SIGKILL (W&B's agent waits 30 s)
EXIT_S = 10.0  # a crashed program's main process: from its traceback to its end, children or not
TAIL = 20  # the script's last stderr lines kept for a failure's message
RESERVED = ("step", "checkpoint")  # names trial.report takes itself: not recorded as metrics
_ENVVAR = re.compile(r"\$\{envvar:([A-Z0-9_]*)\}")  # W&B's SWEEP_COMMAND_ENV_VAR_REGEX


class ProgramFailed(RuntimeError):
    """The program exited with a non-zero code; the message ends with its last stderr line."""


def train(config: dict[str, Any], trial: Trial) -> None:
    """Run the study's W&B program once with ``config``; its logged rows become reports."""
    import importlib.util

    settings = json.loads(os.environ.get(PROGRAM_SETTINGS) or "null")
    if not isinstance(settings, dict):
        raise RuntimeError(f"{PROGRAM_SETTINGS} is not set: this trainable runs a study file's W&B program")
    if importlib.util.find_spec("wandb") is None:
        raise ImportError(f"the wandb package is not installed where this trial runs: {WANDB_EXTRA}")
    folder = _folder(trial)
    sweep = folder / "wandb" / f"sweep-{settings['study']}"  # where W&B's agent writes a run's configuration
    sweep.mkdir(parents=True, exist_ok=True)
    params = sweep / f"config-{trial.trial_id}.yaml"
    _write_params(params, config)
    args_file = sweep / f"config-{trial.trial_id}.json"
    handle, events_name = tempfile.mkstemp(prefix="events-", suffix=".jsonl", dir=sweep)
    os.close(handle)
    events = Path(events_name)
    env = _child_env(settings, trial, folder, params, events)
    command = command_line(settings["command"], settings["program"], config, str(args_file), env)
    if "${args_json_file}" in settings["command"]:
        args_file.write_text(json.dumps(_plain(config)), encoding="utf-8")
    program = settings.get("program")
    cwd = settings["cwd"] if Path(settings["cwd"]).is_dir() else (str(Path(program).parent) if program else None)
    proc = subprocess.Popen(
        command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    tail: collections.deque[str] = collections.deque(maxlen=TAIL)
    relay = threading.Thread(target=_relay, args=(proc.stderr, tail), daemon=True, name=f"stderr-{trial.trial_id}")
    relay.start()
    try:
        _follow(proc, events, trial)
    finally:
        _end(proc)
        relay.join(timeout=TERM_S)
        events.unlink(missing_ok=True)
    if proc.returncode != 0:
        lines = [line for line in tail if line.strip()]
        last = lines[-1].strip() if lines else "(nothing on stderr)"
        name = Path(program).name if program else " ".join(p for p in settings["command"] if "${" not in p)
        raise ProgramFailed("\n".join([*lines, f"{name} exited with code {proc.returncode}: {last}"]))


def command_line(
    command: list[str], program: str | None, config: Mapping[str, Any], args_file: str, env: Mapping[str, str]
) -> list[str]:
    """The program's command with W&B's macros filled in, as its agent does: ``${env}`` is
    ``/usr/bin/env``, ``${interpreter}`` the Python that runs tuner, ``${program}`` the program's
    path, ``${args}`` ``--name=value`` for each parameter (``str(value)``), ``${args_json}``
    the configuration as JSON, ``${args_json_file}`` a file that holds it; ``${envvar:NAME}`` is
    ``env``'s ``NAME`` (``NAME`` itself when unset)."""
    values = _macros(config)
    values.update(
        env=["/usr/bin/env"] if os.name == "posix" else [],
        interpreter=[sys.executable],
        program=[program] if program else [],
        args_json_file=[args_file],
    )
    out: list[str] = []
    for part in command:
        text = _ENVVAR.sub(lambda m: env.get(m.group(1), m.group(1)), str(part))
        if text.startswith("${") and text.endswith("}"):
            out += values.get(text[2:-1], [])
        else:
            out.append(text)
    return out


def _macros(config: Mapping[str, Any]) -> dict[str, list[str]]:
    """``create_sweep_command_args`` of W&B's sweeps, for ``config``."""
    out: dict[str, list[str]] = collections.defaultdict(list)
    plain = _plain(config)
    for name, value in plain.items():
        flag = f"{name}={value}"
        out["args"].append(f"--{flag}")
        out["args_no_hyphens"].append(flag)
        out["args_no_equals"] += [f"--{name}", str(value)]
        out["args_append_hydra"].append(f"+{flag}")
        out["args_override_hydra"].append(f"++{flag}")
        if not isinstance(value, bool):
            out["args_no_boolean_flags"].append(f"--{flag}")
        elif value:
            out["args_no_boolean_flags"].append(f"--{name}")
    out["args_json"] = [json.dumps(plain)]
    return dict(out)


def _plain(value: Any) -> Any:
    """Plain Python values (numpy scalars as Python numbers), for YAML, JSON and ``str``."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        with contextlib.suppress(Exception):
            return value.item()
    return value


def _write_params(path: Path, config: Mapping[str, Any]) -> None:
    """The trial's configuration as W&B's agent writes it for ``WANDB_SWEEP_PARAM_PATH``."""
    import yaml

    body = yaml.safe_dump({k: {"value": v} for k, v in _plain(config).items()}, sort_keys=False)
    path.write_text("wandb_version: 1\n\n" + body, encoding="utf-8")


def _folder(trial: Trial) -> Path:
    """The trial's ``WANDB_DIR`` (W&B writes in its ``wandb/``): the trial's checkpoint folder
    when that is on a file system here, else a temporary folder of this node."""
    store = trial.store
    if store is not None and not is_remote(store.location):
        folder = Path(store.folder(trial.trial_id))
        with contextlib.suppress(OSError):
            folder.mkdir(parents=True, exist_ok=True)
            return folder.resolve()
    return Path(tempfile.mkdtemp(prefix=f"tuner-wandb-{trial.trial_id}-"))


def _child_env(settings: dict[str, Any], trial: Trial, folder: Path, params: Path, events: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop(PROGRAM_SETTINGS, None)
    for key in ("WANDB_SWEEP_ID", "WANDB_RESUME", "WANDB_RUN_ID"):  # left from elsewhere: not this trial's
        env.pop(key, None)
    env.update(
        WANDB_MODE="offline",
        WANDB_DIR=str(folder),
        WANDB_SILENT="true",
        WANDB_RUN_ID=trial.trial_id,
        WANDB_SWEEP_PARAM_PATH=str(params),
        PYTHONPATH=os.pathsep.join([str(HOOK), *filter(None, [env.get("PYTHONPATH")])]),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), *filter(None, [env.get("PATH")])]),
        PYTHONUNBUFFERED="1",
        TUNER_WANDB_EXIT_S=str(EXIT_S),
        **{EVENTS: str(events), PARENT: str(os.getpid()), SWEEP: str(settings["study"])},
    )
    for key in ("project", "entity"):
        if settings.get(key):
            env[f"WANDB_{key.upper()}"] = str(settings[key])
    return env


def _follow(proc: subprocess.Popen[bytes], events: Path, trial: Trial) -> None:
    """Report each row the program commits until it exits; ``trial.report`` raises ``TrialPruned``
    when the trial is to stop."""
    last: float | None = None
    with events.open("rb") as f:
        pending = b""
        while True:
            ended = proc.poll() is not None
            pending += f.read()
            *lines, pending = pending.split(b"\n")
            for row in _rows(lines):
                if last is not None and row["step"] <= last:
                    continue  # a second run in the same script starts _step again: not this trial's steps
                metrics = {k: v for k, v in row["metrics"].items() if k not in RESERVED}
                if metrics:
                    trial.report(row["step"], **metrics)
                    last = row["step"]
            if ended:
                return
            time.sleep(POLL_S)


def _rows(lines: list[bytes]) -> Iterator[dict[str, Any]]:
    for line in lines:
        with contextlib.suppress(ValueError):
            row = json.loads(line)
            if isinstance(row, dict) and isinstance(row.get("step"), int) and isinstance(row.get("metrics"), dict):
                row["metrics"] = {k: float(v) for k, v in row["metrics"].items() if _number(v)}
                yield row


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _relay(stream: Any, tail: collections.deque[str]) -> None:
    """The program's stderr to this process's stderr (the trial's log), its last lines kept."""
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace")
        tail.append(line.rstrip("\n"))
        with contextlib.suppress(Exception):
            sys.stderr.write(line)
    stream.close()


def _end(proc: subprocess.Popen[bytes]) -> None:
    """End the program's process group (it is pruned, or this trial failed): SIGTERM, then SIGKILL."""
    if proc.poll() is None:
        _signal(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=TERM_S)
        except subprocess.TimeoutExpired:
            _signal(proc, signal.SIGKILL)
            proc.wait()
    _signal(proc, signal.SIGKILL)  # what the program left running in its group


def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
