"""tuner.integrations.transformers with the real Hugging Face Trainer on a tiny BERT built from a
config (nothing downloaded): reports, pruning, checkpoints and resume, search(), a YAML study
under ASHA, and the message without the extra."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers reads it: nothing may be fetched

import transformers

import tuner
from tests.conftest import ROOT, cli_env, cli_here
from trainables import tiny_transformer as tiny
from tuner.errors import TrialPruned
from tuner.storage import CheckpointStore
from tuner.trial import Trial


def trainer(trial: Trial, folder: Path, step: str = "global_step", **args: Any) -> tuple[Any, Any]:
    from tuner.integrations.transformers import TunerCallback

    made = tiny.make_trainer({"learning_rate": 1e-2, "num_train_epochs": 3}, output_dir=str(folder / trial.trial_id))
    for key, value in args.items():
        setattr(made.args, key, value)
    callback = TunerCallback(trial, step=step)
    made.add_callback(callback)
    return made, callback


def test_reports_every_epoch_with_its_checkpoint_and_resumes_from_it(tmp_path: Path) -> None:
    store = CheckpointStore(str(tmp_path / "store"))
    first = Trial("t0", 0, store=store)
    made, callback = trainer(first, tmp_path, step="epoch")
    assert isinstance(callback, transformers.TrainerCallback)
    assert callback.resume_from_checkpoint is None
    made.train(resume_from_checkpoint=callback.resume_from_checkpoint)
    assert [r["step"] for r in first.reports] == [1.0, 2.0, 3.0]  # 64 samples in batches of 16: 4 steps an epoch
    assert {"eval_loss", "eval_accuracy", "epoch"} <= set(first.reports[0]["metrics"])
    assert [r["checkpoint"]["global_step"] for r in first.reports] == [4, 8, 12]
    assert {"model.safetensors", "optimizer.pt", "trainer_state.json"} <= set(
        first.reports[0]["checkpoint"]["transformers"]
    )
    saved = store.load(store.save("t0", 2, first.reports[1]["checkpoint"]))[1]  # as a retry gets it

    again = Trial("t0", 0, store=store, checkpoint=saved)
    made, callback = trainer(again, tmp_path / "retry", step="epoch")
    assert Path(callback.resume_from_checkpoint).name == "checkpoint-8"
    made.train(resume_from_checkpoint=callback.resume_from_checkpoint)
    assert [r["step"] for r in again.reports] == [3.0]  # epoch 3 only, from the checkpoint of epoch 2
    assert again.reports[0]["metrics"]["eval_loss"] == pytest.approx(first.reports[2]["metrics"]["eval_loss"])


class Recorder(transformers.TrainerCallback):
    """What the optimizer and scheduler hold when training begins (after the Trainer's resume)."""

    seen: dict[str, Any]

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        optimizer, scheduler = kwargs["optimizer"], kwargs["lr_scheduler"]
        self.seen = {
            "groups": [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups],
            "base_lrs": list(scheduler.base_lrs),
            "exp_avg": [s["exp_avg"].clone() for s in optimizer.state.values()],
        }


def test_a_checkpoint_of_other_arguments_goes_on_with_this_trainer_s_optimizer_settings(tmp_path: Path) -> None:
    """A PBT exploit: the donor trained 1 of 2 epochs at learning rate 1e-2 and no weight decay;
    the member goes on from its checkpoint with 1e-3 and 0.1. Its optimizer keeps the donor's
    moments, on the member's settings, half-way down the linear schedule."""
    import io

    import torch

    store = CheckpointStore(str(tmp_path / "store"))
    donor = Trial("t0", 0, store=store)
    made, _ = trainer(donor, tmp_path, step="epoch", num_train_epochs=2, learning_rate=1e-2, weight_decay=0.0)
    made.train()
    saved = store.load(store.save("t0", 1, donor.reports[0]["checkpoint"]))[1]
    written = torch.load(io.BytesIO(saved["transformers"]["optimizer.pt"].numpy().tobytes()), weights_only=False)
    assert written["param_groups"][0]["lr"] == pytest.approx(1e-2 * 0.5)  # 4 of 8 steps, linear decay

    member = Trial("t1", 0, store=store, checkpoint=saved)
    made, callback = trainer(member, tmp_path, step="epoch", num_train_epochs=2, learning_rate=1e-3, weight_decay=0.1)
    recorder = Recorder()
    made.add_callback(recorder)
    made.train(resume_from_checkpoint=callback.resume_from_checkpoint)
    assert callback.retuned == ["lr", "weight_decay"]
    decayed, undecayed = recorder.seen["groups"]
    assert decayed["lr"] == pytest.approx(1e-3 * 0.5) and decayed["initial_lr"] == pytest.approx(1e-3)
    assert (decayed["weight_decay"], undecayed["weight_decay"]) == (0.1, 0.0)
    assert recorder.seen["base_lrs"] == pytest.approx([1e-3, 1e-3])
    moments = [s["exp_avg"] for s in written["state"].values()]
    assert len(moments) == len(recorder.seen["exp_avg"]) > 0
    assert all(torch.equal(a, b) for a, b in zip(recorder.seen["exp_avg"], moments, strict=True))  # kept
    assert [r["step"] for r in member.reports] == [2.0]

    retry = Trial("t0", 0, store=store, checkpoint=saved)  # the same arguments: all restored
    made, callback = trainer(retry, tmp_path / "retry", step="epoch", num_train_epochs=2, learning_rate=1e-2)
    recorder = Recorder()
    made.add_callback(recorder)
    made.train(resume_from_checkpoint=callback.resume_from_checkpoint)
    assert callback.retuned == [] and recorder.seen["groups"][0]["lr"] == pytest.approx(1e-2 * 0.5)


def test_the_global_step_is_the_step_and_an_evaluation_is_reported_once(tmp_path: Path) -> None:
    trial = Trial("t0", 0)  # no store: reports at once, without checkpoints
    made, _ = trainer(trial, tmp_path, eval_strategy="steps", eval_steps=2, save_strategy="no")
    made.train()
    made.evaluate()  # after train, at the step already reported
    assert [r["step"] for r in trial.reports] == [2.0, 4.0, 6.0, 8.0, 10.0, 12.0]
    assert all("checkpoint" not in r for r in trial.reports)


def test_only_the_evaluations_the_trainer_saves_at_carry_a_checkpoint(tmp_path: Path) -> None:
    trial = Trial("t0", 0, store=CheckpointStore(str(tmp_path / "store")))
    made, _ = trainer(trial, tmp_path, eval_strategy="steps", eval_steps=2, save_strategy="steps", save_steps=4)
    made.train()
    saved = {r["step"]: r.get("checkpoint", {}).get("global_step") for r in trial.reports}
    assert saved == {2.0: None, 4.0: 4, 6.0: None, 8.0: 8, 10.0: None, 12.0: 12}


def test_save_strategy_best_reports_carry_the_best_checkpoints(tmp_path: Path) -> None:
    """With ``save_strategy="best"`` the Trainer decides to save after the callbacks have seen the
    evaluation: the report waits, and carries the checkpoint of each new best, none otherwise."""
    trial = Trial("t0", 0, store=CheckpointStore(str(tmp_path / "store")))
    made, _ = trainer(trial, tmp_path, step="epoch", num_train_epochs=4)
    made.args.save_strategy = transformers.trainer_utils.SaveStrategy.BEST
    made.args.metric_for_best_model, made.args.greater_is_better = "eval_loss", True  # the loss falls: one best
    made.train()
    losses = [r["metrics"]["eval_loss"] for r in trial.reports]
    best = [loss > max(losses[:i], default=float("-inf")) for i, loss in enumerate(losses)]
    assert [r["step"] for r in trial.reports] == [1.0, 2.0, 3.0, 4.0]
    assert ["checkpoint" in r for r in trial.reports] == best and not all(best)
    assert [r["checkpoint"]["global_step"] for r in trial.reports if "checkpoint" in r] == [
        4 * (i + 1) for i, b in enumerate(best) if b
    ]


def search_trial(tmp_path: Path, config: dict[str, Any], **arguments: Any) -> tuple[Trial, list[str]]:
    """One trial of ``search`` (its trainable, in this process) on the tiny Trainer; what
    precision its model's classifier ran in while training."""
    import cloudpickle

    from tuner.integrations.transformers import trial_function

    def factory(config: dict[str, Any]) -> Any:
        made = tiny.make_trainer({"num_train_epochs": 1}, output_dir=str(tmp_path / "out"), **arguments)

        def record(module: Any, inputs: Any, output: Any) -> None:
            with (tmp_path / "dtypes").open("a") as out:
                out.write(f"{output.dtype}\n")

        made.model.classifier.register_forward_hook(record)
        return made

    tmp_path.mkdir()
    pickled = tmp_path / "factory.pkl"
    pickled.write_bytes(cloudpickle.dumps((factory, "epoch")))
    trial = Trial("t0", 0)
    trial_function(pickled)(config, trial)
    return trial, sorted(set((tmp_path / "dtypes").read_text().split()))


def test_a_searched_bf16_or_fp16_reaches_the_accelerator(tmp_path: Path) -> None:
    """``bf16`` from the configuration, set after the factory made the Trainer, makes its
    accelerator again: bf16 autocast on the CPU, as ``hyperparameter_search`` does; ``bf16: false``
    undoes the factory's; ``fp16`` on the CPU trains in float32, with a one-line notice."""
    trial, dtypes = search_trial(tmp_path / "a", {"bf16": True})
    assert dtypes == ["torch.bfloat16"] and [r["step"] for r in trial.reports] == [1.0]
    assert search_trial(tmp_path / "b", {"bf16": False}, bf16=True)[1] == ["torch.float32"]
    with pytest.warns(UserWarning, match=r"^fp16=True on the CPU: accelerate trains in float32 there"):
        assert search_trial(tmp_path / "c", {"fp16": True})[1] == ["torch.float32"]
    with pytest.raises(ValueError, match=r"^search: fp16 and bf16 are both True"):
        search_trial(tmp_path / "d", {"fp16": True}, bf16=True)


def test_bf16_set_on_the_arguments_after_the_trainer_was_made_is_an_error(tmp_path: Path) -> None:
    """In a trainable of one's own, ``trainer.args.bf16 = ...`` after making the Trainer would do
    nothing (the accelerator is made with the Trainer): the callback says so before training."""
    from accelerate.state import AcceleratorState

    message = r"^TunerCallback: TrainingArguments {} was set after the arguments were made, .* precision .* '{}'"
    made, _ = trainer(Trial("t0", 0), tmp_path)
    made.args.bf16 = True
    with pytest.raises(ValueError, match=message.format("bf16=True", "no")):
        made.train()
    args = tiny.make_trainer({}, output_dir=str(tmp_path / "c"), bf16=True).args  # made bf16, then changed
    args.bf16 = False
    made, _ = trainer(Trial("t2", 0), tmp_path / "c")
    made.args = args
    with pytest.raises(ValueError, match=message.format("bf16=False", "bf16")):
        made.train()
    made, _ = trainer(Trial("t1", 0), tmp_path / "b")
    made.args.bf16 = True
    made.args.mixed_precision = "bf16"  # as search() does, with the accelerator made again
    AcceleratorState._reset_state()
    made.create_accelerator_and_postprocess()
    made.train()  # no error


def test_a_pruned_trial_stops_the_trainer_and_train_raises_trial_pruned(tmp_path: Path) -> None:
    reports: list[dict[str, Any]] = []
    trial = Trial("t0", 0, emit=reports.append, should_stop=lambda: len(reports) >= 2)  # read as step 3 reports
    made, _ = trainer(trial, tmp_path, step="epoch", num_train_epochs=5)
    with pytest.raises(TrialPruned):
        made.train()
    assert [r["step"] for r in reports] == [1.0, 2.0, 3.0]
    assert made.control.should_training_stop


def test_a_search_trial_s_model_init_gets_its_configuration(tmp_path: Path) -> None:
    """``Trainer(model_init=...)`` as ``hyperparameter_search`` scripts write it: a
    ``model_init(trial)`` that reads a hyperparameter from the trial (a dict under the Ray backend),
    and takes ``None`` when the Trainer is made. The trial's model is built with its value."""
    import cloudpickle

    from tuner.integrations.transformers import trial_function

    seen = tmp_path / "seen"  # the factory travels pickled: it writes down what model_init got

    def model_init(trial: Any) -> Any:
        with seen.open("a") as out:
            out.write(f"{None if trial is None else trial['dropout']}\n")
        made = tiny.make_trainer({})
        made.model.config.hidden_dropout_prob = 0.0 if trial is None else trial["dropout"]
        return made.model

    def factory(config: dict[str, Any]) -> Any:
        made = tiny.make_trainer({"num_train_epochs": 1}, output_dir=str(tmp_path / "out"))
        return transformers.Trainer(
            model_init=model_init, args=made.args, train_dataset=made.train_dataset, eval_dataset=made.eval_dataset
        )

    pickled = tmp_path / "factory.pkl"
    pickled.write_bytes(cloudpickle.dumps((factory, "epoch")))
    trial = Trial("t0", 0)
    trial_function(pickled)({"dropout": 0.25, "learning_rate": 1e-3}, trial)
    assert seen.read_text().split() == ["None", "0.25"]  # the Trainer made, then its model for training
    assert [r["step"] for r in trial.reports] == [1.0]


def optuna_hp_space(trial: Any) -> dict[str, Any]:  # as hyperparameter_search takes one for backend="optuna"
    return {
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 1e-3, log=True),
        "per_device_train_batch_size": trial.suggest_categorical("per_device_train_batch_size", [8, 16, 32]),
    }


