"""What happens to a failed attempt: retried (from its last checkpoint), continued elsewhere, or ended."""

from __future__ import annotations

from dataclasses import dataclass

INFRA_RETRIES = 5  # a trial whose node is lost more often than this ends as errored
MAX_HALVINGS = 4  # on_oom: halve_batch retries at most this many times


@dataclass(frozen=True)
class Retry:
    """Run the trial again from its last checkpoint."""

    accumulation: int  # gradient accumulation for the next attempt (doubled when the batch is halved)
    counted: bool  # whether it spends one of ``max_failures``


def requeue(lost: bool, decided: bool, infra_retries: int) -> bool:
    """A trial whose node left the cluster goes on, from its last checkpoint, on a live node;
    not charged to ``max_failures``, at most ``INFRA_RETRIES`` times."""
    return lost and not decided and infra_retries < INFRA_RETRIES


def retry(status: str, action: str, failures: int, max_failures: int, accumulation: int) -> Retry | None:
    """The next attempt of a failed trial, or ``None`` when it ends here.

    ``action`` is what ``on_failure`` (or its default) says for the failure's cause; ``failures``
    the counted retries so far.
    """
    if status not in ("errored", "oom"):
        return None
    if action == "halve_batch":
        return None if accumulation >= 2**MAX_HALVINGS else Retry(accumulation * 2, counted=False)
    if action != "retry" or failures >= max_failures:
        return None
    return Retry(accumulation, counted=True)
