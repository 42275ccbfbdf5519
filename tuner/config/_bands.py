"""Where W&B's hyperband judges a run: its bands, counted in reports of the metric.

W&B's rule (``sweeps/hyperband_stopping.py``, the code behind ``early_terminate: {type:
hyperband}``), float operations included: with ``max_iter``, the bands are ``max_iter / eta``,
``max_iter / eta**2``, ... (``s`` of them, each cut to a whole number, none below 1); with
``min_iter`` alone, ``min_iter``, ``min_iter * eta``, ``min_iter * eta**2``, ... (W&B lists 100).
"""

from __future__ import annotations

W_AND_B_BANDS = 100  # how many bands W&B lists from min_iter
NEVER = 2**53  # a band past this many reports is never reached: the list stops there


def wandb_bands(min_iter: int, max_iter: int | None, eta: float, s: int | None) -> list[int]:
    """The report counts at which W&B's hyperband judges a run, ascending, each once.

    ``max_iter`` with ``s``: W&B's ``s`` bands below ``max_iter`` (``min_iter`` is not used, as in
    W&B). ``max_iter`` without ``s`` (which W&B refuses): as many as lie at ``min_iter`` or above.
    ``max_iter`` ``None``: upward from ``min_iter``. Empty when ``max_iter / eta < 1``.
    """
    step: float = int(eta) if float(eta).is_integer() else eta  # an int eta keeps W&B's int arithmetic
    bands: list[int] = []
    if max_iter is not None:
        band: float = max_iter
        floor = 1 if s is not None else min_iter
        for _ in range(int(s) if s is not None else W_AND_B_BANDS):
            band /= step
            if band < floor:
                break
            bands.append(int(band))
    else:
        band = min_iter
        for _ in range(W_AND_B_BANDS):
            if band > NEVER:
                break
            bands.append(int(band))
            band *= step
    return sorted(set(bands))