def ray_hp_space(trial: Any) -> dict[str, Any]:  # the same space, for backend="ray"
    from ray import tune

    return {
        "learning_rate": tune.loguniform(1e-5, 1e-3),
        "per_device_train_batch_size": tune.choice([8, 16, 32]),
    }


def test_an_hp_space_for_optuna_or_ray_becomes_the_study_s_parameters() -> None:
    from transformers.trainer_utils import default_hp_space_optuna, default_hp_space_ray, default_hp_space_wandb

    from tuner.integrations.transformers import hp_parameters

    expected = {
        "learning_rate": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-3},
        "per_device_train_batch_size": {"values": [8, 16, 32]},
    }
    assert hp_parameters(optuna_hp_space) == expected
    assert hp_parameters(ray_hp_space) == expected
    assert hp_parameters(default_hp_space_optuna) == {  # Transformers' own defaults, as they are
        "learning_rate": {"distribution": "log_uniform_values", "min": 1e-6, "max": 1e-4},
        "num_train_epochs": {"distribution": "int_uniform", "min": 1, "max": 5},
        "seed": {"distribution": "int_uniform", "min": 1, "max": 40},
        "per_device_train_batch_size": {"values": [4, 8, 16, 32, 64]},
    }
    assert hp_parameters(default_hp_space_ray)["seed"] == {"distribution": "uniform", "min": 1.0, "max": 40.0}
    sweep = default_hp_space_wandb(None)  # the W&B backend's: a sweep configuration, whose parameters are the study's
    assert hp_parameters(default_hp_space_wandb) == sweep["parameters"] and "learning_rate" in sweep["parameters"]

    def renamed(trial: Any) -> dict[str, Any]:  # returned under another key, with a constant
        return {"learning_rate": trial.suggest_float("lr", 0.1, 0.2, step=0.05), "warmup_steps": 10}

    assert hp_parameters(renamed) == {
        "learning_rate": {"distribution": "q_uniform", "min": 0.1, "max": 0.2, "q": 0.05},
        "warmup_steps": {"value": 10},
    }

    def constants(trial: Any) -> dict[str, Any]:  # constants as TrainingArguments takes them: a study file's values
        from transformers.trainer_utils import SchedulerType

        return {"lr_scheduler_type": SchedulerType.COSINE, "adam_betas": (0.9, 0.99)}

    import yaml

    plain = "adam_betas:\n  value:\n  - 0.9\n  - 0.99\nlr_scheduler_type:\n  value: cosine\n"
    assert yaml.safe_dump(hp_parameters(constants)) == plain
    mixed = hp_parameters(lambda trial: {**constants(trial), "seed": trial.suggest_int("seed", 1, 4)})
    assert yaml.safe_dump(mixed) == plain + "seed:\n  distribution: int_uniform\n  max: 4\n  min: 1\n"

    def conditional(trial: Any) -> dict[str, Any]:
        optimizer = trial.suggest_categorical("optim", ["adamw_torch", "sgd"])
        momentum = trial.suggest_float("momentum", 0.0, 0.9) if optimizer == "sgd" else None
        return {"optim": optimizer, "momentum": momentum}

    with pytest.raises(ValueError, match=r"^hp_space: what it suggests depends on the values suggested \(momentum\)"):
        hp_parameters(conditional)
    with pytest.raises(TypeError, match="hp_space must return a dict of hyperparameters, got list"):
        hp_parameters(lambda trial: [{"name": "learning_rate", "type": "double"}])  # SigOpt's form


