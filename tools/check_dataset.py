"""Check a dataset before training: python tools/check_dataset.py --config configs/bisenetv1_city.py

Scans every image and label of the splits (in parallel, with a progress bar) and reports image
counts and sizes, missing or unreadable files (an image without its label, a label without its
image), image/label size mismatches, label values outside the classes, class pixel frequencies
and the RGB mean/std. Exits with 1 when anything would break training or leave data unused,
listing the files. --plots DIR also draws the class frequencies and the image
sizes (DIR/class_pixels.png, DIR/image_sizes.png; needs matplotlib).
"""
import sys

from bisenet import commands
from bisenet.cli import config_parser, parse_args, positive_int, run, tool_config


def main(argv=None):
    parser = config_parser(__doc__)
    parser.add_argument("--root", help="dataset root (data.root)")
    parser.add_argument("--list", dest="list_file", help="a list file of image,label lines for the train split")
    parser.add_argument("--splits", nargs="+", help="splits to check (default: the config's train and val splits)")
    parser.add_argument("--workers", type=positive_int, default=None, help="processes (default: one per CPU core)")
    parser.add_argument("--plots", metavar="DIR", help="also draw the class frequencies and image sizes as PNGs in DIR")
    args = parse_args(parser, argv)
    if args.root:
        args.overrides.append(f"data.root={args.root}")
    if args.list_file:
        args.overrides.append(f"data.train_list={args.list_file}")
    report = commands.check_dataset_splits(tool_config(args), args.splits, args.workers, args.plots)
    sys.exit(1 if report["faults"] else 0)


if __name__ == "__main__":
    run(main)
