"""Plot a training run's loss, LR and mIoU curves.

  python tools/plot_log.py output/bisenetv1_city [--out curves.png]
"""
from bisenet.cli import ToolParser, run
from bisenet.plots.training import plot_run


def main(argv=None):
    parser = ToolParser(__doc__)
    parser.add_argument("run", help="a training output folder (with metrics.jsonl) or a metrics.jsonl file")
    parser.add_argument("--out", metavar="FILE", help="the PNG to write (default: <run>/curves.png)")
    args = parser.parse_args(argv)
    print(f"wrote {plot_run(args.run, args.out)}")


if __name__ == "__main__":
    run(main)
