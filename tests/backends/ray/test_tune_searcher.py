"""Our searchers as Ray Tune searchers: Tune's domains converted as Tune samples them, outcomes
told as the engine tells them, save/restore, and real ``tune.Tuner`` runs with ASHA."""

from __future__ import annotations

import math
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ray import tune
from ray.tune.schedulers import ASHAScheduler

from tests.conftest import ROOT
from tuner import searchers
from tuner.backends.ray.tune import TuneSearcher, convert_param_space
from tuner.errors import ConfigError, UserError
from tuner.integrations.ray_tune import Searcher
from tuner.space import Categorical, Constant, Float, Int, Normal, nest, parse_parameters


def test_the_integration_imports_ray_only_when_its_searcher_is_used() -> None:
    code = (
        "import sys, tuner.integrations.ray_tune as m; assert 'ray' not in sys.modules; "
        "assert m.Searcher.__name__ == 'ParamSpaceSearcher' and 'ray' in sys.modules"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=env, timeout=120)


# -- Tune's domains --------------------------------------------------------------------------

DOMAINS = [
    (tune.uniform(0, 2), Float(0.0, 2.0)),
    (tune.quniform(0, 1, 0.25), Float(0.0, 1.0, q=0.25)),
    (tune.loguniform(1e-4, 1e-1), Float(1e-4, 1e-1, log=True)),
    (tune.qloguniform(1e-3, 1, 1e-3), Float(1e-3, 1.0, log=True, q=1e-3)),
    (tune.randint(1, 5), Int(1, 4)),
    (tune.lograndint(1, 100), Int(1, 99, log=True)),
    (tune.qrandint(0, 10, 5), Float(0.0, 10.0, q=5.0, integer=True)),
    (tune.qrandint(1, 10, 3), Float(3.0, 9.0, q=3.0, integer=True)),
    (tune.qrandint(1, 5, 1), Int(1, 4)),
    (tune.qlograndint(2, 16, 2), Float(2.0, 16.0, log=True, q=2.0, integer=True)),
    (tune.qlograndint(1, 9, 1), Int(1, 8, log=True)),
    (tune.choice(["a", 1, None]), Categorical(("a", 1, None))),
    (tune.grid_search([1, 2]), Categorical((1, 2), grid=True)),
    (tune.randn(1, 2), Normal(1.0, 2.0)),
    (tune.qrandn(0, 1, 0.5), Normal(0.0, 1.0, q=0.5)),
    (tune.randint(3, 4), Constant(3)),
    (tune.choice([7]), Constant(7)),
]


@pytest.mark.parametrize(("domain", "expected"), DOMAINS, ids=[repr(e) for _, e in DOMAINS])
def test_each_domain_converts_to_the_parameter_with_its_values(domain: Any, expected: Any) -> None:
    space, constants = convert_param_space({"p": domain})
    assert (space.params.get("p") or Constant(constants["p"])) == expected


@pytest.mark.parametrize(
    "domain",
    [
        tune.randint(1, 5),
        tune.lograndint(1, 20),
        tune.qrandint(1, 10, 3),
        tune.qrandint(0, 10, 5),
        tune.qrandint(1, 5, 1),
        tune.qlograndint(2, 16, 2),
        tune.quniform(0, 1, 0.25),
        tune.qloguniform(0.5, 4, 0.5),
        tune.choice(["a", "b", "c"]),
    ],
)
def test_finite_domains_have_exactly_the_values_tune_draws(domain: Any) -> None:
    space, _ = convert_param_space({"p": domain})
    drawn = {domain.cast(v) for v in domain.sample(size=3000, random_state=0)}  # as Tune casts one draw
    ours = space.params["p"].grid_values()
    assert drawn == set(ours)
    assert {type(v) for v in drawn} == {type(v) for v in ours}  # ints stay ints, Tune's floats floats