def test_a_trainer_with_model_init_is_its_own_factory(tmp_path: Path) -> None:
    """``search(trainer, ...)`` as ``trainer.hyperparameter_search(...)`` is called: each trial
    trains a copy (its ``output_dir`` its own, the original's left as it was)."""
    import cloudpickle

    from tuner.integrations.transformers import TrainerCopy, trial_function

    made = tiny.make_trainer({"num_train_epochs": 1}, output_dir=str(tmp_path / "out"))
    with pytest.raises(ValueError, match="a Trainer given in place of a factory must be made with model_init"):
        TrainerCopy(made)
    trainer = transformers.Trainer(
        model_init=lambda trial: tiny.make_trainer({}).model,
        args=made.args,
        train_dataset=made.train_dataset,
        eval_dataset=made.eval_dataset,
    )
    pickled = tmp_path / "factory.pkl"
    pickled.write_bytes(cloudpickle.dumps((TrainerCopy(trainer), "epoch")))
    run = trial_function(pickled)
    for trial_id in ("t0", "t1"):  # one process, trial after trial
        trial = Trial(trial_id, 0)
        run({"learning_rate": 1e-3, "per_device_train_batch_size": 32}, trial)
        assert [r["step"] for r in trial.reports] == [1.0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["run-t0", "run-t1"]
    assert trainer.args.output_dir == str(tmp_path / "out") and trainer.model is not None


def test_a_trainer_s_copy_leaves_its_model_and_devices_out(tmp_path: Path) -> None:
    """The copy each trial gets of a Trainer made with ``model_init`` carries none of its model
    (``model_init`` builds each trial's), however the Trainer holds it, and finds its devices in
    the trial's process."""
    from tuner.integrations.transformers import TrainerCopy

    made = tiny.make_trainer({"hidden_size": 128}, output_dir=str(tmp_path / "out"))
    trainer = transformers.Trainer(
        model_init=lambda trial: tiny.make_trainer({"hidden_size": 128}).model,
        args=made.args,
        train_dataset=made.train_dataset,
        eval_dataset=made.eval_dataset,
    )
    size = sum(p.numel() * p.element_size() for p in trainer.model.parameters())
    factory = TrainerCopy(trainer)
    assert len(factory.pickled) < size / 2
    copy = factory({})
    assert copy.model is None and copy.model_wrapped is None and copy.callback_handler.model is None
    # Its arguments' devices and processes are the trial's, not those of the process that made the
    # Trainer (a driver without the trial's GPU, or outside its worker group)
    from accelerate.state import PartialState

    assert copy.args.distributed_state.__dict__ is PartialState._shared_state
    assert copy.args.device == copy.accelerator.device
    assert trainer.model_wrapped is trainer.model is trainer.callback_handler.model is not None  # left as it was


def test_compute_objective_and_direction_as_hyperparameter_search_takes_them(tmp_path: Path) -> None:
    import cloudpickle

    from tuner.integrations.transformers import _objective, _study, trial_function

    trainable, allowed = "tests.integrations.lightning_trainables:train", ["tests"]
    metric = _objective(None, "maximize")[1]
    bare = {"name": "s", "method": "random", "parameters": {"x": {"value": 1}}}
    study = _study(bare, trainable, None, allowed, None, metric)
    assert (study.metric, study.maximize) == ("objective", True)
    own = {**bare, "metric": {"name": "eval_loss"}}
    kept = _study(own, trainable, None, allowed, None, metric)
    assert kept.metric == "eval_loss"  # the study's own metric wins
    with pytest.raises(ValueError, match=r"^search: direction must be 'minimize' or 'maximize' \(one objective\)"):
        _objective(None, ["minimize", "maximize"])  # type: ignore[arg-type]

    def factory(config: dict[str, Any]) -> Any:
        return tiny.make_trainer({"num_train_epochs": 1}, output_dir=str(tmp_path / "out"))

    pickled = tmp_path / "factory.pkl"
    default = _objective(None, None)[0]
    assert default is None
    pickled.write_bytes(cloudpickle.dumps((factory, "epoch", _objective(None, "minimize")[0])))
    trial = Trial("t0", 0)
    trial_function(pickled)({}, trial)
    metrics = trial.reports[0]["metrics"]
    assert metrics["objective"] == metrics["eval_accuracy"]  # Transformers' default: the sum of compute_metrics'

    pickled.write_bytes(cloudpickle.dumps((factory, "epoch", lambda m: -2 * m["eval_loss"])))
    trial = Trial("t1", 0)
    trial_function(pickled)({}, trial)
    assert trial.reports[0]["metrics"]["objective"] == pytest.approx(-2 * trial.reports[0]["metrics"]["eval_loss"])


def test_a_study_file_with_an_hp_space_or_direction_is_read_as_a_study_file(tmp_path: Path) -> None:
    """With ``hp_space`` or ``direction``, ``search`` adds to the study file before reading it: its
    problems are still one line naming the file (a missing file, a bad key, bad YAML)."""
    from tuner.errors import ConfigError
    from tuner.integrations.transformers import _objective, _study

    trainable, allowed = "tests.integrations.lightning_trainables:train", ["tests"]
    parameters, metric = {"learning_rate": {"values": [0.1]}}, _objective(None, "maximize")[1]
    path = tmp_path / "hf.yaml"
    for extra in ({"parameters": parameters}, {"metric": metric}):
        with pytest.raises(ConfigError, match="no such file"):
            _study(path, trainable, None, allowed, **extra)  # type: ignore[arg-type]
    path.write_text("name: s\nmethod: random\nparameters: {x: {value: 1}}\nmax_concurent: 2\n")
    with pytest.raises(ConfigError, match=r"hf\.yaml") as exc:
        _study(path, trainable, None, allowed, parameters, metric)
    assert "max_concurent" in str(exc.value)
    path.write_text("name: s\nmethod: [random\n")
    with pytest.raises(ConfigError, match=r"hf\.yaml"):
        _study(path, trainable, None, allowed, parameters)
    path.write_text("name: s\nmethod: random\nparameters: {x: {value: 1}}\n")
    loaded = _study(path, trainable, None, allowed, parameters, metric)
    assert set(loaded.raw["parameters"]) == {"x", "learning_rate"} and loaded.metric == "objective"


def test_the_step_is_global_step_or_epoch() -> None:
    from tuner.integrations.transformers import TunerCallback

    with pytest.raises(ValueError, match="step must be one of global_step, epoch, got 'batch'"):
        TunerCallback(Trial("t0", 0), step="batch")


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"learning_rate": "0.03"}, {"learning_rate": 0.03}),  # cast to the field's type
        (
            {"per_device_train_batch_size": 8.0, "num_train_epochs": 2},
            {"per_device_train_batch_size": 8, "num_train_epochs": 2.0},
        ),
        (
            {"weight_decay": 0.1, "hidden_size": 32, "nested": {"x": 1}},
            {"weight_decay": 0.1},
        ),  # not a field: left alone
    ],
)
def test_hyperparameters_that_name_training_arguments_are_set_on_them(
    config: dict[str, Any], expected: dict[str, Any]
) -> None:
    from transformers import TrainingArguments

    from tuner.integrations.transformers import apply_hyperparameters

    args = TrainingArguments(output_dir="unused", report_to="none", use_cpu=True)
    assert apply_hyperparameters(args, config) == list(expected)
    for key, value in expected.items():
        assert getattr(args, key) == value and type(getattr(args, key)) is type(value)


