"""Convert another implementation's checkpoint to ours.

  python tools/convert_checkpoint.py --from coincheung SRC DST [--config CONFIG]

The architecture (BiSeNetV1 or V2) and the class count are read from the checkpoint's keys; the
matching published config is stored with the weights, or --config's, which must build that model.
"""
import sys

from bisenet.checkpoint import CONVERTERS, CheckpointError, read_state_dict, save_checkpoint
from bisenet.cli import ToolParser, load_config_or_exit, user_errors
from bisenet.weights import convert_reference


def main():
    parser = ToolParser(__doc__)
    parser.add_argument("--from", dest="source_format", required=True, choices=sorted(CONVERTERS),
                        help="the implementation that saved SRC (coincheung: CoinCheung/BiSeNet)")
    parser.add_argument("--config", help="config of the target model (default: found from the checkpoint)")
    parser.add_argument("src", help="checkpoint to convert")
    parser.add_argument("dst", help="where to write the converted checkpoint")
    args = parser.parse_args()
    args.overrides = []
    cfg = load_config_or_exit(args) if args.config else None
    with user_errors():
        try:
            state, notes, cfg = convert_reference(read_state_dict(args.src), args.src, cfg)
        except CheckpointError as exc:
            message = str(exc)  # always name the source: not every converter message does
            sys.exit(f"error: {message if args.src in message else f'{args.src}: {message}'}")
        for note in notes:
            print(f"note: {note}")
        try:
            save_checkpoint({"model": state, "config": cfg.to_dict(), "converted_from": args.source_format}, args.dst)
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename and exc.filename != args.dst else ""
            sys.exit(f"error: cannot write {args.dst}: {exc.strerror or exc}{where}")
    print(f"converted {len(state)} entries ({cfg.model.name}, {cfg.model.num_classes} classes) from {args.src} "
          f"to {args.dst}")


if __name__ == "__main__":
    main()
