"""``early_terminate: {type: pbt}`` on ``backend: tune``: Ray's own ``PopulationBasedTraining``,
its exploits carried out through each member's own copy of the donor's checkpoint and recorded
as the engine records them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

import tuner
from tests.conftest import cli_here, study
from trainables.toy import descent_step

POPULATION = """
name: pop_tune
trainable: trainables.toy:descent
backend: tune
metric: {{name: loss, goal: minimize}}
method: random
seed: 2
run_cap: 4
max_concurrent: 2
early_terminate:
  type: {kind}
  max_t: 12
  perturbation_interval: 2
  quantile_fraction: 0.5
  mutations:
    lr: {{distribution: log_uniform_values, min: 0.001, max: 0.3}}
parameters:
  lr: {{distribution: log_uniform_values, min: 0.001, max: 0.3}}
  sleep: {{value: 0.1}}
checkpoints: {{keep: 3}}  # a donor's boundary checkpoint is kept until the next boundary
points_to_evaluate: [{{lr: 0.002}}, {{lr: 0.1}}, {{lr: 0.003}}, {{lr: 0.15}}]
"""


@pytest.mark.parametrize("kind", ["pbt", "pb2"])
def test_a_population_is_accepted_on_tune_with_rays_scheduler(kind: str) -> None:
    from tuner.backends.ray.tune._callback import make_scheduler

    found = make_scheduler(study(POPULATION.format(kind=kind)), "step", "/nowhere")
    assert type(found).__mro__[2].__name__ == ("PopulationBasedTraining" if kind == "pbt" else "PB2")


@pytest.mark.parametrize(
    "param",
    [
        "{distribution: log_uniform_values, min: 0.001, max: 0.3}",
        "{distribution: uniform, min: 0, max: 1}",
        "{distribution: int_uniform, min: 1, max: 4}",
        "{distribution: q_uniform, min: 0, max: 1, q: 0.25}",
        "{distribution: q_log_uniform_values, min: 2, max: 64, q: 2}",
        "{distribution: q_uniform, min: 2, max: 10, q: 2}",
        "{distribution: normal, mu: 0, sigma: 1}",
    ],
)
def test_each_mutation_converts_to_the_tune_domain_that_converts_back_to_it(param: str) -> None:
    from tuner.backends.ray.tune._domains import parameter
    from tuner.backends.ray.tune._pbt import mutation
    from tuner.space import parse_parameters

    parsed, problems = parse_parameters(yaml.safe_load(f"x: {param}"), "parameters")
    assert not problems
    assert parameter(mutation(parsed.params["x"])) == parsed.params["x"]


def test_a_categorical_mutation_is_the_list_ray_moves_along() -> None:
    from tuner.backends.ray.tune._pbt import mutation
    from tuner.space import Categorical

    assert mutation(Categorical(("a", "b", "c"))) == ["a", "b", "c"]


def test_a_perturbed_value_stays_within_its_range() -> None:
    from tuner.backends.ray.tune._pbt import bounded
    from tuner.space import Float, Int

    assert bounded(Float(0.001, 0.3, log=True), 0.3 * 1.2) == 0.3
    assert bounded(Int(1, 4), 4.8) == 4
    assert bounded(Float(0.0, 1.0, q=0.25), 0.6) == 0.5


@pytest.mark.slow
def test_members_go_on_from_the_donors_checkpoint_with_new_values(ray_local: None, in_tmp: Path) -> None:
    (in_tmp / "space.yaml").write_text(POPULATION.format(kind="pbt"))
    done = cli_here("run", "space.yaml", "--no-dashboard", cwd=in_tmp)
    assert done.returncode == 0, done.stderr
    folder = in_tmp / "results" / "pop_tune"
    trials = tuner.load_results(folder).set_index("trial_id")
    assert sorted(trials.index) == ["t0001", "t0002", "t0003", "t0004"]
    assert set(trials["status"]) == {"finished"} and set(trials["step"]) == {12}

    events = [json.loads(line) for line in (folder / "journal.jsonl").read_text().splitlines()]
    exploits = [e for e in events if e["e"] == "exploit"]
    assert exploits, "no member exploited another"
    history = tuner.load_history(folder)
    for ex in exploits:
        member, donor, at = ex["trial"], ex["donor"], ex["donor_step"]
        assert member != donor and at >= 2
        assert 0.001 <= ex["new"]["lr"] <= 0.3
        assert f"/{member}/from-{donor}/" in ex["copy"] and Path(ex["copy"]).is_dir()
    last = {ex["trial"]: ex for ex in exploits}  # the history holds what followed each member's last one
    for member, ex in last.items():
        # the step after it: the donor's weights one step on, at the new rate, with the member's own seed
        state = torch.load(Path(ex["copy"]) / "state.pt", weights_only=True)
        at = int(ex["donor_step"])
        assert state["step"] == at
        after = history[(history["trial_id"] == member) & (history["step"] == at + 1)]
        _, loss = descent_step(state["state"]["w"], ex["new"]["lr"], int(trials.loc[member, "seed"]), at + 1)
        assert after["loss"].tolist() == [pytest.approx(loss, rel=1e-5)]
        assert after["config/lr"].tolist() == [ex["new"]["lr"]]

    best = yaml.safe_load((folder / "best.yaml").read_text())
    assert best["schedule"]["lr"][0][0] == 0 and best["params"]["lr"] == best["schedule"]["lr"][-1][1]