@pytest.mark.parametrize("domain", [tune.uniform(-1, 3), tune.loguniform(1e-3, 10), tune.randn(2, 0.5)])
def test_continuous_domains_accept_what_tune_draws_and_draw_within_it(domain: Any) -> None:
    param = convert_param_space({"p": domain})[0].params["p"]
    assert all(param.rule(float(v)) is None for v in domain.sample(size=500, random_state=0))
    ours = [param.sample(np.random.default_rng(i)) for i in range(500)]
    if isinstance(param, Normal):
        assert abs(np.mean(ours) - 2) < 0.1 and abs(np.std(ours) - 0.5) < 0.1
    else:
        assert all(domain.is_valid(v) for v in ours)


def test_nested_param_space_gives_dotted_names_and_keeps_the_rest_as_it_is() -> None:
    space, constants = convert_param_space(
        {"opt": {"lr": tune.loguniform(1e-4, 1e-1), "name": "adam"}, "seed": 3, "data": {"sizes": [1, 2], 0: "x"}}
    )
    assert list(space.params) == ["opt.lr"]
    assert constants == {"opt": {"name": "adam"}, "seed": 3, "data": {"sizes": [1, 2], 0: "x"}}


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (tune.sample_from(lambda config: 1), r"^param_space\.p: tune\.sample_from"),
        ({"eval": "1 + 1"}, r"^param_space\.p: an \{'eval'"),
        ([tune.uniform(0, 1), 2], r"^param_space\.p: a search domain inside a list"),
        ({"a.b": tune.uniform(0, 1)}, r"^param_space\.p\.a\.b: a searched parameter's key"),
        (tune.choice([]), r"^param_space\.p: tune\.choice needs a non-empty list"),
        (tune.randint(3, 3), r"^param_space\.p: tune\.randint\(3, 3\) has no values"),
        (tune.uniform(2, 1), r"^param_space\.p: tune\.uniform needs finite bounds"),
        (tune.grid_search([{"a": 1}, {"a": 2}]), r"^param_space\.p: grid_search over dicts"),
        (tune.choice([tune.uniform(0, 1)]), r"^param_space\.p: tune\.choice holds a search domain"),
    ],
)
def test_what_cannot_be_searched_is_refused_in_one_line_naming_it(value: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        convert_param_space({"p": value})
    assert "\n" not in str(info.value)


# -- the Searcher's arguments ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "space", "match"),
    [
        ({"method": "bayes", "init_point": 3}, None, r"^Searcher\.init_point: unknown option of method bayes$"),
        ({"method": "optuna", "sampler": "cmaes"}, None, r"^Searcher\.sampler: .* of method optuna, got 'cmaes'$"),
        ({"method": "bayes", "init_points": -1}, None, r"^Searcher\.init_points: .*greater than or equal to 0"),
        ({"method": "hyperopt"}, None, r"^Searcher\.method: unknown method 'hyperopt'; one of grid, random"),
        ({"mode": "minimize"}, None, r"^Searcher\.mode: must be 'min' or 'max', got 'minimize'$"),
        ({"max_t": 0}, None, r"^Searcher\.max_t: must be a number > 0"),
        ({"method": "grid"}, {"x": tune.uniform(0, 1)}, r"^param_space\.x: method grid needs a finite set of values"),
        (
            {"points_to_evaluate": [{"x": 5}]},
            {"x": tune.randint(0, 5)},
            r"^Searcher\.points_to_evaluate\[0\]\.x: must be an integer in \[0, 4\]$",
        ),
        ({"metric": "acc"}, {"x": tune.uniform(0, 1)}, r"^Searcher\.metric: is 'acc' and tune\.TuneConfig\(metric"),
    ],
)
def test_bad_arguments_are_one_line_errors_naming_them(kwargs: dict[str, Any], space: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        searcher = Searcher(**{"metric": "loss", "mode": "min", **kwargs})
        searcher.set_search_properties("loss", "min", space, num_samples=4)
    assert "\n" not in str(info.value)


def test_metric_and_mode_come_from_tune_config_and_are_required() -> None:
    searcher = Searcher(method="random", seed=0)
    with pytest.raises(ConfigError, match="metric and mode are required"):
        searcher.set_search_properties(None, None, {"x": tune.uniform(0, 1)})
    searcher.set_search_properties("acc", "max", {"x": tune.uniform(0, 1)})
    assert (searcher.metric, searcher.mode) == ("acc", "max")
    with pytest.raises(UserError, match="no search space; pass param_space"):
        Searcher(metric="loss", mode="min").suggest("a")


# -- outcomes, as the engine tells them -----------------------------------------------------


def report(searcher: Any, trial: str, values: list[float], *, end: int | None = None, error: bool = False) -> None:
    """Tune's calls for a trial reporting ``values`` at steps 1, 2, ...; the last one reaches the
    searcher only through ``on_trial_complete`` when a scheduler stopped it there (``end``)."""
    seen = values if end is None else values[:-1]
    for step, value in enumerate(seen, start=1):
        searcher.on_trial_result(trial, {"loss": value, "training_iteration": step})
    last = {"loss": values[-1], "training_iteration": len(values), "done": True} if values else None
    searcher.on_trial_complete(trial, result=last, error=error)


def test_outcomes_are_told_minimised_pruned_before_max_step_with_curves() -> None:
    space, _ = parse_parameters(
        {"kind": {"values": ["a", "b"]}, "x": {"distribution": "uniform", "min": 0, "max": 1, "when": {"kind": "a"}}}
    )
    inner = searchers.create("random", space, 0, {}, None)
    searcher = TuneSearcher(inner, space, metric="loss", mode="max", max_step=4, constants={"epochs": 4})
    configs = {t: searcher.suggest(t) for t in ("A", "B", "C", "D", "E")}
    report(searcher, "A", [1.0, 2.0, 3.0, 4.0], end=4)  # stopped at max_step
    report(searcher, "B", [1.0, 0.5], end=2)  # stopped by the scheduler at step 2
    report(searcher, "C", [1.0, 2.0, 3.0])  # ended on its own at step 3
    report(searcher, "D", [1.0], error=True)
    report(searcher, "E", [float("nan")])
    told = {e[1]: e[3] for e in searcher.get_state()["events"] if e[0] == "end"}
    assert searcher.trial_ids() == {"A": "t0001", "B": "t0002", "C": "t0003", "D": "t0004", "E": "t0005"}
    assert (told["t0001"].state, told["t0001"].value, told["t0001"].step) == ("complete", -4.0, 4)
    assert told["t0001"].curve == ((1.0, -1.0), (2.0, -2.0), (3.0, -3.0), (4.0, -4.0))
    assert (told["t0002"].state, told["t0002"].value, told["t0002"].step) == ("pruned", -0.5, 2)
    assert (told["t0003"].state, told["t0003"].step) == ("complete", 3)
    assert told["t0004"].state == told["t0005"].state == "failed"
    assert inner.known.outcomes == told
    for trial, config in configs.items():  # as the engine builds it: inactive parameters left out
        params = inner.known.configs[searcher.trial_ids()[trial]]
        assert config == {"epochs": 4, **nest(space.complete(params))}
        assert ("x" in config) == (config["kind"] == "a")


def test_several_objectives_are_told_each_minimised_and_a_report_without_the_metric_keeps_the_last() -> None:
    space, _ = parse_parameters({"x": {"min": 0.0, "max": 1.0}})
    inner = searchers.create("random", space, 0, {}, None, objectives=2)
    objectives = [("acc", "max"), ("size", "min")]
    searcher = TuneSearcher(inner, space, metric="acc", mode="max", objectives=objectives)
    searcher.suggest("A")
    searcher.on_trial_result("A", {"acc": 0.5, "size": 3, "training_iteration": 1})
    searcher.on_trial_result("A", {"other": 1.0, "training_iteration": 2})
    searcher.on_trial_complete("A", {"other": 1.0, "training_iteration": 2})
    (told,) = inner.known.outcomes.values()
    assert (told.state, told.value, told.values, told.step) == ("complete", -0.5, (-0.5, 3.0), 2)


def test_without_max_step_every_trial_that_reports_is_complete_and_curves_are_not_kept() -> None:
    searcher = Searcher(method="random", metric="loss", mode="min", seed=0)
    searcher.set_search_properties(None, None, {"x": tune.uniform(0, 1)})
    searcher.suggest("A")
    report(searcher, "A", [3.0, 2.0], end=2)
    (told,) = [e[3] for e in searcher.get_state()["events"] if e[0] == "end"]
    assert (told.state, told.value, told.step, told.curve) == ("complete", 2.0, 2, None)


def test_a_grid_finishes_after_its_last_cell_and_gives_grid_search_values_every_combination() -> None:
    searcher = Searcher(method="grid", metric="loss", mode="min")
    searcher.set_search_properties(None, None, {"a": tune.grid_search([1, 2]), "b": tune.choice("xy")}, num_samples=9)
    configs = [searcher.suggest(f"T{i}") for i in range(5)]
    assert configs[:4] == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]
    assert configs[4] == Searcher.FINISHED


