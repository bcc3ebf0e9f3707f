"""See what the model will be fed: augmented images beside their coloured labels, as grid PNGs.

  python tools/browse_dataset.py --config configs/bisenetv1_city.py [--split train|val] [--num 16] [--out DIR]
  python tools/browse_dataset.py --config configs/bisenetv1_city.py --step 1200      (what step 1200 trains on)

The training split runs the config's own training pipeline with the trainer's sampler and seeds:
with the default grid size, train_step000000.png is the batch of the first step (train.seed=N
shows another run's). Each image (de-normalised) is beside its label in the dataset's palette,
the ignore region striped in two greys, with the classes present and their share of the pixels
written under it. The same config and seed always give the same pictures.
"""
from bisenet import commands
from bisenet.cli import config_parser, parse_args, positive_int, run, tool_config


def main(argv=None):
    parser = config_parser(__doc__)
    parser.add_argument("--split", choices=("train", "val"), default="train",
                        help="train: the training pipeline (augmented); val: the evaluation pipeline")
    parser.add_argument("--num", type=positive_int, default=16, help="samples to show (default: %(default)s)")
    parser.add_argument("--per-grid", type=positive_int,
                        help="samples per PNG (default: train.batch_size, one training step per PNG)")
    parser.add_argument("--step", type=int, default=0,
                        help="train: start at the batch of this training step (default: %(default)s)")
    parser.add_argument("--panel-size", type=positive_int, default=512,
                        help="longest side of a panel in pixels; arrays are scaled by a whole factor to fit, "
                             "never interpolated (default: %(default)s)")
    parser.add_argument("--out", metavar="DIR", help="where the PNGs go (default: <train.output_dir>/browse)")
    args = parse_args(parser, argv)
    if args.step < 0 or (args.step and args.split != "train"):
        parser.error(f"--step {args.step}: a training step (0 or more), with --split train only")
    commands.browse_dataset(tool_config(args), args.out, args.split, args.num, args.per_grid, args.step,
                            args.panel_size)


if __name__ == "__main__":
    run(main)
