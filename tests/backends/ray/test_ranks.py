"""Which rank's failure explains a trial's end (no Ray running)."""

from __future__ import annotations

from typing import Any

import pytest

from tuner.backends.ray._backend import _root_cause


def error(rank_error: str, dead: bool = False) -> dict[str, Any]:
    return {"kind": "error", "error": rank_error, "dead": dead}


@pytest.mark.parametrize(
    ("ended", "cause"),
    [
        ({0: error("RuntimeError: Gloo connectFullMesh failed"), 1: error("rank 1 process died", dead=True)}, 1),
        ({0: error("RuntimeError: [gloo] Connection closed by peer"), 1: error("ValueError: bad shape")}, 1),
        ({0: error("ValueError: bad shape"), 1: error("RuntimeError: nccl timed out")}, 0),
        ({0: error("RuntimeError: gloo timed out"), 1: error("RuntimeError: connection reset")}, 0),
        ({0: {"kind": "done"}, 1: {"kind": "done"}}, None),
    ],
)
def test_root_cause_is_the_rank_that_failed_first_not_its_peers(ended: dict, cause: int | None) -> None:
    found = _root_cause(ended)
    assert found == ({"kind": "done"} if cause is None else ended[cause])