def test_a_trial_paused_by_hyperband_for_bohb_is_told_once_when_it_ends() -> None:
    searcher = Searcher(method="random", metric="loss", mode="min", seed=0, max_t=4)
    searcher.set_search_properties(None, None, {"x": tune.uniform(0, 1)})
    searcher.suggest("A")
    searcher.on_trial_result("A", {"loss": 2.0, "training_iteration": 1})
    searcher.on_pause("A")  # HyperBandForBOHB calls these on any search_alg (ConcurrencyLimiter passes them on)
    searcher.on_unpause("A")
    report(searcher, "A", [2.0, 1.0, 0.5, 0.25])
    assert [(e[0], e[3] and e[3].state) for e in searcher.get_state()["events"]] == [
        ("start", None),
        ("end", "complete"),
    ]


def test_evaluated_rewards_are_told_as_complete_trials_and_never_run() -> None:
    points = [{"x": 0.5, "opt": {"lr": 0.01}, "net": {"w": 16}}, {"x": 0.9, "opt": {"lr": 0.1}, "net": {"w": 64}}]
    space = {"x": tune.uniform(0, 1), "opt": {"lr": tune.loguniform(1e-3, 1), "name": "adam"}}
    space["net"] = tune.choice([{"w": 16}, {"w": 64}])
    searcher = Searcher(method="random", seed=0, points_to_evaluate=points, evaluated_rewards=[0.3, 0.7])
    searcher.set_search_properties("acc", "max", space, num_samples=4)
    told = searcher._searcher().known.outcomes  # type: ignore[attr-defined]
    assert {t: (o.state, o.value) for t, o in told.items()} == {
        "e0001": ("complete", -0.3),
        "e0002": ("complete", -0.7),
    }
    configs = [searcher.suggest(f"T{i}") for i in range(3)]
    assert all(c["x"] not in (0.5, 0.9) and c["opt"]["name"] == "adam" for c in configs)
    state = searcher.get_state()
    again = Searcher()
    again.set_state(pickle.loads(pickle.dumps(state)))
    assert set(again._searcher().known.outcomes) == {"e0001", "e0002"}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"points_to_evaluate": [{"x": 0.5}], "evaluated_rewards": [1.0, 2.0]},
            r"^Searcher\.evaluated_rewards: has 2 values and points_to_evaluate 1; give one reward for each point$",
        ),
        ({"evaluated_rewards": [1.0]}, r"^Searcher\.evaluated_rewards: has 1 values and points_to_evaluate 0"),
        (
            {"points_to_evaluate": [{"x": 0.5}], "evaluated_rewards": ["high"]},
            r"^Searcher\.evaluated_rewards: must be a list of finite numbers",
        ),
        (
            {"points_to_evaluate": [{"x": 0.5}], "evaluated_rewards": [1.0]},
            r"^Searcher\.points_to_evaluate\[0\]: lacks k; a point with an evaluated reward gives every searched",
        ),
    ],
)
def test_bad_evaluated_rewards_are_one_line_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        searcher = Searcher(metric="loss", mode="min", **kwargs)
        searcher.set_search_properties(None, None, {"x": tune.uniform(0, 1), "k": tune.randint(1, 4)})
    assert "\n" not in str(info.value)


