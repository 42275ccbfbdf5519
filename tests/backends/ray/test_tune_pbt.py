"""``early_terminate: {type: pbt}`` on ``backend: tune``: Ray's own ``PopulationBasedTraining``,
its exploits carried out through each member's own copy of the donor's checkpoint and recorded
as the engine records them."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import study

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
