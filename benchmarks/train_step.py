"""Training-step time of BiSeNetV1 on this machine: the training loop's ``train_step`` (forward,
OHEM losses, the status all-reduce, backward, SGD step, schedule).

  python benchmarks/train_step.py [--batch 2] [--crop 512 512] [--threads 2] [--steps 5]

Reports fp32 and bf16-autocast (the CPU mixed precision of train.amp) seconds per step.
"""
import statistics
import time

import torch

from bisenet.cli import ToolParser, add_device_options, device_of
from bisenet.config_check import load_config
from bisenet.engine.trainer import autocast_dtype, build_run, train_step


def step_times(cfg, device, amp, batch, crop, steps, warmup=2):
    """Median seconds of ``train_step``, the training loop's own step, on random data."""
    cfg.train.amp = amp
    cfg.model.backbone_weights = ""  # timing does not need the ImageNet weights
    run = build_run(cfg, device)
    run.net.train()
    images = torch.randn(batch, 3, *crop)
    labels = torch.randint(0, 19, (batch, *crop))
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        train_step(run, images, labels)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = ToolParser(__doc__)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--crop", type=int, nargs=2, default=(512, 512))
    parser.add_argument("--steps", type=int, default=5)
    add_device_options(parser)
    args = parser.parse_args()
    cfg = load_config("configs/bisenetv1_city.py")
    device = device_of(args)
    for amp in (False, True):
        seconds = step_times(cfg, device, amp, args.batch, tuple(args.crop), args.steps)
        name = "fp32" if not amp else str(autocast_dtype(device, True)).replace("torch.", "") + " autocast"
        print(f"{name:>16}: {seconds:.3f} s/step, {args.batch / seconds:.2f} images/s "
              f"(batch {args.batch}, crop {args.crop[0]}x{args.crop[1]}, {device}, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