def test_an_errored_trial_run_again_on_restore_is_told_its_new_outcome(tmp_path: Path) -> None:
    """``Tuner.restore(path, trainable, restart_errored=True)`` reruns an errored trial under a new
    Tune id with the same configuration (its results carry it as ``config/...`` keys);
    ``resume_errored=True`` keeps its id."""
    searcher = Searcher(method="bayes", metric="loss", mode="min", seed=0, init_points=2)
    searcher.set_search_properties(None, None, {"opt": {"lr": tune.loguniform(1e-3, 1)}, "k": tune.randint(1, 4)})
    configs = {t: searcher.suggest(t) for t in ("A", "B", "C")}
    report(searcher, "A", [1.0])
    report(searcher, "B", [2.0], error=True)
    report(searcher, "C", [3.0], error=True)
    searcher.save(str(tmp_path / "s.pkl"))
    restored = Searcher()
    restored.restore(str(tmp_path / "s.pkl"))
    b = configs["B"]
    flat_b = {"config/opt/lr": b["opt"]["lr"], "config/k": b["k"]}
    restored.on_trial_result("B2", {"loss": 0.5, "training_iteration": 1, **flat_b})
    restored.on_trial_complete("B2", {"loss": 0.25, "training_iteration": 2, **flat_b})
    restored.on_trial_result("C", {"loss": 0.75, "training_iteration": 1})  # resume_errored: same id
    restored.on_trial_complete("C", {"loss": 0.75, "training_iteration": 1})
    restored.on_trial_complete("A", {"loss": 9.0, "training_iteration": 1})  # told already: ignored
    outcomes = restored._searcher().known.outcomes  # type: ignore[attr-defined]
    assert {t: (o.state, o.value) for t, o in outcomes.items()} == {
        "t0001": ("complete", 1.0),
        "t0002": ("complete", 0.25),
        "t0003": ("complete", 0.75),
    }
    assert restored.trial_ids()["B2"] == "t0002"
    again = Searcher()
    again.set_state(restored.get_state())
    assert {t: o.state for t, o in again._searcher().known.outcomes.items()} == dict.fromkeys(outcomes, "complete")  # type: ignore[attr-defined]


