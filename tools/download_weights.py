"""Download published weights into torch's hub cache (and convert whole models to our format).

  python tools/download_weights.py                       # list the published weights
  python tools/download_weights.py coincheung/bisenetv1_city coincheung/backbone_v2

Any tool takes a published model by name instead (--weights coincheung/bisenetv1_city) and
fetches it on first use; this tool is for fetching ahead, e.g. before going offline.
"""
from bisenet import commands
from bisenet.cli import ToolParser, run


def main(argv=None):
    parser = ToolParser(__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help="published weights (none: list them)")
    args = parser.parse_args(argv)
    commands.download_weights(args.names)


if __name__ == "__main__":
    run(main)
