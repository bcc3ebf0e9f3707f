"""How much of multi-scale + flip evaluation is spent outside the model's forward passes.

  python benchmarks/evaluation_overhead.py [--images 2] [--size 512 1024] [--threads 2]

Runs the evaluator (--msc --flip: 6 scales x 2 = 12 passes per image) on random images with a
BiSeNetV1 of random weights, timing every forward pass, and reports wall time against the sum
of the passes' own time. The goal: overhead (resizing, softmax accumulation, the metric) under 10%.
"""
import time

import torch
import torch.nn as nn

from bisenet.cli import ToolParser, add_device_options, device_of
from bisenet.config_check import load_config
from bisenet.engine.evaluator import EvalMode, evaluate
from bisenet.inference import load_model


class TimedModel(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model
        self.seconds = 0.0
        self.passes = 0

    def forward(self, x):
        if x.is_cuda:
            torch.cuda.synchronize(x.device)
        start = time.perf_counter()
        out = self.model(x)
        if x.is_cuda:
            torch.cuda.synchronize(x.device)
        self.seconds += time.perf_counter() - start
        self.passes += 1
        return out


def main():
    parser = ToolParser(__doc__)
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--size", type=int, nargs=2, default=(512, 1024))
    add_device_options(parser)
    args = parser.parse_args()
    cfg = load_config("configs/bisenetv1_city.py")
    device = device_of(args)
    model = TimedModel(load_model(cfg, None, device))
    generator = torch.Generator().manual_seed(0)
    loader = [{"image": torch.randn(1, 3, *args.size, generator=generator),
               "label": torch.randint(0, 19, (1, *args.size), generator=generator)} for _ in range(args.images)]
    with torch.no_grad():  # warm-up pass, not counted
        model.model(torch.randn(1, 3, *args.size, device=device))
    start = time.perf_counter()
    mode = EvalMode(scales=tuple(cfg.eval.scales), flip=True, protocol=cfg.eval.protocol)
    evaluate(model, loader, 19, device, mode=mode, progress=False)
    wall = time.perf_counter() - start
    print(f"{args.images} images of {args.size[0]}x{args.size[1]}, {model.passes} forward passes, {device}, "
          f"{torch.get_num_threads()} threads")
    print(f"wall {wall:.2f} s, forward passes {model.seconds:.2f} s, overhead {100 * (wall / model.seconds - 1):.1f}%")


if __name__ == "__main__":
    main()
