"""Rank and world-size helpers that also work in a plain, non-distributed process."""
import os

import torch
import torch.distributed as dist

from bisenet.errors import UserError


def is_distributed():
    return dist.is_available() and dist.is_initialized()


def get_rank():
    return dist.get_rank() if is_distributed() else 0


def get_world_size():
    return dist.get_world_size() if is_distributed() else 1


def is_main_process():
    return get_rank() == 0


def launched_rank():
    """This process's rank when a launcher (torchrun) started several, else None; also after the
    process group is gone."""
    return int(os.environ.get("RANK", "0")) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else None


def all_reduce_sum(tensor):
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def gather_objects(obj):
    """Every process's ``obj`` (picklable), in rank order (collective); ``[obj]`` alone."""
    if not is_distributed():
        return [obj]
    gathered = [None] * get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def any_process(flag, device):
    """Whether ``flag`` is true on any process (collective: every process must call it)."""
    return all_reduce_sum(torch.tensor([float(bool(flag))], device=device)).item() > 0


def distribute_bn(model, mode):
    """Make the BatchNorm running statistics (``running_mean``, ``running_var``) of ``model`` the
    same on every process, as timm's ``distribute_bn``: "reduce" averages them over the processes,
    "broadcast" copies the first process's. One collective over all of them; a no-op for "" or
    when not distributed. Every process must call it."""
    if not mode or not is_distributed():
        return
    statistics = [buffer for name, buffer in model.named_buffers()
                  if name.endswith(("running_mean", "running_var"))]
    flat = torch.cat([buffer.flatten() for buffer in statistics])
    if mode == "reduce":
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= get_world_size()
    else:
        dist.broadcast(flat, 0)
    for buffer, value in zip(statistics, flat.split([buffer.numel() for buffer in statistics])):
        buffer.copy_(value.view_as(buffer))


def resolve_device(name=None):
    """``name`` ("cpu", "cuda", "cuda:1") or, when not given, CUDA if available else the CPU."""
    if not name:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}: use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA GPU is available here; use --device cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UserError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return device


def init_from_environment(device):
    """Join the process group torchrun describes (NCCL on CUDA, gloo on CPU); a no-op for a
    plain process. Returns the device this process should use."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or is_distributed():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def cleanup():
    if is_distributed():
        dist.destroy_process_group()
