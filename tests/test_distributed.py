"""bisenet.distributed: the helpers work without a process group, and across two gloo processes."""
import os

import pytest
import torch
import torch.multiprocessing as mp

from bisenet import distributed
from bisenet.config import Config, TrainConfig
from bisenet.engine.trainer import build_run, train_step
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


def _dist_bn_worker(rank, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    device = distributed.init_from_environment(torch.device("cpu"))
    gen = torch.Generator().manual_seed(rank)  # each process its own images
    images, labels = torch.randn(2, 3, 32, 32, generator=gen), torch.randint(0, 19, (2, 32, 32), generator=gen)
    buffers = {}
    for dist_bn in ("", "reduce"):
        cfg = Config(train=TrainConfig(batch_size=4, amp=False, dist_bn=dist_bn, ema_decay=0.5))
        cfg.model.backbone_weights = ""
        run = build_run(cfg, device, rank, world_size=2)
        train_step(run, images, labels)
        buffers[dist_bn] = {name: value.clone() for name, value in run.model.named_buffers()}
        buffers[f"{dist_bn} ema"] = {name: value.clone() for name, value in run.ema.module.named_buffers()}
        if not dist_bn:
            distributed.distribute_bn(run.model, "broadcast")
            buffers["broadcast"] = {name: value.clone() for name, value in run.model.named_buffers()}
    torch.save(buffers, os.path.join(out, f"{rank}.pt"))  # not through a Manager: slow for many tensors
    distributed.cleanup()


@pytest.mark.slow
def test_dist_bn_reduce_averages_the_statistics_of_two_gloo_processes(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_dist_bn_worker, args=(port, str(tmp_path)), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"{rank}.pt") for rank in (0, 1)]
    own = [results[rank][""] for rank in (0, 1)]  # each process's statistics of its own images
    statistics = [name for name in own[0] if name.endswith(("running_mean", "running_var"))]
    assert sum(not torch.equal(own[0][name], own[1][name]) for name in statistics) > 0.9 * len(statistics)
    for rank in (0, 1):
        reduced, broadcast = results[rank]["reduce"], results[rank]["broadcast"]
        for name in statistics:
            assert torch.equal(reduced[name], (own[0][name] + own[1][name]) / 2), (rank, name)
            assert torch.equal(broadcast[name], own[0][name]), (rank, name)
        counted = "cp.resnet.bn1.num_batches_tracked"
        assert torch.equal(reduced[counted], own[rank][counted]) and int(reduced[counted]) == 1
        # The EMA averages the reduced statistics, so it is the same on both processes.
        ema = results[rank]["reduce ema"]
        assert all(torch.equal(value, results[0]["reduce ema"][name]) for name, value in ema.items())
