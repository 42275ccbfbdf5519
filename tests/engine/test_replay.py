"""Resume: a journal replayed through the engine credits every result to its configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import study
from tuner.backends.simulated import SimulatedBackend
from tuner.engine import Engine
from tuner.engine._replay import replay

BAYES = """
name: replayed
trainable: trainables.toy:quadratic
metric: {name: loss, goal: minimize}
method: bayes
seed: 4
run_cap: 10
searcher: {init_points: 2}
early_terminate: {type: asha, max_t: 9, grace_period: 1, reduction_factor: 3}
parameters:
  lr: {distribution: log_uniform_values, min: 1e-4, max: 1e-1}
  act: {values: [relu, tanh]}
  steps: {value: 9}
"""


def _engine(folder: Path) -> Engine:
    folder.mkdir(parents=True, exist_ok=True)
    s = study(BAYES)
    return Engine(s, 4, folder, SimulatedBackend(s))


def journal_with_a_foreign_config() -> list[dict[str, Any]]:
    """Two finished trials and one still running, with configurations no searcher proposed."""
    return [
        {"e": "start", "trial": "t0001", "params": {"lr": 0.05, "act": "tanh", "steps": 9}, "seed": 1, "t": 1.0},
        {"e": "report", "trial": "t0001", "step": 9, "time": 0.1, "metrics": {"loss": 3.0}},
        {"e": "end", "trial": "t0001", "status": "finished", "error": None, "t": 2.0},
        {"e": "start", "trial": "t0002", "params": {"lr": 0.01, "act": "relu", "steps": 9}, "seed": 2, "t": 2.0},
        {"e": "report", "trial": "t0002", "step": 1, "time": 0.1, "metrics": {"loss": 1.1}},
        {"e": "end", "trial": "t0002", "status": "pruned", "error": None, "t": 3.0},
        {"e": "start", "trial": "t0003", "params": {"lr": 0.002, "act": "relu", "steps": 9}, "seed": 3, "t": 3.0},
        {"e": "report", "trial": "t0003", "step": 1, "time": 0.1, "metrics": {"loss": 1.0}},
    ]


def test_replay_credits_each_result_to_the_configuration_that_produced_it(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    left = replay(engine, journal_with_a_foreign_config())
    assert left == ["t0003"]
    searcher: Any = engine.searcher.searcher
    assert searcher.known.configs["t0001"] == {"lr": 0.05, "act": "tanh"}
    assert searcher.observed() == {"t0001": 3.0, "t0002": 1.1}
    assert searcher.known.pending == {"t0003": {"lr": 0.002, "act": "relu"}}
    assert engine.admission.launched == 3 and engine.recorder.trials["t0002"].status == "pruned"
    assert engine.recorder.trials["t0003"].step == 1  # its report replayed: it continues from there
    engine.writer.close()


def test_a_replayed_searcher_proposes_what_the_uninterrupted_one_would(tmp_path: Path) -> None:
    live = _engine(tmp_path / "a")
    replay(live, journal_with_a_foreign_config())
    again = _engine(tmp_path / "b")
    replay(again, journal_with_a_foreign_config())
    assert live.searcher.searcher.suggest("t0004") == again.searcher.searcher.suggest("t0004")
    live.writer.close()
    again.writer.close()