# -- save and restore ------------------------------------------------------------------------

SPACE = {"x": tune.uniform(-1, 1), "k": tune.randint(1, 6), "c": tune.choice(["a", "b"]), "g": tune.grid_search([1, 2])}


def run_trials(searcher: Any, first: int, n: int) -> list[Any]:
    """``n`` trials, every fourth left in flight, every other one stopped before max_t."""
    configs = []
    for i in range(first, first + n):
        config = searcher.suggest(f"T{i}")
        configs.append(config)
        if i % 4 != 3:
            x = config.get("x", 0.0) ** 2 + config["k"]
            report(searcher, f"T{i}", [x + 1, x + 0.5, x], end=3 if i % 2 else None)
    return configs


@pytest.mark.parametrize(
    ("method", "options"),
    [("grid", {}), ("random", {}), ("bayes", {"init_points": 3}), ("optuna", {"n_startup_trials": 3})],
)
def test_a_restored_searcher_goes_on_as_the_saved_one(method: str, options: dict[str, Any], tmp_path: Path) -> None:
    space = SPACE if method != "grid" else {"k": tune.randint(1, 4), "c": tune.choice(["a", "b"]), "g": SPACE["g"]}
    searcher = Searcher(method=method, metric="loss", mode="min", seed=1, max_t=3, **options)
    searcher.set_search_properties(None, None, {**space, "epochs": 3}, num_samples=30)
    before = run_trials(searcher, 0, 8)
    searcher.save(str(tmp_path / "s.pkl"))
    restored = Searcher()  # bare: everything comes from the file, as after Tuner.restore without param_space
    restored.restore(str(tmp_path / "s.pkl"))
    assert restored.trial_ids() == searcher.trial_ids()
    assert restored.get_state()["events"] == searcher.get_state()["events"]
    copied = pickle.loads(pickle.dumps(searcher))  # as Tune pickles its searcher (tuner.pkl)
    for each in (searcher, restored, copied):  # a trial in flight when saved ends after the restore
        report(each, "T3", [0.1, 0.2, 0.3])
    after, again = run_trials(searcher, 8, 4), run_trials(restored, 8, 4)
    assert run_trials(copied, 8, 4) == after
    assert all(c["epochs"] == 3 for c in before + after + again)
    if method == "optuna":  # Optuna's sampler keeps a random state a history does not hold
        assert not {str(c) for c in again} & {str(c) for c in before}
    else:
        assert again == after


