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
from bisenet.outputs import check_output_dir
from bisenet.plots import require_matplotlib
from bisenet.plots.evaluation import ResultsFileError, read_scores, write_result_plots


def main(argv=None):
    parser = ToolParser(__doc__)
    parser.add_argument("results", nargs="+", metavar="RESULT", help="evaluation JSON (PATH or PATH:MODE) or table")
    parser.add_argument("--out", required=True, metavar="DIR", help="where the PNGs go")
    args = parser.parse_args(argv)
    require_matplotlib("plotting evaluation results")
    check_output_dir(args.out, "--out")
    results = []
    for spec in args.results:
        scores = read_scores(spec)
        if len(args.results) > 1 and len(scores) > 1:
            modes = ", ".join(f"{spec}:{s.name.rsplit(' ', 1)[-1]}" for s in scores)
            raise ResultsFileError(f"{spec} holds {len(scores)} modes; to compare files, pick one ({modes})")
        results += scores
    for path in write_result_plots(results, args.out):
        print(f"wrote {path}")


if __name__ == "__main__":
    run(main)
