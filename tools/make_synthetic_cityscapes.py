"""Write a small synthetic dataset in the official Cityscapes layout (for the quickstart and tests)."""
import argparse

from bisenet.data.synthetic import make_synthetic_cityscapes


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="datasets/synthetic_cityscapes", help="dataset root (default: %(default)s)")
    parser.add_argument("--train", type=int, default=40, help="training images (default: %(default)s)")
    parser.add_argument("--val", type=int, default=10, help="validation images (default: %(default)s)")
    parser.add_argument("--size", type=int, nargs=2, default=(256, 512), metavar=("H", "W"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    make_synthetic_cityscapes(args.out, args.train, args.val, *args.size, seed=args.seed)
    print(f"wrote {args.train} train and {args.val} val images to {args.out}")


if __name__ == "__main__":
    main()
