"""Population-based training on real Ray: a DDP population on the engine (every rank goes on
from the donor's checkpoint), and on ``backend: tune`` a PB2 population held to
``max_concurrent``, interrupted and resumed through ``Tuner.restore``."""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
import yaml
from ray.tune import Checkpoint

import tuner
from tests.conftest import study
from trainables.toy import descent_step
from tuner.backends.ray.tune._pbt import _own_copy, last_boundary
from tuner.storage import CheckpointStore

DDP = """
name: ddp_pop
trainable: trainables.toy:descent_ranks
metric: {name: loss, goal: minimize}
method: random
seed: 3
run_cap: 2
max_concurrent: 1
resources: {workers: 2}
early_terminate:
  type: pbt
  max_t: 4
  perturbation_interval: 2
  quantile_fraction: 0.5
parameters:
  lr: {distribution: log_uniform_values, min: 0.001, max: 0.3}
points_to_evaluate: [{lr: 0.15}, {lr: 0.002}]
checkpoints: {keep: 8}  # the copy is kept to be read back here
"""

TUNE = """
name: {name}
trainable: trainables.toy:descent
backend: tune
metric: {{name: loss, goal: minimize}}
method: random
seed: 2
run_cap: 2
max_concurrent: {slots}
early_terminate:
  type: {kind}
  max_t: {max_t}
  perturbation_interval: 2
  quantile_fraction: 0.5
parameters:
  lr: {{distribution: log_uniform_values, min: 0.001, max: 0.3}}
  sleep: {{value: 0.05}}
checkpoints: {{keep: 4}}
points_to_evaluate: [{{lr: 0.15}}, {{lr: 0.002}}]
"""


def journal(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "journal.jsonl").read_text().splitlines() if line.strip()]


def turns(events: list[dict[str, Any]]) -> list[tuple[str, float]]:
    """Where each member handed over to another: ``(member, its last step before the other's report)``."""
    reports = [(e["trial"], e["step"]) for e in events if e["e"] == "report"]
    return [a for a, b in itertools.pairwise(reports) if a[0] != b[0]]


def test_last_boundary_counts_as_rays_pbt_does() -> None:
    assert last_boundary([1, 2, 3, 4, 5], 0, 5, 2) == 4
    assert last_boundary([3, 4, 5, 6, 7], 2, 7, 2) == 6  # from its last exploit's step
    assert last_boundary([5, 10, 11, 12], 0, 12, 4) == 10  # the first report an interval on
    assert last_boundary([1, 2, 3], 0, 1, 2) == 0


@pytest.mark.slow
def test_every_rank_of_a_ddp_member_goes_on_from_the_donors_checkpoint(ray_local: None, in_tmp: Path) -> None:
    out = tuner.run(study(DDP), quiet=True)
    events = journal(out.folder)
    exploits = [e for e in events if e["e"] == "exploit"]
    assert [(e["trial"], e["donor"], e["donor_step"]) for e in exploits] == [("t0002", "t0001", 2)]
    ex = exploits[0]
    trials = tuner.load_results(out.folder).set_index("trial_id")
    assert set(trials["status"]) == {"finished"} and set(trials["step"]) == {4}
    history = tuner.load_history(out.folder)
    after = history[(history["trial_id"] == "t0002") & (history["step"] == 3)].iloc[0]
    assert after["restored"] == 2 and after["restored_sq"] == 4  # both ranks loaded step 2
    _, state = CheckpointStore(str(out.folder / "checkpoints")).load(ex["copy"])
    assert "/t0002/" in ex["copy"] and state["step"] == 2  # the member's own copy of the donor's state
    _, loss = descent_step(state["w"], ex["new"]["lr"], int(trials.loc["t0002", "seed"]), 3)
    assert after["loss"] == pytest.approx(loss, rel=1e-5)  # averaged over ranks: each went on from it
    assert after["config/lr"] == ex["new"]["lr"]


