"""A W&B sweep file's ``program`` runs as the trial, unchanged, with the real ``wandb`` offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from tests.conftest import ROOT, cli, cli_env, cli_here
from tuner.config import PROGRAM_SETTINGS, load_study
from tuner.errors import ConfigError
from tuner.integrations.wandb import command_line

pytest.importorskip("wandb")

# As W&B's sweep walkthrough writes it: wandb.init(), the config from wandb.config, wandb.log per epoch.
QUICKSTART = """
import math

import wandb


def main():
    run = wandb.init(project="sweep-demo", config={"lr": 0.1, "epochs": 3})
    config = wandb.config
    for epoch in range(1, config.epochs + 1):
        val_loss = abs(math.log10(config.lr) + 2.5) + 1.0 / epoch
        wandb.log({"epoch": epoch, "val_loss": val_loss, "train": {"loss": 1.1 * val_loss}})
    run.summary["final_loss"] = val_loss
    wandb.finish()


if __name__ == "__main__":
    main()
"""

SWEEP = """
program: train.py
method: random
metric:
  name: val_loss
  goal: minimize
parameters:
  lr:
    distribution: log_uniform_values
    min: 0.0001
    max: 0.1
  epochs:
    value: 9
early_terminate:
  type: hyperband
  min_iter: 2
  eta: 2
max_concurrent: 1
seed: 3
"""

# argparse, as the scripts that W&B's command `${env} ${interpreter} ${program} ${args}` serves.
ARGPARSE = """
import argparse
import json
import os

import wandb

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.1)
parser.add_argument("--optimizer", default="adam")
parser.add_argument("--layers", type=int, default=1)
args = parser.parse_args()
run = wandb.init(config=args)
wandb.config.update({"lr": 123.0}, allow_val_change=True)  # a sweep's values are locked: W&B ignores it
seen = {"config": {k: wandb.config[k] for k in ("lr", "optimizer", "layers")}, "argv": os.sys.argv[1:]}
with open(f"seen-{run.id}.json", "w") as f:
    json.dump(seen, f)
for step in range(3):  # explicit steps, two calls a step: W&B commits a row when the step moves on
    run.log({"loss": args.lr * args.layers}, step=step)
    run.log({"acc": 1.0 - args.lr}, step=step)
