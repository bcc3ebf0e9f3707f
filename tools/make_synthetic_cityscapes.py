"""Write a small synthetic dataset in the official Cityscapes layout (for the quickstart and tests).

  python tools/make_synthetic_cityscapes.py [--root datasets/synthetic_cityscapes] [--train 40] [--val 10]
"""
from bisenet import commands
from bisenet.cli import ToolParser, positive_int, run


def main(argv=None):
    parser = ToolParser(__doc__)
    parser.add_argument("--root", default="datasets/synthetic_cityscapes",
                        help="dataset root folder to write (default: %(default)s)")
    parser.add_argument("--train", type=positive_int, default=40, help="training images (default: %(default)s)")
    parser.add_argument("--val", type=positive_int, default=10, help="validation images (default: %(default)s)")
    parser.add_argument("--size", type=positive_int, nargs=2, default=(256, 512), metavar=("H", "W"),
                        help="image size (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    args = parser.parse_args(argv)
    commands.make_synthetic_dataset(args.root, args.train, args.val, tuple(args.size), args.seed)


if __name__ == "__main__":
    run(main)