@pytest.mark.slow
def test_an_interrupted_tune_population_resumes_with_every_member_max_concurrent_at_a_time(
    ray_local: None, in_tmp: Path
) -> None:
    """Ray's PB2, one member at a time (the 2 CPUs hold two): a member hands its slot over at a
    boundary only, and each exploit is journaled as PBT's are. Interrupted after the first
    exploit, with one more exploit journaled that Tune never saved (as when the driver dies
    between the two), and resumed through ``Tuner.restore``."""
    folder = in_tmp / "results" / "pb2_resume"

    def interrupt_after_the_first_exploit() -> None:  # as Ctrl+C does
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            path = folder / "journal.jsonl"
            if path.exists() and '"e": "exploit"' in path.read_text():
                os.kill(os.getpid(), signal.SIGUSR1)
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=interrupt_after_the_first_exploit, daemon=True)
    watcher.start()
    first = tuner.run(study(TUNE.format(name="pb2_resume", kind="pb2", slots=1, max_t=6)), quiet=True)
    watcher.join()
    assert first.interrupted
    before = journal(folder)
    exploits = [e for e in before if e["e"] == "exploit"]
    assert exploits, "no member exploited another"
    for ex in exploits:
        assert ex["trial"] != ex["donor"] and 0.001 <= ex["new"]["lr"] <= 0.3
        assert f"/{ex['trial']}/from-{ex['donor']}/" in ex["copy"] and Path(ex["copy"]).is_dir()
    assert turns(before) and all(step % 2 == 0 for _, step in turns(before)), turns(before)
    pending = _journal_an_exploit_tune_never_saved(folder, before)

    tuner.resume(folder, quiet=True)
    events = journal(folder)
    after = events[len(before) + 1 :]
    trials = pd.read_parquet(folder / "trials.parquet").set_index("trial_id")
    assert sorted(trials.index) == ["t0001", "t0002"]
    assert set(trials["status"]) == {"finished"} and set(trials["step"]) == {6}
    back = [(e["trial"], e["step"]) for e in after if e["e"] == "retry" and e["error"] == "resumed"]
    member, at = pending["trial"], pending["donor_step"]
    assert (member, at) in back  # it went on from its copy of the donor's state
    went_on = next(e for e in after if e["e"] == "report" and e["trial"] == member)
    state = torch.load(Path(pending["copy"]) / "state.pt", weights_only=True)["state"]
    _, loss = descent_step(state["w"], pending["new"]["lr"], int(trials.loc[member, "seed"]), int(at) + 1)
    assert went_on["step"] == at + 1 and went_on["metrics"]["loss"] == pytest.approx(loss, rel=1e-5)
    # each member's boundaries where they were: it hands over at them only, after the restore too
    assert all(step % 2 == 0 for _, step in turns(after)), turns(after)
    history = pd.read_parquet(folder / "history.parquet")
    last = {e["trial"]: e for e in events if e["e"] == "exploit"}
    for ex in last.values():  # the values each member went on with, from its last exploit
        rows = history[(history["trial_id"] == ex["trial"]) & (history["step"] > ex["donor_step"])]
        assert rows["config/lr"].iloc[0] == ex["new"]["lr"]
    for trial in trials.index:
        steps = history[history["trial_id"] == trial]["step"].tolist()
        assert steps == sorted(set(steps)) and steps[-1] == 6  # no step twice, across the restore
    best = yaml.safe_load((folder / "best.yaml").read_text())  # the winner's schedule, as train replays it
    assert best["schedule"]["lr"][0][0] == 0 and best["params"]["lr"] == best["schedule"]["lr"][-1][1]


def _journal_an_exploit_tune_never_saved(folder: Path, events: list[dict[str, Any]]) -> dict[str, Any]:
    """An unfinished member exploits the other's last checkpoint at a boundary (as Ray's PBT
    chooses them): its copy made and the event journaled, Tune's experiment state left as it was."""
    ended = {e["trial"] for e in events if e["e"] == "end"}
    member = next(e["trial"] for e in events if e["e"] == "start" and e["trial"] not in ended)
    donor = next(e["trial"] for e in events if e["e"] == "start" and e["trial"] != member)
    saved = [e for e in events if e["e"] == "ckpt" and e["trial"] == donor and e["step"] % 2 == 0]
    saved = [e for e in saved if Path(e["path"]).is_dir()]
    donor_step, path = saved[-1]["step"], saved[-1]["path"]
    copy = _own_copy(Checkpoint.from_directory(path), member, donor, donor_step, None)
    step = [e["step"] for e in events if e["e"] == "report" and e["trial"] == member][-1]
    old = [e["new"] for e in events if e["e"] == "exploit" and e["trial"] == member]
    event = {"e": "exploit", "trial": member, "donor": donor, "step": step, "donor_step": donor_step}
    event |= {"path": path, "old": old[-1] if old else {}, "new": {"lr": 0.0123}, "copy": copy.path}
    with (folder / "journal.jsonl").open("a") as out:
        out.write(json.dumps(event) + "\n")
    return event