# -- real Tuner runs -------------------------------------------------------------------------

EVERY_DOMAIN = {
    "opt": {
        "lr": tune.loguniform(1e-4, 1e-1),
        "momentum": tune.quniform(0.5, 0.9, 0.1),
        "decay": tune.qloguniform(1e-4, 1e-2, 1e-4),
        "name": "sgd",
    },
    "model": {
        "layers": tune.randint(1, 4),
        "width": tune.lograndint(8, 129),
        "heads": tune.qrandint(2, 8, 2),
        "ff": tune.qlograndint(64, 512, 64),
        "act": tune.choice(["relu", "tanh"]),
    },
    "dropout": tune.uniform(0, 0.5),
    "batch": tune.grid_search([16, 32]),
    "noise": tune.randn(0, 1),
    "shift": tune.qrandn(0, 1, 0.5),
    "epochs": 4,
    "data": {"name": "toy", "sizes": [1, 2]},
    "derived": tune.sample_from(lambda config: config["model"]["layers"] * 2),  # evaluated by Tune
}
UNBOUNDED = ("noise", "shift")


def train_fn(config: dict[str, Any]) -> None:
    opt, model = config["opt"], config["model"]
    base = (math.log10(opt["lr"]) + 2) ** 2 + model["layers"] * 0.1 + (model["act"] == "tanh")
    for i in range(1, config["epochs"] + 1):
        tune.report({"loss": base + 1 / i})


