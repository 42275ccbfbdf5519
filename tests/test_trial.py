"""The trial object, without Ray: reporting rules, the backend choice, sharded loading."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import TensorDataset

from tuner import Trial, TrialPruned
from tuner.trial import choose_backend


@pytest.mark.parametrize(
    ("gpus", "cuda", "backend"),
    [
        (0, False, "gloo"),
        (0, True, "gloo"),
        (1, True, "nccl"),
        (2, True, "nccl"),
        (0.5, True, "gloo"),
        (1, False, "gloo"),
    ],
)
def test_backend_from_resources(gpus: float, cuda: bool, backend: str) -> None:
    assert choose_backend(gpus, cuda) == backend


def test_report_validates_and_keeps_reports() -> None:
    trial = Trial("t1", 0)
    trial.report(1, loss=torch.tensor(0.5), acc=1)
    assert trial.reports == [{"step": 1, "metrics": {"acc": 1.0, "loss": 0.5}}]
    with pytest.raises(ValueError, match="step must increase"):
        trial.report(1, loss=0.1)
    with pytest.raises(TypeError, match="metric 'loss' must be a number"):
        trial.report(2, loss="low")
    with pytest.raises(TypeError, match="step must be a finite number"):
        trial.report(math.nan, loss=0.1)


def test_report_raises_pruned_once_told_to_stop() -> None:
    stop = False
    seen = []
    trial = Trial("t1", 0, emit=seen.append, should_stop=lambda: stop)
    trial.report(1, loss=1.0, checkpoint={"w": 1})
    stop = True
    with pytest.raises(TrialPruned):
        trial.report(2, loss=0.5, checkpoint={"w": 2})
    assert not isinstance(TrialPruned("x"), Exception)  # `except Exception` in a trainable cannot eat it
    assert [r["step"] for r in seen] == [1, 2]
    assert "checkpoint" in seen[0] and "checkpoint" not in seen[1]  # stopped: nobody would record it


def test_device_is_cpu_without_cuda_even_with_gpus() -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA machine")
    assert Trial("t", 0, gpus=1).device == torch.device("cpu")


def test_loader_shards_the_global_batch_and_reshuffles_each_epoch() -> None:
    data = TensorDataset(torch.arange(40).float(), torch.arange(40))
    shards = []
    for rank in (0, 1):
        loader = Trial("t", 3, rank=rank, world_size=2).loader(data, batch_size=8)
        epoch1 = [y.tolist() for _, y in loader]
        epoch2 = [y.tolist() for _, y in loader]
        assert all(len(b) == 4 for b in epoch1)  # 8 global = 4 per rank
        assert epoch1 != epoch2  # the sampler's epoch advanced
        shards.append({i for b in epoch1 for i in b})
    assert shards[0].isdisjoint(shards[1]) and shards[0] | shards[1] == set(range(40))
    assert not Trial("t", 0).loader(data, batch_size=8).loader.pin_memory  # CPU: no pinned memory


def test_loader_refuses_a_batch_smaller_than_the_workers() -> None:
    data = TensorDataset(torch.zeros(4))
    with pytest.raises(ValueError, match="smaller than the 4 workers"):
        Trial("t", 0, rank=0, world_size=4).loader(data, batch_size=2)


def test_prepare_leaves_a_single_process_model_unwrapped() -> None:
    model = torch.nn.Linear(2, 1)
    assert Trial("t", 0).prepare(model) is model
    assert Trial.unwrap(model) is model
