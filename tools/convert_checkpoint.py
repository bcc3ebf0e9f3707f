"""Convert another implementation's checkpoint: python tools/convert_checkpoint.py --from coincheung SRC DST"""
import argparse
import sys

from bisenet.checkpoint import CONVERTERS, CheckpointError, read_state_dict, save_checkpoint
from bisenet.config import load_config
from bisenet.models import build_model


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--from", dest="source_format", required=True, choices=sorted(CONVERTERS))
    parser.add_argument("--config", default="configs/bisenetv1_city.py", help="config of the target model")
    parser.add_argument("src", help="checkpoint to convert")
    parser.add_argument("dst", help="where to write the converted checkpoint")
    args = parser.parse_args()
    cfg = load_config(args.config)
    model = build_model(cfg)
    try:
        state, notes = CONVERTERS[args.source_format](read_state_dict(args.src), model)
    except (CheckpointError, FileNotFoundError) as exc:
        sys.exit(f"error: {args.src}: {exc}")  # names the source: the converter's messages do not
    for note in notes:
        print(f"note: {note}")
    save_checkpoint({"model": state, "config": cfg.to_dict(), "converted_from": args.source_format}, args.dst)
    print(f"converted {len(state)} entries from {args.src} to {args.dst}")


if __name__ == "__main__":
    main()
