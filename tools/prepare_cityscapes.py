"""Write *_gtFine_labelTrainIds.png next to Cityscapes' labelIds, and list files (optional:
bisenet trains on labelIds directly).

  python tools/prepare_cityscapes.py [--root datasets/cityscapes] [--splits train val] [--workers N]

Then `data.train_list=train_trainids.txt data.val_list=val_trainids.txt data.label_map={}` trains
on the converted labels, and train.txt / val.txt are the reference implementation's list files.
"""
import argparse
import sys

from bisenet.config import load_config
from bisenet.data.io import DatasetError, describe
from bisenet.data.prepare import prepare_cityscapes


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="datasets/cityscapes")
    parser.add_argument("--splits", nargs="+", default=["train", "val"])
    parser.add_argument("--workers", type=int, default=None, help="processes (default: one per CPU core)")
    args = parser.parse_args()
    data_cfg = load_config(None, [f"data.root={args.root}"]).data
    try:
        for path in prepare_cityscapes(data_cfg, args.splits, args.workers):
            print(f"wrote {path}")
    except DatasetError as exc:
        sys.exit(f"error: {describe(exc)}")


if __name__ == "__main__":
    main()
