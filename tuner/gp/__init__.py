"""Gaussian-process Bayesian optimisation on numpy and scipy: the model and the acquisition.

No Ray, no torch, no study: arrays in, arrays out. :mod:`tuner.searchers._gp` turns a study's
history into these arrays and the proposal back into a configuration.
"""

from tuner.gp._acquisition import Acquisition, propose
from tuner.gp._encoding import Encoding
from tuner.gp._model import GP, Hyper, fit

__all__ = ["GP", "Acquisition", "Encoding", "Hyper", "fit", "propose"]
