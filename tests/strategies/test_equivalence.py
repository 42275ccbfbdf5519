"""One optimizer step under each strategy gives the parameters of the same step in one process:
FSDP over 2 ranks (each on half the batch) and a 2-stage pipeline (4 micro-batches, GPipe and
1F1B), through the trainable's own API (``trial.prepare``, ``trial.state_dict``), on gloo."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from benchmarks.strategies import spawn
from tuner.strategies import StrategyOptions
from tuner.trial import Trial


def model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4))


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(16, 8, generator=gen), torch.randn(16, 4, generator=gen)


def single_step() -> dict[str, torch.Tensor]:
    net, (x, y) = model(), batch()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    nn.functional.mse_loss(net(x), y).backward()
    opt.step()
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _step(rank: int, world: int, options: StrategyOptions, out: str) -> None:
    trial = Trial("t", 0, rank=rank, world_size=world, strategy=options)
    x, y = batch()
    loss_fn = nn.functional.mse_loss
    if options.name == "pipeline":
        net = trial.prepare(model(), loss_fn=loss_fn)
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        net.step(x, y)
    else:
        net = trial.prepare(model())
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        half = slice(rank * len(x) // world, (rank + 1) * len(x) // world)  # what DistributedSampler gives
        loss_fn(net(x[half]), y[half]).backward()
    opt.step()
    state = trial.state_dict(net, opt)
    if rank == 0:
        torch.save(state, out)


STRATEGIES = {
    "fsdp": StrategyOptions("fsdp"),
    "ddp": StrategyOptions("ddp"),
    "pipeline-gpipe": StrategyOptions("pipeline", stages=2, microbatches=4, schedule="gpipe"),
    "pipeline-1f1b": StrategyOptions("pipeline", stages=2, microbatches=4, schedule="1f1b"),
}
SCHEDULES = ("gpipe", "1f1b")


def _every_job(rank: int, world: int, folder: str) -> None:
    """What each test below needs from 2 ranks, one job after another in one gloo group: starting
    two processes (torch imported in each) costs far more than any job."""
    for key, options in STRATEGIES.items():
        _step(rank, world, options, f"{folder}/step-{key}.pt")
    _sharded_roundtrip(rank, world, f"{folder}/ckpt", f"{folder}/roundtrip.pt")
    for schedule in SCHEDULES:
        _predict(rank, world, schedule, f"{folder}/predict-{schedule}.pt")


@pytest.fixture(scope="module")
def ranks_ran(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder where the jobs of 2 ranks left their results."""
    folder = tmp_path_factory.mktemp("ranks")
    spawn(_every_job, 2, str(folder))
    return folder


@pytest.mark.parametrize("key", list(STRATEGIES))
def test_one_step_matches_the_single_process_step(key: str, ranks_ran: Path) -> None:
    options = STRATEGIES[key]
    expected = single_step()
    state = torch.load(ranks_ran / f"step-{key}.pt", weights_only=False)
    got = state["model"]
    assert set(got) == set(expected)  # the whole model, gathered or joined, under the same names
    for name, value in expected.items():
        torch.testing.assert_close(got[name].float(), value, rtol=1e-5, atol=1e-6, msg=name)
    if options.name == "pipeline":
        assert len(state["optimizer_stages"]) == 2  # each stage's optimizer, for a retry
    else:
        assert state["optimizer"]["state"]  # the momentum buffers came along


def test_a_sequential_is_split_where_its_parameters_balance() -> None:
    from tuner.strategies._pipeline import split_sequential

    net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
    parts = split_sequential(net, 2)
    assert [list(p._modules) for p in parts] == [["0", "1"], ["2", "3", "4"]]  # names kept: states join
    assert [list(p._modules) for p in split_sequential(net, 2, [4])] == [["0", "1", "2", "3"], ["4"]]
    with pytest.raises(ValueError, match="does not cut 5 layers into 2 stages"):
        split_sequential(net, 2, [5])


def _sharded_roundtrip(rank: int, world: int, folder: str, out: str) -> None:
    from tuner.storage import CheckpointStore

    store = CheckpointStore(folder)
    saved: list[dict[str, Any]] = []
    trial = Trial(
        "t",
        0,
        rank=rank,
        world_size=world,
        strategy=StrategyOptions("fsdp"),
        store=store,
        emit=saved.append if rank == 0 else None,
    )
    net = trial.prepare(model())
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    x, y = batch()
    nn.functional.mse_loss(net(x), y).backward()
    opt.step()
    trial.report(1, loss=1.0, checkpoint={**trial.state_dict(net, opt), "epoch": 1})
    record = trial.checkpoint()  # what a retry gets: where the shards are
    fresh = Trial("t", 0, rank=rank, world_size=world, strategy=StrategyOptions("fsdp"), store=store)
    again = fresh.prepare(model())
    opt2 = torch.optim.Adam(again.parameters(), lr=0.1)
    fresh.load_state_dict(again, opt2, record)
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    full = StateDictOptions(full_state_dict=True, cpu_offload=True)
    before, after = get_model_state_dict(net, options=full), get_model_state_dict(again, options=full)
    if rank == 0:
        torch.save(
            {"before": before, "after": after, "record": record, "shards": sorted(os.listdir(record["sharded"]))},
            out,
        )


def test_fsdp_checkpoints_are_written_as_shards_and_read_back(ranks_ran: Path) -> None:
    got = torch.load(ranks_ran / "roundtrip.pt", weights_only=False)
    assert got["record"]["sharded"].endswith("t/step-00000001.dcp") and got["record"]["epoch"] == 1
    assert "__0_0.distcp" in got["shards"] and "__1_0.distcp" in got["shards"]  # one file per rank, no gather
    for name, value in got["before"].items():
        torch.testing.assert_close(got["after"][name], value)


def _predict(rank: int, world: int, schedule: str, out: str) -> None:
    options = StrategyOptions("pipeline", stages=2, microbatches=4, schedule=schedule)
    trial = Trial("t", 0, rank=rank, world_size=world, strategy=options)
    net = trial.prepare(model(), loss_fn=nn.functional.mse_loss)
    got = net.predict(batch()[0])
    if rank == world - 1:
        torch.save(got, out)
    else:
        assert got is None


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_a_pipeline_predicts_what_the_whole_model_does(schedule: str, ranks_ran: Path) -> None:
    with torch.no_grad():
        expected = model()(batch()[0])
    torch.testing.assert_close(torch.load(ranks_ran / f"predict-{schedule}.pt", weights_only=True), expected)
