"""A population through faults, on the simulated backend: nodes lost under its members (a running
one, one whose exploit is pending, one just restarted from its donor's copy), and a PB2 study
resumed with its GP's data rebuilt from the journal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.conftest import study
from tuner.backends.simulated import SimulatedBackend
from tuner.engine import End, Engine, Event, Report
from tuner.engine._pb2 import MIN_DATA, PopulationBasedBandits
from tuner.engine._replay import replay

STUDY = """
name: pop
trainable: trainables.simulated:schedule
backend: simulated
metric: {{name: loss, goal: minimize}}
method: random
seed: 1
run_cap: 8
max_concurrent: 4
parameters:
  lr: {{distribution: log_uniform_values, min: 0.001, max: 0.5}}
early_terminate: {{type: {kind}, perturbation_interval: 4, max_t: 40, quantile_fraction: 0.25}}
"""


@pytest.fixture(autouse=True)
def _no_ray_started(no_ray: None) -> None:
    """Nothing here starts Ray."""


class LosingNodes(SimulatedBackend):
    """The simulated backend whose nodes are lost under given trials, each once: at a report
    (``at``: the report never comes out, the trial ends lost) or when the engine stops the trial
    (``on_stop``: its end comes as a lost node's)."""

    def __init__(self, *args: Any, at: set[tuple[str, int]], on_stop: set[tuple[str, int]]) -> None:
        super().__init__(*args)
        self.at, self.on_stop = set(at), set(on_stop)

    def stop(self, trial_id: str) -> None:
        trial = self._trials.get(trial_id)
        if trial is not None and (trial_id, trial.step) in self.on_stop:
            self.on_stop.discard((trial_id, trial.step))
            self._end(trial, End(trial_id, error="node lost", lost=True))
            return
        super().stop(trial_id)

    def poll(self, timeout: float) -> list[Event]:
        out: list[Event] = []
        for event in super().poll(timeout):
            if isinstance(event, Report) and (event.trial_id, event.step) in self.at:
                self.at.discard((event.trial_id, event.step))
                trial = self._trials.pop(event.trial_id)
                self._idle[trial.slot] = None
                event = End(event.trial_id, error="node lost", lost=True)
            out.append(event)
        return out


def run(folder: Path, kind: str = "pbt", **losses: set[tuple[str, int]]) -> Engine:
    folder.mkdir(parents=True)
    s = study(STUDY.format(kind=kind))
    backend = LosingNodes(s, **losses) if losses else SimulatedBackend(s)
    engine = Engine(s, 1, folder, backend)
    engine.run(4)
    engine.release()
    engine.recorder.finish({}, engine.checkpoints.path_of)
    engine.recorder.journal.close()
    return engine


def journal(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "journal.jsonl").read_text().splitlines()]


def test_members_on_lost_nodes_go_on_from_their_own_or_the_donors_checkpoint(tmp_path: Path) -> None:
    clean = journal(run(tmp_path / "clean").recorder.folder)
    first = next(e for e in clean if e["e"] == "exploit")
    member, at, donor_step = first["trial"], int(first["step"]), int(first["donor_step"])
    other = next(e["trial"] for e in clean if e["e"] == "start" and e["trial"] not in (member, first["donor"]))
    engine = run(
        tmp_path / "lost",
        on_stop={(member, at)},  # stopped to exploit: its node is lost as it stops
        at={(member, donor_step + 1), (other, 30)},  # lost again before its first step from the copy; another mid-run
    )
    assert not engine.backend.on_stop and not engine.backend.at  # type: ignore[attr-defined]  # every loss happened
    lost = engine.recorder.folder
    events = journal(lost)
    exploit = next(e for e in events if e["e"] == "exploit")
    assert exploit == first  # the same decision: nothing was lost before it
    retries = [(e["trial"], e["step"], e.get("cause")) for e in events if e["e"] == "retry"]
    assert (member, donor_step, "node_lost") in retries  # retried from its copy of the donor's state
    assert (other, 29, "node_lost") in retries  # from its own last checkpoint
    trials = pd.read_parquet(lost / "trials.parquet").set_index("trial_id")
    assert len(trials) == 8 and set(trials["status"]) == {"finished"} and set(trials["step"]) == {40}
    assert trials.loc[member, "infra_retries"] == 1 and trials.loc[other, "infra_retries"] == 1

    after = _row(lost, member, donor_step + 1)  # the donor's state, one step on, at the new rate
    assert after["config/lr"] == exploit["new"]["lr"]
    assert after["loss"] == _row(tmp_path / "clean", member, donor_step + 1)["loss"]
    history = pd.read_parquet(lost / "history.parquet")
    for trial in (member, other):
        steps = history[history["trial_id"] == trial]["step"].tolist()
        assert steps == list(range(1, 41))  # every step once: nothing skipped, nothing twice
    later = [e for e in events[events.index(exploit) + 1 :] if e["e"] == "exploit"]
    assert later  # the population goes on exploiting


def _row(folder: Path, trial: str, step: int) -> pd.Series:
    history = pd.read_parquet(folder / "history.parquet")
    return history[(history["trial_id"] == trial) & (history["step"] == step)].iloc[0]


def test_a_resumed_pb2_study_fits_its_gp_to_the_data_it_had(tmp_path: Path) -> None:
    seen: list[tuple[list[Any], Any]] = []
    live = _engine(tmp_path / "live")
    sched = live.changes.scheduler  # type: ignore[attr-defined]
    assert isinstance(sched, PopulationBasedBandits)
    applied = sched.applied

    def watched(*args: Any) -> None:  # what the GP knows after each exploit, and what it would propose
        applied(*args)
        seen.append((sched.data, sched.explore({"lr": 0.01}, np.random.default_rng(0))))

    sched.applied = watched  # type: ignore[method-assign]
    live.run(4)
    live.release()
    live.recorder.journal.close()
    events = journal(tmp_path / "live")
    exploits = [i for i, e in enumerate(events) if e["e"] == "exploit"]
    assert len(exploits) == len(seen) >= 3 and len(seen[-1][0]) >= MIN_DATA
    for k in (len(exploits) // 2, len(exploits) - 1):  # interrupted just after an exploit
        resumed = _engine(tmp_path / f"r{k}")
        replay(resumed, events[: exploits[k] + 1])
        again = resumed.changes.scheduler  # type: ignore[attr-defined]
        data, proposal = seen[k]
        assert again.data == data and len(data) >= 1
        assert again.explore({"lr": 0.01}, np.random.default_rng(0)) == proposal
        resumed.release()
        resumed.recorder.journal.close()


def _engine(folder: Path) -> Engine:
    folder.mkdir(parents=True)
    s = study(STUDY.format(kind="pb2"))
    return Engine(s, 1, folder, SimulatedBackend(s))
