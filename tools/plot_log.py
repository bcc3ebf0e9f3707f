"""Plot a training run's loss, LR and mIoU curves.

  python tools/plot_log.py output/bisenetv1_city [--out curves.png]
"""
import os

from bisenet.cli import ToolParser, run
from bisenet.engine.logs import plot_metrics
from bisenet.errors import MissingFileError
from bisenet.outputs import check_output_file


def main(argv=None):
    parser = ToolParser(__doc__)
    parser.add_argument("run", help="a training output folder (with metrics.jsonl) or a metrics.jsonl file")
    parser.add_argument("--out", metavar="FILE", help="the PNG to write (default: <run>/curves.png)")
    args = parser.parse_args(argv)
    metrics = args.run if args.run.endswith(".jsonl") else os.path.join(args.run, "metrics.jsonl")
    if not os.path.isfile(metrics):
        raise MissingFileError(f"{metrics} not found; it is written by tools/train.py into train.output_dir")
    out = check_output_file(args.out or os.path.join(os.path.dirname(metrics), "curves.png"), "--out")
    print(f"wrote {plot_metrics(metrics, out)}")


if __name__ == "__main__":
    run(main)
