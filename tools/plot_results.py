"""Pictures of evaluation results: confusion matrix, per-class IoU, and two results compared.

  python tools/plot_results.py eval.json --out DIR                   (each mode; the first against the others)
  python tools/plot_results.py ss.json msf.json --out DIR            (two evaluations side by side)
  python tools/plot_results.py eval.json:msf paper.json --out DIR    (one mode of a --modes file; a published table)

A result is a file of tools/evaluate.py --json (PATH:MODE picks one mode of a --modes file) or a
published table typed by hand, IoU percentages by class name:
  {"name": "BiSeNetV1 paper", "miou": 74.8, "iou": {"road": 98.1, "sidewalk": 84.2, ...}}
Writes <name>_confusion_matrix.png (evaluations only) and <name>_iou.png for each result, and
<first>_vs_<other>.png comparing the first result with each of the others.
"""
from bisenet.cli import ToolParser, run
from bisenet.plots.evaluation import plot_results


def main(argv=None):
    parser = ToolParser(__doc__)
    parser.add_argument("results", nargs="+", metavar="RESULT", help="evaluation JSON (PATH or PATH:MODE) or table")
    parser.add_argument("--out", required=True, metavar="DIR", help="where the PNGs go")
    args = parser.parse_args(argv)
    for path in plot_results(args.results, args.out):
        print(f"wrote {path}")


if __name__ == "__main__":
    run(main)
