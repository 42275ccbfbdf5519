"""Our parameters as Optuna distributions, for the dashboard's plots (not for sampling).

One pure conversion, :func:`distribution`, and the value a trial holds in it, :func:`value`.
Only what a chart needs is kept: the kind, the bounds and the log scale. A ``q`` step is left
out (Optuna refuses a step on a log scale; the values already lie on it), and a normal or beta
parameter, unbounded or searched by its quantile, spans the values its searchers can reach.
"""

from __future__ import annotations

import json
from typing import Any

from tuner.space import Beta, Categorical, Constant, Float, Int, Normal, Parameter

_PRIMITIVE = (type(None), bool, int, float, str)


def distribution(param: Parameter) -> Any:
    """The Optuna distribution that charts ``param``; ``None`` for a constant (nothing to chart)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(param, Constant):
        return None
    if isinstance(param, Categorical):
        return CategoricalDistribution([_choice(v) for v in param.values])
    if isinstance(param, Int):
        return IntDistribution(param.low, param.high, log=param.log)
    if isinstance(param, Float):
        return FloatDistribution(param.low, param.high, log=param.log)
    if isinstance(param, Normal | Beta):
        low, high = param.ppf(0.0), param.ppf(1.0)
        log = isinstance(param, Normal) and param.log and low > 0
        return FloatDistribution(low, high, log=log)
    raise TypeError(f"no Optuna distribution for {param!r}")


def value(param: Parameter, raw: Any) -> Any:
    """``raw`` as the distribution of ``param`` holds it: a list or mapping as its JSON text."""
    return _choice(raw) if isinstance(param, Categorical) else raw


def _choice(raw: Any) -> Any:
    return raw if isinstance(raw, _PRIMITIVE) else json.dumps(raw, sort_keys=True, default=str)
