"""A restored optimizer given the hyperparameters of a new configuration.

A trial that goes on from a checkpoint written under another configuration (a PBT exploit: the
donor's checkpoint, a perturbed configuration) gets the checkpoint's optimizer back with the
checkpoint's hyperparameters in its param groups, and its learning-rate schedulers with the
checkpoint's base learning rates: the new configuration would be silently ignored. :func:`retune`
sets what the configuration changed on the restored optimizer and keeps the rest: the state
(moments, momentum buffers, step counts) and the schedulers' progress. A learning rate is scaled
by the ratio of the new one to the old one, so that a schedule goes on from where it was with the
new rate as its base (without a schedule: the new rate).
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Sequence
from typing import Any

# A scheduler's progress, which a restore keeps (the rest of its state is its settings).
PROGRESS = frozenset({"last_epoch", "_step_count", "_get_lr_called_within_step", "_is_initial", "_last_lr"})

Changes = dict[str, tuple[Any, Any]]  # a param group's key: (the checkpoint's value, the new one)


def hyperparameters(optimizer: Any) -> list[dict[str, Any]]:
    """Each param group's settings (all but its parameters), copied."""
    return [
        {k: copy.deepcopy(v) for k, v in g.items() if k not in ("params", "param_names")}
        for g in optimizer.param_groups
    ]


def settings(scheduler: Any) -> dict[str, Any]:
    """A scheduler's settings: the plain values of its state that are not its progress."""
    return {k: copy.deepcopy(v) for k, v in scheduler.state_dict().items() if k not in PROGRESS and _plain(v)}


def same(a: Any, b: Any) -> bool:
    if hasattr(a, "shape") or hasattr(b, "shape"):
        try:
            return bool(a.shape == b.shape and (a == b).all())
        except (AttributeError, TypeError, RuntimeError):
            return False
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    try:
        return bool(a == b)
    except (TypeError, ValueError, RuntimeError):
        return False


def differences(old: Sequence[dict[str, Any]], new: Sequence[dict[str, Any]]) -> list[Changes]:
    """Per param group, the keys whose value ``new`` changes from ``old``; nothing when the groups
    do not match (another model or optimizer: no group is the other's)."""
    if len(old) != len(new):
        return [{} for _ in new]
    return [
        {k: (o.get(k), v) for k, v in n.items() if k not in o or not same(o[k], v)}
        for o, n in zip(old, new, strict=True)
    ]


def retune(optimizer: Any, schedulers: Sequence[Any], changes: Sequence[Changes]) -> list[str]:
    """Set ``changes`` (one dict a param group) on the restored ``optimizer``, and the new base
    learning rates on those of ``schedulers`` that drive it; returns the keys set."""
    done: set[str] = set()
    groups = optimizer.param_groups
    ratios: list[tuple[Any, Any] | None] = []
    for group, changed in zip(groups, changes, strict=False):
        ratios.append(changed.get("lr"))
        for key, (old, new) in changed.items():
            if key == "lr":
                group["lr"] = _scaled(group["lr"], old, new)
                if "initial_lr" in group and "initial_lr" not in changed:
                    group["initial_lr"] = _scaled(group["initial_lr"], old, new)
            else:
                group[key] = copy.deepcopy(new)
            done.add(key)
    for scheduler in schedulers:
        if getattr(getattr(scheduler, "optimizer", None), "param_groups", None) is not groups:
            continue
        bases = getattr(scheduler, "base_lrs", None)
        if isinstance(bases, list):
            scheduler.base_lrs = [_rebased(b, r) for b, r in zip(bases, ratios, strict=False)] + bases[len(ratios) :]
        if isinstance(getattr(scheduler, "_last_lr", None), list):
            scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]
    return sorted(done)


def reconfigure(scheduler: Any, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Give a restored scheduler the settings that its new configuration changes (``old``, ``new``:
    :func:`settings` under the checkpoint's configuration and the new one); its base learning
    rates follow the optimizer's (:func:`retune`), its progress is kept."""
    changed = {k: copy.deepcopy(v) for k, v in new.items() if k != "base_lrs" and (k not in old or not same(old[k], v))}
    if changed:
        state = scheduler.state_dict()
        state.update(changed)
        scheduler.load_state_dict(state)
    return sorted(changed)


def _scaled(value: Any, old: Any, new: Any) -> Any:
    """``value`` (the checkpoint's ``old`` on a schedule) with ``new`` as its base."""
    if not all(isinstance(v, numbers.Real) for v in (value, old, new)) or old == 0 or value == old:
        return new
    return value * new / old


def _rebased(base: Any, ratio: tuple[Any, Any] | None) -> Any:
    return base if ratio is None else _scaled(base, *ratio)


def _plain(value: Any) -> bool:
    if value is None or isinstance(value, numbers.Number | str):
        return True
    if isinstance(value, list | tuple):
        return all(v is None or isinstance(v, numbers.Number | str) for v in value)
    return False
