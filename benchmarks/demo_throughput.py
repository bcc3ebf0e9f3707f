"""Images per second of the folder demo against the model alone.

  python benchmarks/demo_throughput.py [--config configs/bisenetv1_city.py] [--precision int8]
                                       [--images 8] [--size 1024 2048] [--workers 2]

Writes a folder of synthetic street scenes (PNG, --size), then times: the model alone on the
preprocessed images already in memory, the demo's plain loop (read, preprocess, infer, colour,
write two PNGs, one after the other) and the demo with its reader/writer threads overlapping
that I/O with inference. Random weights (int8 calibrated on random images): speed only.
"""
import os
import tempfile
import time

import cv2
import numpy as np
import torch
from tabulate import tabulate

from bisenet.benchmark import cpu_features
from bisenet.cli import add_device_options, config_parser, device_of, parse_args, positive_int, run, tool_config
from bisenet.data.synthetic import render_scene
from bisenet.data.transforms import build_eval_transform
from bisenet.demo import Segmenter, segment_images
from bisenet.deploy.quantize import random_calibration_inputs
from bisenet.deploy.runtime import PRECISIONS, make_fast
from bisenet.inference import load_model


def main(argv=None):
    parser = config_parser(__doc__)
    parser.add_argument("--precision", choices=PRECISIONS, default="auto", help="the fast path's arithmetic")
    parser.add_argument("--images", type=positive_int, default=8, help="images in the folder (default: %(default)s)")
    parser.add_argument("--size", type=positive_int, nargs=2, default=(1024, 2048), metavar=("H", "W"))
    parser.add_argument("--workers", type=positive_int, default=2, help="demo threads (default: %(default)s)")
    add_device_options(parser)
    args = parse_args(parser, argv)
    cfg = tool_config(args)
    device = device_of(args)
    calibration = random_calibration_inputs(4, args.size) if args.precision == "int8" else None
    model = make_fast(load_model(cfg, None, device), device, args.precision, calibration)
    segmenter = Segmenter(cfg, None, device, model=model)
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for i in range(args.images):
            _, _, image = render_scene(np.random.default_rng(i), *args.size)
            paths.append(os.path.join(folder, f"scene{i}.png"))
            cv2.imwrite(paths[-1], cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        transform = build_eval_transform(cfg.data)
        inputs = [transform(cv2.cvtColor(cv2.imread(p), cv2.COLOR_BGR2RGB), np.zeros(args.size, np.uint8))[0][None]
                  for p in paths]
        segment_images(segmenter, paths[:1], os.path.join(folder, "warmup"), progress=False)
        seconds = {}
        start = time.perf_counter()
        with torch.no_grad():
            for x in inputs:
                model(x.to(device))
        seconds["model alone"] = time.perf_counter() - start
        for name, workers in (("demo, plain loop", 0), (f"demo, {args.workers} threads", args.workers)):
            start = time.perf_counter()
            segment_images(segmenter, paths, os.path.join(folder, name), progress=False, workers=workers)
            seconds[name] = time.perf_counter() - start
    base = seconds["model alone"]
    print(f"{cfg.model.name}, {args.precision}, {args.images} images of {args.size[0]}x{args.size[1]}, {device}, "
          f"{torch.get_num_threads()} threads, CPU: {', '.join(cpu_features()) or '-'}")
    print(tabulate([[name, f"{args.images / s:.3f}", f"{s / base:.2f}"] for name, s in seconds.items()],
                   headers=["", "images/s", "time / model alone"], tablefmt="github"))


if __name__ == "__main__":
    run(main)
