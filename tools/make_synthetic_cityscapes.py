"""Write a small synthetic dataset in the official Cityscapes layout (for the quickstart and tests).

  python tools/make_synthetic_cityscapes.py [--root datasets/synthetic_cityscapes] [--train 40] [--val 10]
"""
from bisenet.cli import ToolParser, positive_int, run
from bisenet.data.synthetic import make_synthetic_cityscapes
from bisenet.outputs import check_output_dir


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
    make_synthetic_cityscapes(check_output_dir(args.root, "--root"), args.train, args.val, *args.size, seed=args.seed)
    print(f"wrote {args.train} train and {args.val} val images to {args.root}")


if __name__ == "__main__":
    run(main)
