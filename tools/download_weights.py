"""Download published weights into torch's hub cache (and convert whole models to our format).

  python tools/download_weights.py                       # list the published weights
  python tools/download_weights.py coincheung/bisenetv1_city coincheung/backbone_v2

Any tool takes a published model by name instead (--weights coincheung/bisenetv1_city) and
fetches it on first use; this tool is for fetching ahead, e.g. before going offline.
"""
from bisenet.cli import ToolParser, run
from bisenet.weights import PUBLISHED, download, fetch, hub_checkpoint_path, url_of


def main(argv=None):
    parser = ToolParser(__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help="published weights (none: list them)")
    args = parser.parse_args(argv)
    if not args.names:
        for name, entry in PUBLISHED.items():
            table = ", ".join(f"{mode} {miou:.2f}" for mode, miou in entry.published_miou.items())
            print(f"{name:28s} {entry.description}" + (f"; published mIoU {table}" if table else ""))
            print(f"{'':28s} {url_of(entry)} -> {hub_checkpoint_path(entry.filename)}")
        return
    for name in args.names:
        path = fetch(name) if name in PUBLISHED and PUBLISHED[name].config else download(name)
        print(f"{name}: {path}")


if __name__ == "__main__":
    run(main)
