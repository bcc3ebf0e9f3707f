"""Convert another implementation's checkpoint to ours.

  python tools/convert_checkpoint.py --from coincheung SRC DST [--config CONFIG]

The architecture (BiSeNetV1 or V2) and the class count are read from the checkpoint's keys; the
matching published config is stored with the weights, or --config's, which must build that model.
"""
from bisenet.checkpoint import CheckpointError, read_state_dict, save_checkpoint
from bisenet.cli import ToolParser, config_file, run
from bisenet.config_check import load_config
from bisenet.convert import CONVERTERS
from bisenet.outputs import check_output_file
from bisenet.weights import convert_reference


def main(argv=None):
    parser = ToolParser(__doc__)
    parser.add_argument("--from", dest="source_format", required=True, choices=sorted(CONVERTERS),
                        help="the implementation that saved SRC (coincheung: CoinCheung/BiSeNet)")
    parser.add_argument("--config", help="config of the target model (default: found from the checkpoint)")
    parser.add_argument("src", help="checkpoint to convert")
    parser.add_argument("dst", help="the converted checkpoint to write")
    args = parser.parse_args(argv)
    check_output_file(args.dst, "the converted checkpoint")
    cfg = load_config(config_file(args.config)) if args.config else None
    try:
        state, notes, cfg = convert_reference(read_state_dict(args.src), args.src, cfg)
    except CheckpointError as exc:
        message = str(exc)  # always name the source: not every converter message does
        raise CheckpointError(message if args.src in message else f"{args.src}: {message}") from None
    for note in notes:
        print(f"note: {note}")
    save_checkpoint({"model": state, "config": cfg.to_dict(), "converted_from": args.source_format}, args.dst)
    print(f"converted {len(state)} entries ({cfg.model.name}, {cfg.model.num_classes} classes) from {args.src} "
          f"to {args.dst}")


if __name__ == "__main__":
    run(main)
