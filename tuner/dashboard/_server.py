"""``python -m tuner dashboard FOLDER``: optuna-dashboard over a study's mirrored journal."""

from __future__ import annotations

import os
import socketserver
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from tuner.dashboard._mirror import Mirror
from tuner.errors import MissingExtra, UserError

DEFAULT_PORT = 8080  # optuna-dashboard's own; a free one when it is taken


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a browser holds several connections; none keeps the process alive


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # one line a request otherwise
        pass


def serve(
    folder: str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int | None = None,
    every: float = 1.0,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the study in ``folder`` until interrupted, reading its journal every ``every`` seconds.

    ``port``: ``None`` for 8080 or, when that is taken, a free one; 0 for a free one. ``ready`` is
    called with the page's URL once the server listens (by default, it is printed).
    """
    try:
        import optuna_dashboard
    except ImportError as exc:
        raise MissingExtra("optuna-dashboard", "dashboard") from exc
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not a line for the in-memory study
    mirror = Mirror(folder)
    mirror.sync()
    server = _listen(host, port, optuna_dashboard.wsgi(mirror.storage))
    stop = threading.Event()
    follower = threading.Thread(target=_follow, args=(mirror, every, stop), name="journal", daemon=True)
    follower.start()
    url = f"http://{_shown(host)}:{server.server_port}/dashboard/studies/{mirror.study_id}"
    (ready or _announce)(url)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        return  # Ctrl-C: the usual way to stop it
    finally:
        stop.set()
        server.server_close()


def _announce(url: str) -> None:
    print(f"dashboard: {url}   (Ctrl-C to stop)", flush=True)


def _listen(host: str, port: int | None, app: Any) -> WSGIServer:
    for tried in [DEFAULT_PORT, 0] if port is None else [port]:
        try:
            return make_server(host, tried, app, server_class=_Server, handler_class=_Quiet)
        except OSError as exc:
            last = exc
    if port is None or "in use" not in str(last.strerror):
        raise UserError(f"--host {host}: cannot listen there ({last.strerror})")
    raise UserError(f"--port {port}: cannot listen on {host}:{port} ({last.strerror}); --port 0 takes a free one")


def _follow(mirror: Mirror, every: float, stop: threading.Event) -> None:
    """Keep the storage in step with the journal, and the study's note with the run's state."""
    from optuna_dashboard import save_note

    shown = None
    while True:
        try:
            mirror.sync()
            note = _note(mirror)
            if note != shown:
                save_note(_study(mirror), note)
                shown = note
        except Exception as exc:  # the page may have deleted the study: say so, go on
            print(f"dashboard: {type(exc).__name__}: {exc}", file=sys.stderr)
        if stop.wait(every):
            return


def _study(mirror: Mirror) -> Any:
    import optuna

    return optuna.load_study(study_name=mirror.name, storage=mirror.storage)


def _note(mirror: Mirror) -> str:
    """The study's note: where it comes from, how the run stands, its trials by status."""
    counts = Counter(t.status for t in mirror.trials.values())
    state = mirror.state()
    lines = [
        f"tuner study **{mirror.name}**, results folder `{_folder(mirror.folder)}`: the run is {state}.",
        "",
        "Trials: " + (", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "none yet") + ".",
    ]
    if state == "interrupted":
        lines += ["", f"Continue it with `python -m tuner resume {_folder(mirror.folder)}`."]
    return "\n".join(lines)


def _folder(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _shown(host: str) -> str:
    return f"[{host}]" if ":" in host else host