"""


def write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text), encoding="utf-8")


@pytest.mark.slow
def test_quickstart_script_runs_unchanged_from_its_sweep_file(tmp_path: Path, ray_tmp: Path) -> None:
    write(tmp_path, {"train.py": QUICKSTART, "sweep.yaml": SWEEP})
    out = cli("run", "sweep.yaml", "--run-cap", "4", "--num-cpus", "2", "--no-dashboard", cwd=tmp_path, ray_tmp=ray_tmp)
    assert out.returncode == 0, out.stderr
    folder = tmp_path / "results" / "sweep"
    trials = pd.read_parquet(folder / "trials.parquet")
    assert len(trials) == 4
    statuses = set(trials["status"])
    assert "finished" in statuses and "pruned" in statuses, trials[["trial_id", "status"]]
    best = yaml.safe_load((folder / "best.yaml").read_text())
    assert 1e-4 <= best["params"]["lr"] <= 0.1
    history = pd.read_parquet(folder / "history.parquet")
    finished = trials.loc[trials["status"] == "finished", "trial_id"].iloc[0]
    rows = history[history["trial_id"] == finished].sort_values("step")
    lr = float(trials.set_index("trial_id").loc[finished, "params_lr"])
    assert rows["step"].tolist() == list(range(9))  # W&B's _step: 0, 1, ...
    assert rows["epoch"].tolist() == list(range(1, 10))
    assert rows["val_loss"].iloc[0] == pytest.approx(abs(__import__("math").log10(lr) + 2.5) + 1.0)
    assert rows["train.loss"].iloc[-1] == pytest.approx(1.1 * rows["val_loss"].iloc[-1])
    runs = list((folder / "checkpoints" / finished / "wandb").glob(f"offline-run-*-{finished}"))
    assert runs and (runs[0] / f"run-{finished}.wandb").is_file()
    assert "best t" in out.stdout


@pytest.mark.slow
def test_argparse_script_gets_the_config_on_its_command_line_and_in_wandb_config(
    tmp_path: Path, ray_local: None
) -> None:
    sweep = """
        program: train.py
        command:
          - ${env}
          - ${interpreter}
          - ${program}
          - ${args}
        method: grid
        metric: {name: acc, goal: maximize}
        parameters:
          lr: {values: [0.01, 0.5]}
          optimizer: {value: sgd}
          layers: {value: 2}
    """
    write(tmp_path, {"train.py": ARGPARSE, "sweep.yaml": sweep})
    out = cli_here("run", "sweep.yaml", "--quiet", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    folder = tmp_path / "results" / "sweep"
    trials = pd.read_parquet(folder / "trials.parquet").set_index("trial_id")
    assert set(trials["status"]) == {"finished"}
    for trial_id, row in trials.iterrows():
        seen = json.loads((tmp_path / f"seen-{trial_id}.json").read_text())
        assert seen["config"] == {"lr": row["params_lr"], "optimizer": "sgd", "layers": 2}
        assert seen["argv"] == [f"--lr={row['params_lr']}", "--optimizer=sgd", "--layers=2"]
    history = pd.read_parquet(folder / "history.parquet")
    # two log(step=s) calls a step: one row a step, both metrics in it (the last committed at the end)
    first = history[history["trial_id"] == trials.index[0]].sort_values("step")
    assert first["step"].tolist() == [0, 1, 2]
    assert first["loss"].notna().all() and first["acc"].notna().all()
    assert yaml.safe_load((folder / "best.yaml").read_text())["params"]["lr"] == 0.01


@pytest.mark.slow
def test_a_failing_script_fails_its_trial_with_its_last_words(tmp_path: Path, ray_local: None) -> None:
    script = """
        import wandb

        wandb.init()
        if wandb.config.lr > 0.1:
            raise ValueError(f"learning rate {wandb.config.lr} diverges")
        wandb.log({"loss": wandb.config.lr})
    """
    sweep = """
        program: train.py
        method: grid
        metric: {name: loss}
        parameters:
          lr: {values: [0.01, 0.5]}
    """
    write(tmp_path, {"train.py": script, "sweep.yaml": sweep})
    out = cli_here("run", "sweep.yaml", "--quiet", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    folder = tmp_path / "results" / "sweep"
    trials = pd.read_parquet(folder / "trials.parquet").set_index("trial_id")
    failed = trials[trials["status"] == "errored"]
    assert len(failed) == 1 and failed["params_lr"].iloc[0] == 0.5
    assert failed["error"].iloc[0] == "train.py exited with code 1: ValueError: learning rate 0.5 diverges"
    log = (folder / "logs" / f"{failed.index[0]}.log").read_text()
    assert "Traceback" in log and 'raise ValueError(f"learning rate' in log
    assert "train.py exited with code 1" in out.stderr


@pytest.mark.slow
def test_a_retried_script_runs_again_from_the_start(tmp_path: Path, ray_local: None) -> None:
    script = """
        import os

        import wandb

        run = wandb.init()
        marker = f"tried-{run.id}"
        if not os.path.exists(marker):
            open(marker, "w").close()
            raise SystemExit(3)
        for step in range(3):
            wandb.log({"loss": 1.0 / (step + 1)})
    """
    sweep = """
        program: train.py
        method: grid
        metric: {name: loss}
        max_failures: 1
        parameters:
          lr: {value: 0.1}
    """
    write(tmp_path, {"train.py": script, "sweep.yaml": sweep})
    out = cli_here("run", "sweep.yaml", "--quiet", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    trials = pd.read_parquet(tmp_path / "results" / "sweep" / "trials.parquet")
    assert trials["status"].tolist() == ["finished"]
    assert (tmp_path / "tried-t0001").exists()


def test_without_wandb_one_line_names_the_extra(tmp_path: Path) -> None:
    write(tmp_path, {"train.py": QUICKSTART, "sweep.yaml": SWEEP})
    hidden = "import sys; sys.modules['wandb'] = None; from tuner.cli import main; sys.exit(main())"
    out = subprocess.run(
        [sys.executable, "-c", hidden, "run", "sweep.yaml", "--run-cap", "4"],
        cwd=tmp_path,
        env=cli_env(None),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'tuner[wandb]'" in lines[0] and "program" in lines[0], out.stderr


def test_plan_smoke_runs_the_program_to_its_first_report(tmp_path: Path) -> None:
    write(tmp_path, {"train.py": QUICKSTART, "sweep.yaml": SWEEP + "run_cap: 4\n"})
    out = cli_here("plan", "sweep.yaml", "--smoke", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "first report" in out.stdout and "val_loss=" in out.stdout and "train.loss=" in out.stdout
    assert PROGRAM_SETTINGS not in os.environ  # the program's settings were this process's for the smoke run only


# -- the file, read --------------------------------------------------------------------------


def test_program_without_trainable_is_the_trial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, {"train.py": QUICKSTART, "sweep.yaml": SWEEP + "project: demo\n"})
    monkeypatch.chdir(ROOT)  # not where the program is: found next to the study file
    study = load_study(tmp_path / "sweep.yaml", run_cap=4)
    assert study.trainable == "tuner.integrations.wandb:train"
    assert study.raw["program"] == str(tmp_path / "train.py")
    assert "trainable" not in study.raw  # study.yaml records the program, which resume runs again
    settings = json.loads(study.env[PROGRAM_SETTINGS])
    assert settings["program"] == str(tmp_path / "train.py")
    assert settings["command"] == ["${env}", "${interpreter}", "${program}", "${args}"]
    assert settings["project"] == "demo"
    assert not any("program" in n or "project" in n for n in study.notices)


def test_a_given_trainable_leaves_program_aside(tmp_path: Path) -> None:
    write(tmp_path, {"train.py": QUICKSTART, "sweep.yaml": SWEEP})
    study = load_study(tmp_path / "sweep.yaml", trainable="trainables.toy:train", run_cap=4, check_import=False)
    assert study.trainable == "trainables.toy:train" and study.env == {}
    assert any("ignoring W&B key 'program'" in n for n in study.notices)


@pytest.mark.parametrize(
    ("extra", "where", "says"),
    [
        ("command:\n  - ${interpreter}\n  - ${program}\n  - ${flags}\n", "command[2]", "unknown macro '${flags}'"),
        ("command: python train.py\n", "command", "must be a list"),
        ("backend: tune\n", "backend", "runs on backend ray"),
        ("resources: {workers: 2}\n", "resources.workers", "one process per trial"),
    ],
)
def test_what_a_program_study_refuses(tmp_path: Path, extra: str, where: str, says: str) -> None:
    write(tmp_path, {"train.py": QUICKSTART, "sweep.yaml": SWEEP + extra})
    with pytest.raises(ConfigError) as err:
        load_study(tmp_path / "sweep.yaml", run_cap=4)
    assert any(p.path == where and says in p.message for p in err.value.problems), err.value


def test_a_missing_program_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, {"sweep.yaml": SWEEP})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"program: no file 'train.py' in"):
        load_study(tmp_path / "sweep.yaml", run_cap=4)


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (
            ["${env}", "${interpreter}", "${program}", "${args}"],
            ["/usr/bin/env", sys.executable, "/p/t.py", "--lr=0.1", "--opt=sgd", "--bn=False"],
        ),
        (["python", "${program}", "${args_no_hyphens}"], ["python", "/p/t.py", "lr=0.1", "opt=sgd", "bn=False"]),
        (["${program}", "${args_no_boolean_flags}"], ["/p/t.py", "--lr=0.1", "--opt=sgd"]),
        (["${program}", "${args_no_equals}"], ["/p/t.py", "--lr", "0.1", "--opt", "sgd", "--bn", "False"]),
        (["${program}", "${args_json}"], ["/p/t.py", '{"lr": 0.1, "opt": "sgd", "bn": false}']),
        (["${program}", "--config", "${args_json_file}"], ["/p/t.py", "--config", "/w/args.json"]),
        (["${program}", "${args_override_hydra}"], ["/p/t.py", "++lr=0.1", "++opt=sgd", "++bn=False"]),
        (["${program}", "--data=${envvar:DATA}", "${envvar:NOPE}"], ["/p/t.py", "--data=/data", "NOPE"]),
        (["${program}", 3], ["/p/t.py", "3"]),
    ],
)
def test_command_macros_as_wandbs_agent_fills_them(command: list[str], expected: list[str]) -> None:
    config = {"lr": 0.1, "opt": "sgd", "bn": False}
    assert command_line(command, "/p/t.py", config, "/w/args.json", {"DATA": "/data"}) == expected


def test_nested_and_dotted_parameters_reach_the_command_as_wandb_writes_them() -> None:
    config = {"optimizer": {"lr": 0.1}, "model.depth": 3}
    line = command_line(["${args}", "${args_json}"], "/p/t.py", config, "/w/a.json", {})
    assert line == ["--optimizer={'lr': 0.1}", "--model.depth=3", '{"optimizer": {"lr": 0.1}, "model.depth": 3}']


STEPS = """
import json
import os

