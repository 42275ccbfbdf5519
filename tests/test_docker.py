"""docker/ and the KubeRay example, checked with the tools that can run here (no Docker engine or
Kubernetes cluster): compose's own config check, hadolint, and the RayJob's CRD schema."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tuner.config import load_study

DOCKER = ROOT / "docker"


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip(f"{name} is not installed (.ci/run installs it)")
    return found


def test_compose_file_is_valid_and_safe() -> None:
    done = subprocess.run(
        [tool("docker-compose"), "-f", str(DOCKER / "compose.yaml"), "config"],
        env={"RAY_AUTH_TOKEN": "a-test-token", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    head, worker = config["services"]["ray-head"], config["services"]["ray-worker"]
    assert all(str(p).startswith("127.0.0.1:") for p in head["ports"])  # the dashboard: loopback only
    assert "container_name" not in worker  # workers scale: --scale ray-worker=N
    mounts = {tuple(str(v).split(":")[:2]) for s in (head, worker) for v in s["volumes"]}
    assert mounts == {("studies", "/app/results")}  # one shared volume for results and checkpoints
    assert head["environment"]["RAY_AUTH_MODE"] == worker["environment"]["RAY_AUTH_MODE"] == "token"
    unset = subprocess.run(
        [tool("docker-compose"), "-f", str(DOCKER / "compose.yaml"), "config", "-q"],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert unset.returncode != 0 and "RAY_AUTH_TOKEN" in unset.stderr  # no cluster without a token


def test_dockerfile_passes_hadolint_and_builds_cpu_torch_by_default() -> None:
    done = subprocess.run(
        [tool("hadolint"), "--failure-threshold", "warning", str(DOCKER / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = (DOCKER / "Dockerfile").read_text()
    assert "ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu" in text


def test_kuberay_rayjob_matches_the_crd_and_runs_a_shipped_study() -> None:
    done = subprocess.run(
        [
            tool("check-jsonschema"),
            "--schemafile",
            str(DOCKER / "rayjob.schema.json"),
            str(DOCKER / "kuberay-rayjob.yaml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    job = yaml.safe_load((DOCKER / "kuberay-rayjob.yaml").read_text())
    command = job["spec"]["entrypoint"].split()
    assert command[:4] == ["python", "-m", "tuner", "run"]
    load_study(ROOT / command[4], check_import=False)  # the study it names exists and is valid
    assert job["spec"]["rayClusterSpec"]["authOptions"]["mode"] == "token"
