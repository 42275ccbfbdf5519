"""Studies on a real two-node cluster: placement over nodes, DDP across them, a node lost mid-study,
and a driver submitted as a Ray job."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.cluster.conftest import RAY, Cluster
from tests.conftest import cli_here

pytestmark = pytest.mark.slow

SLEEPY = """
name: {name}
trainable: trainables.toy:sleep
metric: {{name: loss, goal: minimize}}
method: random
seed: 3
run_cap: {trials}
max_failures: 0
parameters:
  x: {{min: 0.0, max: 1.0}}
  seconds: {{value: {seconds}}}
"""


def write(folder: Path, name: str, trials: int, seconds: float) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(SLEEPY.format(name=name, trials=trials, seconds=seconds)))
    return path


def test_trials_land_on_both_nodes_and_results_match_a_one_machine_run(
    cluster: Cluster, ray_local: None, tmp_path: Path
) -> None:
    space = write(tmp_path, "spread", trials=8, seconds=0.5)
    done = cluster.cli("run", str(space), "--address", cluster.address, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "it asks for the cluster's token" in done.stderr  # how to get past the dashboard's login
    trials = pd.read_parquet(tmp_path / "results" / "spread" / "trials.parquet")
    assert set(trials["status"]) == {"finished"}
    assert trials["nodes"].nunique() == 2  # both nodes ran trials

    here = cli_here("run", str(space), "--name", "alone", "--no-dashboard", cwd=tmp_path)  # the session's Ray
    assert here.returncode == 0, here.stderr
    alone = pd.read_parquet(tmp_path / "results" / "alone" / "trials.parquet")
    assert list(alone.columns) == list(trials.columns)
    assert alone.dtypes.to_dict() == trials.dtypes.to_dict()


def test_a_ddp_trial_spreads_its_ranks_over_both_nodes(cluster: Cluster, tmp_path: Path) -> None:
    (tmp_path / "ddp.yaml").write_text(
        textwrap.dedent("""
        name: ddp
        trainable: trainables.toy:ranks
        metric: {name: loss, goal: minimize}
        method: grid
        resources: {workers: 2, cpus_per_worker: 1}
        parameters:
          steps: {value: 3}
        """)
    )
    done = cluster.cli("run", "ddp.yaml", "--address", cluster.address, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    trial = pd.read_parquet(tmp_path / "results" / "ddp" / "trials.parquet").iloc[0]
    assert trial["status"] == "finished" and len(trial["nodes"].split(",")) == 2  # one rank on each node
    history = pd.read_parquet(tmp_path / "results" / "ddp" / "history.parquet")
    assert list(history["loss"]) == [1.5, 2.5, 3.5]  # averaged over the two ranks, across the network


def test_a_lost_node_costs_no_trial(cluster: Cluster, tmp_path: Path) -> None:
    """Three nodes, 36 one-second trials three at a time; one node's raylet killed mid-study, then
    a new node joins. The study finishes every trial once, the lost ones retried from their
    checkpoint on a live node without counting against max_failures: 0."""
    extra = cluster.join()
    space = write(tmp_path, "lossy", trials=36, seconds=1.0)
    proc = cluster.popen("run", str(space), "--address", cluster.address, cwd=tmp_path)
    journal = tmp_path / "results" / "lossy" / "journal.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (journal.exists() and journal.read_text().count('"e": "end"') >= 4):
        time.sleep(0.2)
    raylet = extra.raylet()
    assert raylet is not None
    raylet.kill()  # by pid: the node is gone, its trial with it
    while time.monotonic() < deadline and '"cause": "node_lost"' not in journal.read_text():
        time.sleep(0.2)  # the loss noticed: a node joins while the study runs on two
    newcomer = cluster.join()
    try:
        out, err = proc.communicate(timeout=180)
    finally:
        cluster.stop_node(extra)
        cluster.stop_node(newcomer)  # the next tests see the two nodes they began with
    assert proc.returncode == 0, err
    trials = pd.read_parquet(tmp_path / "results" / "lossy" / "trials.parquet")
    assert list(trials["trial_id"]) == [f"t{i:04d}" for i in range(1, 37)]
    assert set(trials["status"]) == {"finished"}, trials[["trial_id", "status", "error"]].to_string() + err
    assert trials["infra_retries"].sum() >= 1  # retried because of the node, said so
    assert (trials["attempts"] >= trials["infra_retries"]).all()
    events = [json.loads(line) for line in journal.read_text().splitlines()]
    assert any(e["e"] == "retry" and e.get("cause") == "node_lost" for e in events)
    assert sum(e["e"] == "end" for e in events) == 36  # none ended twice
    assert "has been marked dead" in err and "[state-dump]" not in err + out  # one line, not Ray's dump
    assert "the cluster shrank" in err and "the cluster grew" in err, err
    ray_log = (tmp_path / "results" / "lossy" / "logs" / "ray.log").read_text()
    assert "Raylet is terminated" in ray_log or "state-dump" in ray_log  # Ray's own words, kept
    cluster.wait_for(2)


def test_a_driver_submitted_as_a_ray_job_runs_and_logs_its_progress(cluster: Cluster, tmp_path: Path) -> None:
    write(tmp_path, "job", trials=4, seconds=0.5)
    storage = tmp_path / "out"
    done = subprocess.run(
        [RAY, "job", "submit", "--address", f"http://{cluster.dashboard}", "--working-dir", str(tmp_path), "--",
         sys.executable, "-m", "tuner", "run", "job.yaml", "--storage", str(storage)],
        env={**cluster.driver_env, "RAY_AUTH_MODE": "token"}, capture_output=True, text=True, timeout=240,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "trials started" in done.stdout  # the live view's final lines, as plain lines in the job's log
    assert "best t" in done.stdout
    assert len(pd.read_parquet(storage / "job" / "trials.parquet")) == 4


def test_a_path_only_this_machine_has_is_refused_before_anything_runs(cluster: Cluster, tmp_path: Path) -> None:
    """The worker node cannot see the results folder (its own empty folder at that path, as
    another machine would have), which makes the default checkpoint location unusable: exit 2,
    one line, nothing left."""
    if cluster.local is None:
        pytest.skip("unshare (a mount namespace for a node) is not permitted here")
    space = write(tmp_path, "here", trials=2, seconds=0.1)
    storage = cluster.local / "results"
    done = cluster.cli("run", str(space), "--address", cluster.address, "--storage", str(storage), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "is local to this machine" in errors[0] and "s3://" in errors[0]
    assert not storage.exists()


TUNE_SCRIPT = """
import time
from ray import tune


def train_fn(config):  # defined in the script's __main__: it reaches the other node by value
    time.sleep(0.5)
    tune.report({{"loss": config["x"]}})


if __name__ == "__main__":
    tuner = tune.Tuner(
        train_fn,
        param_space={{"x": tune.uniform(0, 1)}},
        tune_config=tune.TuneConfig(metric="loss", mode="min", num_samples=6),
        run_config=tune.RunConfig(name="script", storage_path={storage!r}),
    )
    print("best", tuner.fit().get_best_result().config)
"""


def test_a_ray_tune_script_runs_unchanged_on_the_cluster(cluster: Cluster, tmp_path: Path) -> None:
    script = tmp_path / "train_tune.py"
    script.write_text(TUNE_SCRIPT.format(storage=str(tmp_path / "results")))
    env = {**cluster.driver_env, "RAY_ADDRESS": cluster.address}  # the script itself says no address
    done = subprocess.run(
        [sys.executable, "-m", "tuner", "run", str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "best {'x':" in done.stdout
    trials = pd.read_parquet(tmp_path / "results" / "script" / "trials.parquet")
    assert list(trials["status"]) == ["finished"] * 6
    assert trials["nodes"].nunique() == 2  # the worker node imported train_fn from the driver's copy