def test_without_the_extra_the_cli_names_it(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys
                sys.modules["transformers"] = None  # as if not installed
                try:
                    import tuner.integrations.transformers
                except ImportError as exc:
                    print("import:", exc)
                from tuner.cli import main
                sys.exit(main(["run", "search_spaces/tiny_transformer.yaml", "--storage", {str(tmp_path)!r}]))
                """
            ),
        ],
        cwd=ROOT,
        env=cli_env(None),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "import: transformers is not installed: pip install 'tuner[transformers]'" in done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "trainable: cannot import 'trainables.tiny_transformer:train'" in lines[0]
    assert lines[0].endswith("transformers is not installed: pip install 'tuner[transformers]'")


@pytest.mark.slow
def test_the_shipped_study_runs_under_asha_from_the_cli(ray_local: None, in_tmp: Path) -> None:
    done = cli_here("run", str(ROOT / "search_spaces/tiny_transformer.yaml"), "--quiet", cwd=in_tmp)
    assert done.returncode == 0, done.stderr
    status = tuner.load_results(in_tmp / "results/tiny_transformer")["status"].value_counts().to_dict()
    assert set(status) == {"finished", "pruned"}, status  # none errored
    assert sum(status.values()) == 6


@pytest.mark.slow
def test_search_builds_each_trial_s_trainer_and_returns_the_best_run(ray_local: None, in_tmp: Path) -> None:
    """The factory is a closure of this test (shipped by value); it builds every Trainer with the
    same learning rate, which the search sets from each trial's configuration."""
    from tuner.integrations.transformers import search

    out = in_tmp / "hf"

    def factory(config: dict[str, Any]) -> Any:
        return tiny.make_trainer({"num_train_epochs": 2}, output_dir=str(out))

    study = {
        "name": "hf_search",
        "metric": {"name": "eval_loss", "goal": "minimize"},
        "method": "grid",
        "parameters": {"learning_rate": {"values": [1e-4, 3e-2]}},
    }
    best = search(factory, study, quiet=True)
    assert isinstance(best, transformers.trainer_utils.BestRun)
    trials = tuner.load_results(best.run_summary.folder).set_index("trial_id")
    assert set(trials["status"]) == {"finished"}
    losses = trials["value"].to_dict()
    assert len(set(losses.values())) == 2  # the two learning rates trained differently
    assert best.run_id == min(losses, key=losses.__getitem__) and best.objective == losses[best.run_id]
    assert best.hyperparameters == {"learning_rate": 3e-2}
    history = tuner.load_history(best.run_summary.folder)
    assert sorted(set(history["step"])) == [4.0, 8.0]  # the global step
    assert {p.name for p in out.iterdir()} == {f"run-{t}" for t in trials.index}


@pytest.mark.slow
def test_search_takes_a_trainer_and_an_hp_space_as_hyperparameter_search_does(ray_local: None, in_tmp: Path) -> None:
    """A ``hyperparameter_search`` script's arguments: a Trainer made with ``model_init``,
    ``optuna_hp_space`` as it is, ``direction``; the study says only its name and method."""
    from tuner.integrations.transformers import search

    made = tiny.make_trainer({"num_train_epochs": 1}, output_dir=str(in_tmp / "hf"))
    trainer = transformers.Trainer(
        model_init=lambda trial: tiny.make_trainer({}).model,
        args=made.args,
        train_dataset=made.train_dataset,
        eval_dataset=made.eval_dataset,
    )
    study = {"name": "hf_hp_space", "method": "random"}
    best = search(trainer, study, hp_space=optuna_hp_space, direction="maximize", n_trials=2, seed=0, quiet=True)
    trials = tuner.load_results(best.run_summary.folder)
    assert trials["status"].tolist() == ["finished", "finished"]
    history = tuner.load_history(best.run_summary.folder)
    assert best.objective == history["objective"].max()  # Transformers' default objective, maximized
    assert (history["objective"] == history["eval_loss"]).all()  # no compute_metrics: the loss
    assert set(best.hyperparameters) == {"learning_rate", "per_device_train_batch_size"}
    assert 1e-5 <= best.hyperparameters["learning_rate"] <= 1e-3
    assert best.hyperparameters["per_device_train_batch_size"] in (8, 16, 32)


class SaveWeights(transformers.TrainerCallback):
    """Writes the model's weights to ``path`` when training ends."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        import torch

        torch.save({k: v.detach().clone() for k, v in kwargs["model"].state_dict().items()}, self.path)


@pytest.mark.slow
def test_workers_2_train_one_trainer_as_ddp_over_the_worker_group(ray_local: None, in_tmp: Path) -> None:
    """Two trials, one after the other on one group of 2 ranks: the first's factory makes its
    arguments with ``training_arguments(trial)``, the second's without (``search`` sets the group
    up around the factory). Each rank trains on its half of the data (2 steps an epoch, not 4), and
    the ranks end with the same weights: the Trainer averaged their gradients."""
    import torch

    from tuner.integrations.transformers import search, training_arguments

    out = in_tmp / "hf"

    def factory(config: dict[str, Any], trial: Trial) -> Any:
        options = training_arguments(trial) if config["configured"] else {}
        made = tiny.make_trainer({"num_train_epochs": 1}, output_dir=str(out), **options)
        made.add_callback(SaveWeights(in_tmp / f"{trial.trial_id}-rank{trial.rank}.pt"))
        return made

    study = {
        "name": "hf_ddp",
        "metric": {"name": "eval_loss", "goal": "minimize"},
        "method": "grid",
        "resources": {"workers": 2},
        "parameters": {"configured": {"values": [1, 0]}},
    }
    best = search(factory, study, quiet=True)
    trials = tuner.load_results(best.run_summary.folder)
    assert set(trials["status"]) == {"finished"} and len(trials) == 2
    history = tuner.load_history(best.run_summary.folder)
    assert history.groupby("trial_id")["step"].apply(list).tolist() == [[2.0], [2.0]]  # the global step
    for trial_id in trials["trial_id"]:
        ranks = [torch.load(in_tmp / f"{trial_id}-rank{r}.pt") for r in (0, 1)]
        assert ranks[0].keys() == ranks[1].keys()
        assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0])
