# mypy: ignore-errors
"""Ray Tune trainables that bind Ray's functions by name at import, as many scripts do (the
tests check that these names answer for the trial too)."""

from ray.train import get_context as train_context
from ray.train import report as train_report
from ray.tune import get_checkpoint, get_context, report


def tune_names(config):
    assert get_checkpoint() is None
    report({"loss": float(config["x"]), "trial": get_context().get_trial_id()})


def train_names(config):
    train_report({"loss": float(config["x"]), "rank": train_context().get_world_rank()})
