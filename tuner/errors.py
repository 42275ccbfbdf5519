"""One hierarchy of errors; the CLI maps :class:`UserError` to exit code 2."""

from __future__ import annotations

from dataclasses import dataclass


class TunerError(Exception):
    """Root of every error this package raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the user's input, located by its YAML path."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class UserError(TunerError):
    """Input the user must fix: a YAML file, a flag, a path. Carries every problem found."""

    def __init__(self, problems: list[Problem] | str, *, source: str | None = None) -> None:
        if isinstance(problems, str):
            problems = [Problem("", problems)]
        self.problems = list(problems)
        self.source = source
        super().__init__(self.format())

    def lines(self) -> list[str]:
        prefix = f"{self.source}: " if self.source else ""
        return [f"{prefix}{p}" for p in self.problems]

    def format(self) -> str:
        return "\n".join(self.lines())


class ConfigError(UserError):
    """The study file breaks a rule of the schema or of the search space."""


class SearchSpaceError(ConfigError):
    """A parameter cannot be searched the way the chosen searcher would need."""


class ResultsError(UserError, ValueError):
    """A question results cannot answer as asked: no metric or mode where one is needed, a mode
    or scope that does not exist. A ``ValueError`` too, as Ray's ``ExperimentAnalysis`` raises."""


class ResultsMissing(UserError, RuntimeError):
    """What a results question needs is not there: a trial folder, a checkpoint. A
    ``RuntimeError`` too, as Ray's ``Result`` raises."""


# The optional libraries an integration needs, and the extra of ours that installs each.
EXTRAS: dict[str, str] = {"lightning": "lightning", "pytorch_lightning": "lightning"}
EXTRAS["transformers"] = "transformers"  # tuner.integrations.transformers


class MissingExtra(UserError, ImportError):
    """An optional library is not installed: names the extra that brings it."""

    def __init__(self, needs: str, extra: str) -> None:
        self.extra = extra
        super().__init__(f"{needs} is not installed: pip install 'tuner[{extra}]'")

    @classmethod
    def of(cls, exc: BaseException) -> MissingExtra | None:
        """``exc`` itself, or the one a failed import of an optional library (:data:`EXTRAS`) stands for."""
        if isinstance(exc, MissingExtra):
            return exc
        name = (getattr(exc, "name", None) or "").partition(".")[0]
        if isinstance(exc, ModuleNotFoundError) and name in EXTRAS:
            return cls(name, EXTRAS[name])
        return None


class StudyFailed(TunerError):
    """Every trial of a study failed; no best configuration exists."""


class TrialPruned(BaseException):
    """Raised inside a trainable's ``trial.report`` when the scheduler stops the trial.

    A ``BaseException`` so that a trainable's ``except Exception`` does not swallow it.
    """
