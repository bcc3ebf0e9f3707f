"""Colour the segmentation of an image: python tools/demo.py img.png [--config ... --weights ...]"""
import os

from bisenet.cli import config_parser, default_weights, load_config_or_exit, user_errors
from bisenet.demo import segment_image_file


def main():
    parser = config_parser(__doc__, positionals=[("image", "input image")])
    parser.add_argument("--weights", help="checkpoint (default: <train.output_dir>/model_final.pth)")
    parser.add_argument("--out-dir", default="output/demo", help="where to write the results (default: %(default)s)")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    args = parser.parse_intermixed_args()
    cfg = load_config_or_exit(args)
    with user_errors():
        for path in segment_image_file(cfg, default_weights(cfg, args.weights), args.image, args.out_dir, args.device):
            print(f"wrote {os.path.normpath(path)}")


if __name__ == "__main__":
    main()