import wandb

run = wandb.init()
pairs = []


def probe():
    with open(os.environ["TUNER_WANDB_EVENTS"]) as f:
        rows = [json.loads(line) for line in f]
    pairs.append([run.summary.get("_step"), rows[-1]["step"] if rows else None])


run.log({"a": 1}); probe()
run.log({"a": 2}, commit=False); probe()
run.log({"b": 3}); probe()
run.log({"a": 4}, step=5); probe()
run.log({"b": 5}, step=5); probe()
run.log({"a": 6}, step=3); probe()  # W&B drops a step behind the current one
run.log({"a": 7}, step=7, commit=True); probe()
run.log({"a": 8}); probe()
print(json.dumps(pairs))
"""


def test_the_hook_commits_rows_at_wandbs_own_step(tmp_path: Path) -> None:
    """What the child hook sends, row by row, next to the ``_step`` W&B's run itself has committed."""
    (tmp_path / "steps.py").write_text(STEPS, encoding="utf-8")
    (tmp_path / "params.yaml").write_text("wandb_version: 1\n", encoding="utf-8")
    env = {
        **os.environ,
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DIR": str(tmp_path),
        "WANDB_SWEEP_PARAM_PATH": str(tmp_path / "params.yaml"),  # as every trial's run has it
        "TUNER_WANDB_EVENTS": str(tmp_path / "events.jsonl"),
        "PYTHONPATH": str(ROOT / "tuner" / "integrations" / "_wandb_site"),
    }
    out = subprocess.run(
        [sys.executable, "steps.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    pairs = json.loads(out.stdout.strip().splitlines()[-1])
    assert pairs == [[0, 0], [0, 0], [1, 1], [1, 1], [1, 1], [1, 1], [7, 7], [8, 8]]
    rows = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 5, 7, 8]
    assert rows[2]["metrics"] == {"a": 4.0, "b": 5.0}


# As scripts in the wild write them: an agent function (wandb/wandb's sweep_check.py), mode="online"
# (common in project scripts), and cross-validation folds that clear W&B's variables and start runs
# of their own in forked processes (wandb/examples' sweeps-cross-validation).
AGENT = """
import json
import multiprocessing
import os

import wandb


def fold():
    for key in [k for k in os.environ if k.startswith("WANDB_")]:
        del os.environ[key]
    run = wandb.init(config={"fold": 1})
    run.log({"acc": 0.125})
    run.finish()


def train():
    run = wandb.init(mode="online", settings=wandb.Settings(mode="online"))
    with run:
        run.log({"acc": 0.5}, commit=False)
        child = multiprocessing.get_context("fork").Process(target=fold)
        child.start()
        child.join()
        run.log({"loss": 1.0 + run.config.lr})
        calls.append(run.settings.mode)
        with open(f"sweep-{run.id}.txt", "w") as f:
            f.write(sweep_id)


calls = []
sweep_id = wandb.sweep({"method": "grid", "parameters": {"lr": {"values": [9]}}}, project="p")
wandb.agent(sweep_id, function=train, count=5)
print(json.dumps({"sweep_id": sweep_id, "calls": calls}))
"""


def test_agent_functions_online_runs_and_foreign_runs_as_a_sweep_runs_them(tmp_path: Path) -> None:
    (tmp_path / "agent.py").write_text(AGENT, encoding="utf-8")
    (tmp_path / "params.yaml").write_text("wandb_version: 1\n\nlr:\n  value: 0.25\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env |= {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DIR": str(tmp_path),
        "WANDB_SWEEP_PARAM_PATH": str(tmp_path / "params.yaml"),
        "TUNER_WANDB_EVENTS": str(tmp_path / "events.jsonl"),
        "TUNER_WANDB_SWEEP": "my-study",
        "PYTHONPATH": str(ROOT / "tuner" / "integrations" / "_wandb_site"),
    }
    out = subprocess.run(
        [sys.executable, "agent.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    # wandb.sweep is the study, without W&B's server; wandb.agent runs the function once, offline
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"sweep_id": "my-study", "calls": ["offline"]}
    assert "wandb.sweep() returns the study's id 'my-study'" in out.stderr
    # the sweep's run only: the fold's run (its own process, W&B's variables cleared) is not the trial's
    rows = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert rows == [{"step": 0, "metrics": {"acc": 0.5, "loss": 1.25}}]
    assert len(list((tmp_path / "wandb").glob("offline-run-*"))) == 2


@pytest.mark.slow
def test_an_agent_function_script_runs_as_the_program_of_a_study(tmp_path: Path, ray_local: None) -> None:
    sweep = """
        program: agent.py
        method: grid
        metric: {name: loss}
        parameters:
          lr: {values: [0.25, 0.5]}
    """
    write(tmp_path, {"agent.py": AGENT, "sweep.yaml": sweep})
    out = cli_here("run", "sweep.yaml", "--quiet", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    folder = tmp_path / "results" / "sweep"
    trials = pd.read_parquet(folder / "trials.parquet")
    assert set(trials["status"]) == {"finished"}
    assert sorted(trials["metric_loss"]) == [1.25, 1.5]
    history = pd.read_parquet(folder / "history.parquet")
    assert len(history) == 2 and set(history["acc"]) == {0.5}  # the folds' 0.125 is theirs
    assert {(tmp_path / f"sweep-{t}.txt").read_text() for t in trials["trial_id"]} == {"sweep"}  # the study's name


# -- the program's process, run by the trainable here (no Ray) ------------------------------------

CRASH = """
import multiprocessing
import os
import time

import wandb


def wait():
    time.sleep(120)


if __name__ == "__main__":
    run = wandb.init()
    run.log({"loss": 0.5})
    child = multiprocessing.get_context("spawn").Process(target=wait)  # not a daemon: Python joins it at exit
    child.start()
    with open("child.pid", "w") as f:
        f.write(str(child.pid))
    with open("wandb/debug.log") as f:  # relative to the working folder, as under W&B's agent
        assert "wandb" in f.read()
    raise RuntimeError("boom")
"""


def _run_here(
    tmp_path: Path, script: str, monkeypatch: pytest.MonkeyPatch, command: list[str] | None = None
) -> tuple[list[dict], Exception | None]:
    """``train`` in this process, as a trial's worker runs it, with a checkpoint store in ``tmp_path``;
    with ``command``, the file has that command and no program (the script is ``train.py`` in ``tmp_path``)."""
    from tuner.integrations import wandb as bridge
    from tuner.storage import CheckpointStore
    from tuner.trial import Trial

    (tmp_path / "train.py").write_text(script, encoding="utf-8")
    settings: dict[str, Any] = {"program": str(tmp_path / "train.py")}
    settings["command"] = ["${env}", "${interpreter}", "${program}"]
    if command is not None:
        settings.update(program=None, command=command)
    settings |= {"cwd": str(tmp_path), "project": None, "entity": None, "study": "s"}
    monkeypatch.setenv(PROGRAM_SETTINGS, json.dumps(settings))
    monkeypatch.setattr(bridge, "EXIT_S", 1.0)
    rows: list[dict] = []
    trial = Trial("t1", 0, emit=rows.append, store=CheckpointStore(str(tmp_path / "checkpoints")))
    try:
        bridge.train({"lr": 0.1}, trial)
    except Exception as exc:
        return rows, exc
    return rows, None


def test_a_crash_that_leaves_children_waiting_fails_the_trial_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python joins a non-daemon child at exit: without the deadline the trial waits as long as it does."""
    import time

    start = time.monotonic()
    rows, error = _run_here(tmp_path, CRASH, monkeypatch)
    assert time.monotonic() - start < 60
    assert [r["metrics"] for r in rows] == [{"loss": 0.5}]
    assert error is not None
    assert str(error).splitlines()[-1].startswith("train.py exited with code 1: RuntimeError: boom")
    child = int((tmp_path / "child.pid").read_text())
    with pytest.raises(ProcessLookupError):
        for _ in range(50):  # SIGKILLed with the program's group; reaped by init
            os.kill(child, 0)
            time.sleep(0.1)
    # W&B's files are in the trial's folder; the working folder's wandb/ links to them
    link = (tmp_path / "wandb" / "debug.log").resolve()
    assert link.is_file() and (tmp_path / "checkpoints" / "t1" / "wandb") in link.parents
    assert (tmp_path / "wandb" / "latest-run").resolve().parent == tmp_path / "checkpoints" / "t1" / "wandb"


def test_a_failing_sys_exit_that_leaves_children_waiting_fails_the_trial_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    start = time.monotonic()
    rows, error = _run_here(
        tmp_path, CRASH.replace('raise RuntimeError("boom")', "import sys; sys.exit(3)"), monkeypatch
    )
    assert time.monotonic() - start < 60  # not the child's 120 s
    assert [r["metrics"] for r in rows] == [{"loss": 0.5}]
    assert error is not None and "train.py exited with code 3" in str(error)
    child = int((tmp_path / "child.pid").read_text())
    with pytest.raises(ProcessLookupError):
        for _ in range(50):
            os.kill(child, 0)
            time.sleep(0.1)


RAISES = """
import wandb

run = wandb.init()
run.log({"loss": 0.5})
raise RuntimeError("boom")
"""


def test_a_crashed_programs_traceback_is_written_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """W&B's exit hook prints the traceback and then calls the hook it replaced, the deadline's:
    that one does not print it again (the trial's log keeps the last 20 lines of stderr)."""
    rows, error = _run_here(tmp_path, RAISES, monkeypatch)
    assert error is not None and [r["metrics"] for r in rows] == [{"loss": 0.5}]
    assert str(error).count("Traceback (most recent call last)") == 1
    assert str(error).splitlines()[-1] == "train.py exited with code 1: RuntimeError: boom"


MODULE = """
import sys

import wandb

run = wandb.init()
run.log({"loss": run.config.lr, "argv": len(sys.argv)})
"""


def test_a_command_without_program_runs_as_the_trial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FLAIROx/envelope-bench's sweep file: ``command: [python, -m, ppo_vmap.ppo, ${args}]``, no program."""
    rows, error = _run_here(tmp_path, MODULE, monkeypatch, command=["python", "-m", "train", "${args}"])
    assert error is None
    assert [r["metrics"] for r in rows] == [{"loss": 0.1, "argv": 2.0}]  # python -m train --lr=0.1


def test_a_working_folders_own_wandb_files_leave_no_stray_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``wandb/latest-run`` that is a folder (copied without its links) is not replaced: no
    half-made link is left beside it, and the other two links are made."""
    (tmp_path / "wandb" / "latest-run").mkdir(parents=True)
    rows, error = _run_here(tmp_path, MODULE, monkeypatch, command=["python", "-m", "train", "${args}"])
    assert error is None and len(rows) == 1
    assert sorted(p.name for p in (tmp_path / "wandb").iterdir()) == ["debug-internal.log", "debug.log", "latest-run"]
    assert (tmp_path / "wandb" / "debug.log").resolve().is_file() and (tmp_path / "wandb" / "latest-run").is_dir()
