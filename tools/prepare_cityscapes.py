"""Write *_gtFine_labelTrainIds.png next to Cityscapes' labelIds, and list files (optional:
bisenet trains on labelIds directly).

  python tools/prepare_cityscapes.py [--root datasets/cityscapes] [--splits train val] [--workers N]

Then `data.train_list=train_trainids.txt data.val_list=val_trainids.txt data.label_map={}` trains
on the converted labels, and train.txt / val.txt are the reference implementation's list files.
"""
from bisenet import commands
from bisenet.cli import ToolParser, positive_int, run


def main(argv=None):
    parser = ToolParser(__doc__)
    parser.add_argument("--root", default="datasets/cityscapes", help="Cityscapes root folder (default: %(default)s)")
    parser.add_argument("--splits", nargs="+", default=["train", "val"], help="splits (default: %(default)s)")
    parser.add_argument("--workers", type=positive_int, default=None, help="processes (default: one per CPU core)")
    args = parser.parse_args(argv)
    commands.prepare_cityscapes_labels(args.root, args.splits, args.workers)


if __name__ == "__main__":
    run(main)
