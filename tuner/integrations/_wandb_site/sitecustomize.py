"""Loaded by every Python process of a W&B program that tuner runs (this folder is first on its
``PYTHONPATH``); inert elsewhere (without ``TUNER_WANDB_EVENTS``). Standard library only: the
program's interpreter may not have tuner.

When the program imports ``wandb``, ``wandb.Run._log`` (behind ``wandb.log`` and ``run.log``)
is wrapped: the history rows W&B commits are replayed with its own rules (``step``, ``commit``,
``_step`` counting from 0) and each is appended to ``TUNER_WANDB_EVENTS`` as a JSON line with
its numeric values (nested dicts flattened with dots). Only the rows of the sweep's run count: a
run started while ``WANDB_SWEEP_PARAM_PATH`` is in the environment, as W&B's sweep run is (not
the runs of processes that cleared W&B's variables first, a cross-validation's folds). And:

- ``wandb.init`` runs offline whatever its ``mode`` or ``settings`` say (a script's
  ``mode="online"`` would need an account and the network; ``mode="disabled"`` logs nothing);
- ``wandb.sweep`` returns the study's name without contacting W&B (the study file's parameters
  are searched, not the dict it is given), and ``wandb.agent(sweep_id, function)`` calls
  ``function`` once: this trial's run, as W&B's agent calls it for each run.

- the sweep's run links ``wandb/debug.log``, ``wandb/debug-internal.log`` and ``wandb/latest-run``
  of the program's working folder to its files (they are in the trial's folder, ``WANDB_DIR``);
- in the program's main process, an uncaught exception ends the process ``TUNER_WANDB_EXIT_S``
  seconds after its traceback, when child processes it left running hold it at exit.

A thread ends the process when the trial's process (``TUNER_WANDB_PARENT``) is gone. Then the
``sitecustomize`` this one shadows, if any, runs.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import numbers
import os
import sys
import threading
import time
from typing import Any

_EVENTS = os.environ.get("TUNER_WANDB_EVENTS")
_PARENT = os.environ.get("TUNER_WANDB_PARENT")
_SWEEP = os.environ.get("TUNER_WANDB_SWEEP") or "tuner"  # what wandb.sweep returns: the study's name
_EXIT_S = float(os.environ.get("TUNER_WANDB_EXIT_S") or 10)  # a crashed main process's time to finish
_CWD = os.getcwd()  # the program's working folder, where W&B's agent has its wandb/ folder


class _History:
    """W&B's history rows as its run handler makes them (partial history, flushed by step/commit)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.step = 0
        self.row: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.foreign: set[int] = set()  # id() of the runs that are not the sweep's run

    def log(self, data: Any, step: Any = None, commit: Any = None) -> None:
        with self.lock:
            if step is not None:
                if step < self.step:
                    return  # W&B drops a row logged to an earlier step
                if step > self.step:
                    self._flush()
                    self.step = int(step)
            elif commit is None:
                commit = True
            self.row.update(data)
            if commit:
                self._flush()

    def flush(self) -> None:
        with self.lock:
            self._flush()

    def _flush(self) -> None:
        if not self.row:
            return
        numbers_ = _numbers(self.row)
        self.row = {}
        line = json.dumps({"step": self.step, "metrics": numbers_}) + "\n"
        self.step += 1
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)


