"""bisenet.distributed: the helpers work without a process group, and across two gloo processes."""
import os

import pytest
import torch
import torch.multiprocessing as mp

from bisenet import distributed
from bisenet.errors import UserError


def test_without_a_process_group_everything_is_one_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert (distributed.is_distributed(), distributed.get_rank(), distributed.get_world_size()) == (False, 0, 1)
    assert distributed.is_main_process() and distributed.launched_rank() is None
    tensor = torch.tensor([1.0, 2.0])
    assert distributed.all_reduce_sum(tensor) is tensor and tensor.tolist() == [1.0, 2.0]
    assert distributed.init_from_environment(torch.device("cpu")) == torch.device("cpu")  # a no-op
    distributed.cleanup()


def test_resolve_device():
    assert distributed.resolve_device("cpu") == torch.device("cpu")
    assert distributed.resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UserError, match="unknown device 'gpu': use cpu, cuda or cuda:N"):
        distributed.resolve_device("gpu")
    if torch.cuda.is_available():
        assert distributed.resolve_device("cuda:0") == torch.device("cuda", 0)
        with pytest.raises(UserError, match="CUDA GPU"):
            distributed.resolve_device(f"cuda:{torch.cuda.device_count()}")
    else:
        with pytest.raises(UserError, match="no CUDA GPU is available here; use --device cpu"):
            distributed.resolve_device("cuda")


def _worker(rank, port, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank))
    device = distributed.init_from_environment(torch.device("cpu"))
    summed = distributed.all_reduce_sum(torch.tensor([float(rank + 1)]))
    results[rank] = (distributed.get_rank(), distributed.get_world_size(), distributed.launched_rank(),
                     float(summed), str(device))
    distributed.cleanup()


@pytest.mark.slow
def test_two_gloo_processes_sum_and_know_their_ranks():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = mp.Manager().dict()
    mp.spawn(_worker, args=(port, results), nprocs=2, join=True)
    assert dict(results) == {0: (0, 2, 0, 3.0, "cpu"), 1: (1, 2, 1, 3.0, "cpu")}
