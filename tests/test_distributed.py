"""Two CPU processes with gloo: identical weights on both ranks, metrics reduced across ranks."""

import os
import socket

import pytest
import torch
import torch.distributed as distributed
import torch.multiprocessing as multiprocessing
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from nbhelpers.training.fit import evaluate, fit_one_cycle
from tests.training_helpers import TinyNet, separable_data


class ShardedLoader:
    def __init__(self, dataset, rank, world_size, batch_size, shuffle):
        self.sampler = DistributedSampler(dataset, world_size, rank, shuffle=shuffle, seed=0)
        self.loader = DataLoader(dataset, batch_size=batch_size, sampler=self.sampler)

    def set_epoch(self, epoch):
        self.sampler.set_epoch(epoch)

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        return iter(self.loader)


def _worker(rank, world_size, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    distributed.init_process_group("gloo", rank=rank, world_size=world_size)
    torch.manual_seed(rank)  # different initial weights: DDP must broadcast rank 0's
    torch.set_num_threads(1)
    train = ShardedLoader(separable_data(256, 0), rank, world_size, 16, True)
    val = ShardedLoader(separable_data(60, 1), rank, world_size, 32, False)
    model = TinyNet()
    history = fit_one_cycle(2, 0.01, model, train, val, device=torch.device("cpu"), progress=False, verbose=False)
    local = {"rank": rank, "history": [{k: v for k, v in r.items() if k != "lrs"} for r in history]}
    torch.save({"state": model.state_dict(), **local}, f"{out_dir}/rank{rank}.pt")
    distributed.destroy_process_group()


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_gloo_ranks_agree(tmp_path):
    multiprocessing.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert all(torch.equal(rank0["state"][key], rank1["state"][key]) for key in rank0["state"])
    assert rank0["history"] == rank1["history"]  # reduced metrics are the same on every rank
    model = TinyNet()
    model.load_state_dict(rank0["state"])
    full = evaluate(model, DataLoader(separable_data(60, 1), batch_size=60))
    assert rank0["history"][-1]["val_loss"] == pytest.approx(full["val_loss"], rel=1e-5)
    assert rank0["history"][-1]["val_acc"] == pytest.approx(full["val_acc"], rel=1e-6)
