"""Convert another implementation's checkpoint to ours.

  python tools/convert_checkpoint.py --from coincheung SRC DST [--config CONFIG]

The architecture (BiSeNetV1 or V2) and the class count are read from the checkpoint's keys; the
matching published config is stored with the weights, or --config's, which must build that model.
"""
from bisenet import commands
from bisenet.cli import ToolParser, run
from bisenet.convert import CONVERTERS


def main(argv=None):
    parser = ToolParser(__doc__)
    parser.add_argument("--from", dest="source_format", required=True, choices=sorted(CONVERTERS),
                        help="the implementation that saved SRC (coincheung: CoinCheung/BiSeNet)")
    parser.add_argument("--config", help="config of the target model (default: found from the checkpoint)")
    parser.add_argument("src", help="checkpoint to convert")
    parser.add_argument("dst", help="the converted checkpoint to write")
    args = parser.parse_args(argv)
    commands.convert_checkpoint(args.source_format, args.src, args.dst, args.config)


if __name__ == "__main__":
    run(main)
