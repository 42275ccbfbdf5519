"""Reading back what the trackers wrote, with each library's own reader: MLflow's client, the
records of W&B's offline run files (its protobuf schema), TensorBoard's event files."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

SIMULATED = """
name: sim
trainable: tests.engine.curves:{fn}
backend: simulated
metric: {{name: loss, goal: minimize}}
method: random
seed: 5
run_cap: {cap}
max_concurrent: 2
max_failed_trials: 100
early_terminate: {{type: asha, max_t: 9, grace_period: 1, reduction_factor: 3}}
parameters:
  x: {{min: 0.0, max: 1.0}}
tracking:
{tracking}
"""


def mlflow_runs(uri: str, experiment: str) -> tuple[Any, dict[str, Any]]:
    """The study's parent run and its child runs by trial id, read with ``MlflowClient``."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r}"
    runs = client.search_runs([found.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1, [r.info.run_name for r in parents]
    children: dict[str, Any] = {}
    for run in runs:
        if run.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id:
            trial = run.data.tags["tuner.trial"]
            assert trial not in children, f"two runs for {trial}"
            children[trial] = run
    return parents[0], children


def metric_history(uri: str, run_id: str, name: str) -> list[tuple[int, float]]:
    from mlflow import MlflowClient

    history = MlflowClient(tracking_uri=uri).get_metric_history(run_id, name)
    return sorted((m.step, m.value) for m in history)


def saved_curves(folder: Path, metric: str = "loss") -> dict[str, list[tuple[int, float]]]:
    """Each trial's (step, value) as the results folder keeps them."""
    history = pd.read_parquet(folder / "history.parquet")
    return {
        str(trial): sorted((int(s), float(v)) for s, v in zip(rows["step"], rows[metric], strict=True))
        for trial, rows in history.groupby("trial_id")
    }


@dataclass
class WandbRun:
    run_id: str = ""
    name: str = ""
    group: str = ""
    job_type: str = ""
    project: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    files: int = 0  # a resumed run's continuation is a second file


BLOCK = 32 * 1024  # W&B's transaction log is LevelDB's log format: 32 KiB blocks of 7-byte-headed chunks


def wandb_records(path: Path) -> list[Any]:
    """Every record of a ``run-<id>.wandb`` file, parsed with W&B's own protobuf schema."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, chunks, records = 7, b"", []
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:  # a block's tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and length == 0:
            break
        chunks += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST: a whole record
            record = pb.Record()
            record.ParseFromString(chunks)
            records.append(record)
            chunks = b""
    return records


def wandb_runs(folder: Path) -> dict[str, WandbRun]:
    """The offline runs under ``folder`` (a run resumed in a second file is merged), by name."""
    runs: dict[str, WandbRun] = {}
    for path in sorted(folder.glob("wandb/offline-run-*/run-*.wandb")):
        run = WandbRun()
        for record in wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                r = record.run
                run = runs.setdefault(r.display_name, run)
                assert run.run_id in ("", r.run_id), f"{r.display_name}: two run ids, {run.run_id} and {r.run_id}"
                run.run_id, run.name, run.group, run.job_type, run.project = (
                    r.run_id,
                    r.display_name,
                    r.run_group,
                    r.job_type,
                    r.project,
                )
                run.files += 1
                run.config |= {u.key: json.loads(u.value_json) for u in r.config.update if u.key != "_wandb"}
            elif kind == "config":
                run.config |= {u.key: json.loads(u.value_json) for u in record.config.update if u.key != "_wandb"}
            elif kind == "history":
                run.history.append(
                    {"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in record.history.item}
                )
            elif kind == "summary":
                for u in record.summary.update:
                    key = "/".join(u.nested_key) or u.key
                    if not key.startswith("_"):
                        run.summary[key] = json.loads(u.value_json)
            elif kind == "exit":
                run.exit_code = record.exit.exit_code
    return runs


def tensorboard_scalars(run: Path, tag: str) -> list[tuple[int, float]]:
    """``(step, value)`` of ``tag`` in a TensorBoard run's event files."""
    from tests.results.test_tensorboard import events

    return sorted((e.step, v.simple_value) for e in events(run) for v in e.summary.value if v.tag == tag)
