"""Checkpoints written by rank 0 straight to an object store: a real S3-compatible server
(moto's server mode on 127.0.0.1, started here and ended by pid), a retry that reads its
checkpoint back from it, old checkpoints pruned, and ``train`` loading the best one."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import tuner
from tests.conftest import study

pytestmark = pytest.mark.slow


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """An S3 server on a free loopback port with a bucket ``studies``; yields its endpoint."""
    server = Path(sys.executable).with_name("moto_server")
    if not server.exists():
        pytest.skip("moto's server is not installed (pip install -e '.[dev]')")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = (tmp_path / "moto.log").open("wb")
    proc = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    endpoint = f"http://127.0.0.1:{port}"
    for key, value in {
        "AWS_ACCESS_KEY_ID": "tuner",
        "AWS_SECRET_ACCESS_KEY": "tuner-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError((tmp_path / "moto.log").read_text())
            time.sleep(0.2)
        from pyarrow import fs

        fs.S3FileSystem(endpoint_override=endpoint, scheme="http", allow_bucket_creation=True).create_dir("studies")
        yield endpoint
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()
        log.close()


def listing(endpoint: str, prefix: str) -> list[str]:
    from pyarrow import fs

    s3fs, _ = fs.FileSystem.from_uri(f"s3://studies?endpoint_override={endpoint}&scheme=http")
    selector = fs.FileSelector(f"studies/{prefix}", recursive=True, allow_not_found=True)
    return sorted(info.path for info in s3fs.get_file_info(selector) if info.type == fs.FileType.File)


def test_checkpoints_go_to_s3_skip_the_driver_and_a_retry_reads_them_back(
    ray_local: None, in_tmp: Path, s3: str
) -> None:
    location = f"s3://studies/ckpt?endpoint_override={s3}&scheme=http"
    body = f"""
    name: s3
    trainable: trainables.toy:ranks
    metric: {{name: loss, goal: minimize}}
    method: grid
    max_failures: 1
    checkpoints: {{path: "{location}", keep: 1, keep_best: true}}
    parameters:
      steps: {{value: 5}}
      die_rank: {{value: 0}}
      die_at: {{value: 4}}
      how: {{value: raise}}
    """
    out = tuner.run(study(textwrap.dedent(body)), quiet=True)
    trials = tuner.load_results(out.folder)
    assert trials["status"].tolist() == ["finished"] and trials["attempts"].tolist() == [1]
    history = tuner.load_history(out.folder)
    assert list(history["step"]) == [1, 2, 3, 4, 5]  # 1-3 before the failure, 4-5 after reading step 3 back
    # Every step wrote a checkpoint; the last (5) and the best (step 1: loss rises with the step) are kept.
    assert listing(s3, "ckpt") == ["studies/ckpt/t0001/step-00000001.pt", "studies/ckpt/t0001/step-00000005.pt"]
    assert not (out.folder / "checkpoints").exists()  # nothing went through the driver's disk
    best = yaml.safe_load((out.folder / "best.yaml").read_text())
    assert best["checkpoint"] == "s3://studies/ckpt/t0001/step-00000005.pt"
    journal = (out.folder / "journal.jsonl").read_text()
    assert '"e": "ckpt"' in journal and "studies/ckpt/t0001" in journal