def _numbers(row: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_numbers(value, f"{name}."))
            continue
        if hasattr(value, "item") and not isinstance(value, numbers.Number):
            try:
                value = value.item()  # numpy scalars, one-element tensors
            except Exception:
                continue
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def _patch(wandb: Any, history: _History) -> None:
    run = getattr(wandb, "Run", None)
    if run is None or getattr(run, "_tuner_patched", False):
        return
    log, cleanup = run._log, run._atexit_cleanup

    def _log(self: Any, data: Any, step: Any = None, commit: Any = None) -> Any:
        out = log(self, data=data, step=step, commit=commit)
        if id(self) not in history.foreign:
            history.log(data, step, commit)
        return out

    def _atexit_cleanup(self: Any, *args: Any, **kwargs: Any) -> Any:
        if id(self) not in history.foreign:
            history.flush()  # the row still open when the run finishes
        return cleanup(self, *args, **kwargs)

    run._log, run._atexit_cleanup, run._tuner_patched = _log, _atexit_cleanup, True
    if callable(getattr(wandb, "init", None)):
        wandb.init = _offline_init(wandb.init, history)
    if callable(getattr(wandb, "sweep", None)):
        wandb.sweep = _sweep
    if callable(getattr(wandb, "agent", None)):
        wandb.agent = _agent(wandb)


def _offline_init(init: Any, history: _History) -> Any:
    """``wandb.init`` in offline mode, whatever the script asks; a run started without W&B's
    sweep variables in its environment is not the sweep's run (its rows are not the trial's)."""

    def offline_init(*args: Any, **kwargs: Any) -> Any:
        kwargs["mode"] = "offline"  # the argument overrides settings=... and WANDB_MODE
        ours = bool(os.environ.get("WANDB_SWEEP_PARAM_PATH"))
        started = init(*args, **kwargs)
        if not ours and started is not None:
            history.foreign.add(id(started))
        elif started is not None:
            _links(started)
        return started

    offline_init.__wrapped__ = init  # type: ignore[attr-defined]
    offline_init.__doc__ = init.__doc__
    return offline_init


def _links(run: Any) -> None:
    """``wandb/debug.log``, ``wandb/debug-internal.log`` and ``wandb/latest-run`` in the program's
    working folder, linked to this run's files (in the trial's folder), as W&B links them in its own
    ``wandb/`` folder: a script that reads them by a relative path finds them where W&B's agent
    would have put them. Another trial started later from the same folder moves them to its run."""
    try:
        settings = run.settings
        targets = {
            "debug.log": settings.log_user,
            "debug-internal.log": settings.log_internal,
            "latest-run": os.path.dirname(settings.sync_file),
        }
        here = os.path.join(_CWD, "wandb")
        if os.path.realpath(here) == os.path.realpath(os.path.dirname(settings.log_symlink_user)):
            return  # W&B's own folder is this one: it has made them
        os.makedirs(here, exist_ok=True)
    except Exception:  # a read-only folder, a W&B without these settings: the run goes on without them
        return
    for name, target in targets.items():
        tmp = os.path.join(here, f"{name}.{os.getpid()}")
        try:
            with contextlib.suppress(FileNotFoundError):  # one a process of this pid left
                os.unlink(tmp)
            os.symlink(os.path.abspath(target), tmp)
            os.replace(tmp, os.path.join(here, name))
        except Exception:  # a real folder of that name is the user's: left as it is, and no stray link
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _crashed(hook: Any) -> Any:
    """``sys.excepthook`` of the trial's main process: after the traceback, the process has
    ``TUNER_WANDB_EXIT_S`` seconds to finish (W&B closes its run) and is then ended, so that a
    crash does not wait on child processes that it left running (Python joins them at exit)."""

    def excepthook(kind: Any, value: Any, tb: Any) -> None:
        if not _printed_by_wandb():
            hook(kind, value, tb)
        with contextlib.suppress(Exception):
            sys.stderr.flush()

        def deadline() -> None:
            time.sleep(_EXIT_S)
            with contextlib.suppress(Exception):
                said = f"{getattr(kind, '__name__', 'Exception')}: {value}".splitlines()[0]
                sys.stderr.write(f"{said} (tuner: ended {_EXIT_S:g} s after this crash: child processes held it)\n")
                sys.stderr.flush()
            os._exit(1)

        threading.Thread(target=deadline, daemon=True, name="tuner-deadline").start()

    return excepthook


