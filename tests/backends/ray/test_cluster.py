"""What the driver ships to a cluster, and the one rule for how many trials run at once."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ROOT, study
from tuner.backends.ray._cluster import shipped_modules
from tuner.plan import make_plan

GRID = """
trainable: trainables.toy:quadratic
metric: {name: loss, goal: minimize}
method: grid
parameters:
  lr: {values: [0.001, 0.01, 0.1]}
  act: {values: [relu, tanh]}
"""


def test_the_trainables_package_and_allowed_local_code_are_shipped_not_installed_packages() -> None:
    paths = [Path(p) for p in shipped_modules(["trainables.toy", "tests.elsewhere", "yaml", "json", "nope"])]
    assert paths[0].name == "tuner"
    assert ROOT / "trainables" in paths and ROOT / "tests" in paths
    assert not any("site-packages" in p.parts or p.name in ("yaml", "json") for p in paths)


def test_plan_and_run_agree_on_concurrency() -> None:
    grid = study(GRID)  # 6 cells
    assert grid.trial_count() == 6
    assert grid.concurrency(places=8) == 6 == make_plan(grid, 8, "a big node").slots
    assert grid.concurrency(places=3) == 3 == make_plan(grid, 3, "a small node").slots
    capped = study(GRID + "max_concurrent: 2\n")
    assert capped.concurrency(places=8) == 2 == make_plan(capped, 8, "x").slots
    ddp = study(GRID + "resources: {workers: 2}\n")
    assert ddp.concurrency(places=8) == 4 == make_plan(ddp, 8, "x").slots


def test_a_grid_too_big_to_list_is_counted_not_enumerated() -> None:
    body = GRID.replace("parameters:", "parameters:\n" + "".join(f"  p{i}: {{min: 1, max: 256}}\n" for i in range(8)))
    huge = study(body + "run_cap: 50\n")
    assert huge.trial_count() == 50 and huge.concurrency(places=4) == 4
