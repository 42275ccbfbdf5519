"""``stopper:``: a Ray Tune stopper a study names, as ``RunConfig(stop=...)`` takes one.

``stopper: mypackage.stops:plateau`` names a module-level object: a ``ray.tune.Stopper`` instance
(``TrialPlateauStopper(metric=...)``, ``CombinedStopper(...)``...), a Stopper class with a
no-argument constructor (an instance is made), or a function ``(trial_id, result) -> bool``. Its
module must be allowed to run, as the trainable's (:func:`tuner.config.allowed_modules`).

Ray Tune's rules: ``stopper(trial_id, result)`` is asked at each report of a trial, ``True``
finishes it; ``stopper.stop_all()`` (a function has none) is asked as the study runs, ``True``
ends the study (the running trials are stopped). The engine's judge builds ``result`` as Tune's
(:func:`tune_result`); backend tune passes Tune's own. Each study has its own copy of a
module-level instance; one that raises ends the study with its error.

Pure: nothing here imports Ray; only the user's module does, when it names a Ray class.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tuner.config._trainable import checked_import, import_named
from tuner.errors import Problem, UserError


class NotAStopper(TypeError):
    """What ``stopper`` names cannot be asked as a Ray Tune stopper."""


def load_stopper(dotted: str) -> Callable[[str, dict[str, Any]], Any]:
    """The stopper ``dotted`` names, ready to ask: a class made with no arguments, an instance
    copied (a study's stopper keeps its own state), a function as it is. :class:`NotAStopper`
    when it cannot be one; whatever the import raises when it does not import."""
    obj: Any = import_named(dotted)
    if not callable(obj):
        raise NotAStopper(f"is a {type(obj).__name__}, not a Stopper, a Stopper class or a function")
    if inspect.isclass(obj):
        try:
            inspect.signature(obj).bind()
        except TypeError:
            raise NotAStopper(
                "is a class whose constructor needs arguments; name a module-level instance of it"
            ) from None
        except ValueError:
            pass
        try:
            obj = obj()
        except Exception as exc:
            raise NotAStopper(f"is a class that could not be made: {type(exc).__name__}: {exc}") from None
        if not callable(obj):
            raise NotAStopper("is a class whose instances are not callable (a Stopper defines __call__)")
    elif not inspect.isroutine(obj):
        with contextlib.suppress(Exception):  # an object that cannot be copied is used as it is
            obj = copy.deepcopy(obj)
    try:
        inspect.signature(obj).bind("t0001", {})
    except TypeError:
        raise NotAStopper("must take (trial_id, result), as a Ray Tune stopper") from None
    except ValueError:
        pass  # no signature to read: the first report will tell
    return obj


def check_stopper(dotted: str, allowed: Sequence[str]) -> list[Problem]:
    """Everything knowable about ``stopper`` before a trial: trust, import, callable, signature."""
    return checked_import("stopper", dotted, allowed, load_stopper, own=NotAStopper)[1]


def tune_result(
    trial_id: str, step: float, elapsed: float, metrics: Mapping[str, Any], config: Mapping[str, Any]
) -> dict[str, Any]:
    """A report as Ray Tune hands it to a stopper: the metrics, ``training_iteration`` (the step),
    ``time_total_s`` (the attempt's training time; a Tune trainable's own where it reports one),
    ``trial_id``, ``config`` and ``done`` (false: a trial's last report is not known to be)."""
    result = dict(metrics)
    result.setdefault("training_iteration", int(step) if float(step).is_integer() else step)
    result.setdefault("time_total_s", elapsed)
    result.update(trial_id=trial_id, config=copy.deepcopy(dict(config)), done=False)
    return result


class Stopping:
    """A study's stopper, asked as Ray Tune asks one; an error it raises is kept, not thrown."""

    def __init__(self, dotted: str) -> None:
        self.name = dotted
        try:
            self.stopper = load_stopper(dotted)
        except Exception as exc:  # a module moved or broken since the study was read (a resume)
            raise UserError([Problem("stopper", f"cannot load {dotted!r}: {type(exc).__name__}: {exc}")]) from None
        self.broken: str | None = None  # what it raised: the study ends with it
        self.ended = False  # stop_all() returned true

    def asks(self, trial_id: str, result: dict[str, Any]) -> bool:
        """Whether the stopper finishes the trial at this result."""
        if self.broken is not None:
            return False
        try:
            return bool(self.stopper(trial_id, result))
        except Exception as exc:
            self.broken = f"stopper {self.name} raised {type(exc).__name__}: {exc}"
            return False

    def halt(self) -> str | None:
        """Why the study ends now (``stop_all()`` true, or the stopper raised); ``None``: it goes on.
        A function, or a Stopper whose ``stop_all`` is Ray's abstract one, never ends it."""
        if self.broken is not None:
            return self.broken
        if not self.ended:
            stop_all = getattr(self.stopper, "stop_all", None)
            if not callable(stop_all):
                return None
            try:
                self.ended = bool(stop_all())
            except NotImplementedError:  # a Stopper subclass without its own stop_all
                return None
            except Exception as exc:
                self.broken = f"stopper {self.name} raised {type(exc).__name__}: {exc}"
                return self.broken
        return f"stopper {self.name}: stop_all() returned true" if self.ended else None
