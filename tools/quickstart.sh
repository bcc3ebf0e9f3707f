#!/usr/bin/env bash
# The whole pipeline on a synthetic dataset in the official Cityscapes layout, on the CPU:
# generate the data, train BiSeNetV1 from scratch (which ends by evaluating it on the val split)
# and colour one image. Arguments are config overrides for the training run
# (bash tools/quickstart.sh train.max_iters=400).
set -euo pipefail
cd "$(dirname "$0")/.."
root=datasets/synthetic_cityscapes
config=configs/bisenetv1_synthetic.py
python tools/make_synthetic_cityscapes.py --root "$root" --train 40 --val 10
python tools/train.py --config "$config" "$@"
python tools/demo.py "$root/leftImg8bit/val/frankfurt/frankfurt_000000_000019_leftImg8bit.png" --config "$config"