def fit(searcher: Any, param_space: dict[str, Any], num_samples: int, folder: Path, **run: Any) -> Any:
    """``tune.Tuner(...).fit()`` with ASHA, two trials at a time."""
    tuner = tune.Tuner(
        train_fn,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=ASHAScheduler(max_t=8, grace_period=1, reduction_factor=2),
            num_samples=num_samples,
            metric="loss",
            mode="min",
            reuse_actors=True,
            max_concurrent_trials=2,
        ),
        run_config=tune.RunConfig(storage_path=str(folder), name="tune", verbose=0, **run),
    )
    return tuner.fit()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "options", "samples", "trials"),
    [
        ("random", {}, 6, 6),
        ("bayes", {"init_points": 2}, 6, 6),
        ("optuna", {"n_startup_trials": 2}, 6, 6),
        ("grid", {}, 12, 4),  # a grid of 4 cells with num_samples 12: 4 trials, then FINISHED
    ],
)
def test_tuner_runs_every_method_over_every_domain_with_asha(
    ray_local: None, tmp_path: Path, method: str, options: dict[str, Any], samples: int, trials: int
) -> None:
    space = {k: v for k, v in EVERY_DOMAIN.items() if method == "random" or k not in UNBOUNDED}
    if method == "grid":
        space = {
            "opt": {"lr": tune.choice([1e-3, 1e-2]), "name": "sgd"},
            "model": {"layers": 1, "act": "relu"},
            "batch": tune.grid_search([16, 32]),
            "epochs": 4,
        }
    searcher = Searcher(method=method, seed=0, max_t=8, **options)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = fit(searcher, space, samples, tmp_path)
    converted, _ = convert_param_space({k: v for k, v in space.items() if k != "derived"})
    assert len(results) == trials and not results.errors
    for result in results:
        config = result.config
        assert config["epochs"] == 4 and config["opt"]["name"] == "sgd"
        assert method == "grid" or config["data"] == {"name": "toy", "sizes": [1, 2]}
        assert method == "grid" or config["derived"] == 2 * config["model"]["layers"]
        for name, param in converted.params.items():
            head, _, leaf = name.rpartition(".")
            value = config[head][leaf] if head else config[name]
            assert param.rule(value) is None, (name, value)
    assert {r.config["batch"] for r in results} == {16, 32}  # every grid_search value, whatever the method
    told = [e[3] for e in searcher.get_state()["events"] if e[0] == "end"]
    assert len(told) == trials
    # epochs 4 < max_t 8: a trial that ran all its epochs ended on its own (complete); one that
    # ASHA stopped at a rung (1, 2 or 4) is pruned there
    assert all((o.state, o.step) == ("complete", 4) or (o.state == "pruned" and o.step <= 4) for o in told), told
    assert any(o.state == "complete" for o in told)  # the first trial at each rung goes on
    notices = [str(w.message) for w in caught if "sample_from" in str(w.message)]
    assert notices == (
        []
        if method == "grid"
        else ["param_space.derived: tune.sample_from is evaluated by Tune on each suggestion, not searched"]
    )
    assert sorted(o.step for o in told) == sorted(r.metrics["training_iteration"] for r in results)


class Interrupt(tune.Callback):
    """Interrupts the experiment (as Ctrl+C does) once ``after`` trials have ended, the first time only."""

    def __init__(self, after: int, marker: str) -> None:
        self.after, self.marker, self.ended = after, marker, 0

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.ended += 1
        if self.ended >= self.after and not os.path.exists(self.marker):
            Path(self.marker).touch()
            os.kill(os.getpid(), signal.SIGUSR1)


@pytest.mark.slow
def test_tuner_restore_goes_on_with_the_searcher_where_it_stopped(ray_local: None, tmp_path: Path) -> None:
    space = {"opt": {"lr": tune.loguniform(1e-4, 1e-1)}, "model": {"layers": tune.randint(1, 4), "act": "relu"}}
    space |= {"epochs": 3}
    marker = tempfile.mktemp(dir=tmp_path)
    first = fit(Searcher(method="random", seed=5, max_t=8), space, 7, tmp_path, callbacks=[Interrupt(3, marker)])
    assert len([r for r in first if r.metrics]) < 7
    results = tune.Tuner.restore(str(tmp_path / "tune"), train_fn).fit()
    assert len(results) == 7 and not results.errors
    # random search proposes by the number of trials known: the same seven as a run never interrupted
    alone = Searcher(method="random", seed=5, metric="loss", mode="min")
    alone.set_search_properties(None, None, space, num_samples=7)
    whole = [alone.suggest(str(i)) for i in range(7)]
    assert sorted(r.config["opt"]["lr"] for r in results) == sorted(c["opt"]["lr"] for c in whole)
    searcher = Searcher()
    searcher.restore_from_dir(str(tmp_path / "tune"))  # the searcher's last checkpoint
    told = [e[1] for e in searcher.get_state()["events"] if e[0] == "end"]
    assert sorted(told) == [f"t{i:04d}" for i in range(1, 8)]  # each trial told once, none run twice


@pytest.mark.slow
def test_a_refused_param_space_stops_tuner_fit_with_its_error(ray_local: None, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^param_space\.opt\.lr: method grid needs a finite set of values"):
        fit(Searcher(method="grid"), {"opt": {"lr": tune.uniform(0, 1)}}, 2, tmp_path)
