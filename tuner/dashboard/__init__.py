"""A live web view of a study: its journal mirrored into an Optuna storage, served by optuna-dashboard."""

from tuner.dashboard._mirror import Mirror
from tuner.dashboard._server import serve
from tuner.dashboard._space import distribution

__all__ = ["Mirror", "distribution", "serve"]