def _exits(exit_fn: Any) -> Any:
    """``sys.exit`` of the trial's main process: a non-zero code said by the main thread is a
    failed run, which then has ``TUNER_WANDB_EXIT_S`` seconds from the main thread's end to finish
    and is ended with its code, so that it does not wait on child processes or threads it left
    running (Python joins them at exit), as a crash does not. Code 0, and ``sys.exit`` in another
    thread, change nothing."""

    def exit(code: Any = None) -> Any:
        if code not in (None, 0) and threading.current_thread() is threading.main_thread():

            def deadline() -> None:
                main = threading.main_thread()
                while main.is_alive():  # SystemExit caught: the program goes on
                    time.sleep(0.1)
                time.sleep(_EXIT_S)
                status = code if isinstance(code, int) and not isinstance(code, bool) else 1
                with contextlib.suppress(Exception):
                    sys.stderr.write(
                        f"SystemExit: {code} (tuner: ended {_EXIT_S:g} s after sys.exit: child processes held it)\n"
                    )
                    sys.stderr.flush()
                os._exit(status)

            threading.Thread(target=deadline, daemon=True, name="tuner-exit").start()
        return exit_fn(code)

    return exit


def _printed_by_wandb() -> bool:
    """Whether the caller is W&B's exit hook (``wandb.init`` installs it over this one), which has
    printed the traceback and then calls the hook it replaced: printed again, it would be twice."""
    with contextlib.suppress(Exception):
        caller = sys._getframe(2)  # 0: this function, 1: excepthook, 2: who called it
        owner = caller.f_locals.get("self")
        return caller.f_code.co_name == "exc_handler" and type(owner).__name__ == "ExitHooks"
    return False


def _sweep(sweep: Any = None, entity: Any = None, project: Any = None, prior_runs: Any = None) -> str:
    """``wandb.sweep``: the study is the sweep; its id is the study's name."""
    sys.stderr.write(
        f"tuner: wandb.sweep() returns the study's id {_SWEEP!r}; the study file's parameters are searched, "
        "not the configuration given to it\n"
    )
    return _SWEEP


def _agent(wandb: Any) -> Any:
    def agent(sweep_id: Any = None, function: Any = None, *args: Any, **kwargs: Any) -> None:
        """``wandb.agent``: ``function`` once, as this trial's run (``count`` and the rest do not
        apply: each trial is one run). An exception in it fails the trial."""
        if function is None:
            raise RuntimeError(
                "tuner: wandb.agent() without a function would start the sweep's program, and this "
                "script is that program already: pass function=, or let the script train directly"
            )
        try:
            function()
        except BaseException:
            wandb.finish(exit_code=1)
            raise
        wandb.finish()

    return agent


class _AfterImport(importlib.abc.MetaPathFinder):
    """Patches ``wandb`` once it is imported."""

    def __init__(self, history: _History) -> None:
        self.history = history

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "wandb":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        loader: Any = spec.loader
        execute = loader.exec_module

        def exec_module(module: Any) -> None:
            execute(module)
            _patch(module, self.history)

        loader.exec_module = exec_module
        return spec


def _watch(parent: int) -> None:
    while True:
        time.sleep(1.0)
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            os._exit(143)  # the trial is gone: so is its program
        except OSError:
            pass


def _shadowed() -> None:
    """Run the ``sitecustomize`` that this one hides, as Python would have."""
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


if _EVENTS:
    _history = _History(_EVENTS)
    import atexit

    atexit.register(_history.flush)
    if "wandb" in sys.modules:
        _patch(sys.modules["wandb"], _history)
    else:
        sys.meta_path.insert(0, _AfterImport(_history))
    if _PARENT and _PARENT.isdigit():
        threading.Thread(target=_watch, args=(int(_PARENT),), daemon=True, name="tuner-watch").start()
        if os.getppid() == int(_PARENT):  # the program's main process (not its children)
            sys.excepthook = _crashed(sys.excepthook)
            sys.exit = _exits(sys.exit)
    _shadowed()
