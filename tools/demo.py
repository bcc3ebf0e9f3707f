"""Colour the segmentation of an image, a folder of images, a video or a camera.

  python tools/demo.py img.png [--config ... --weights ...] [--out-dir DIR] [--fast]
  python tools/demo.py folder/ | video.mp4 | 0 (camera index)
"""
import os

from bisenet.cli import config_parser, default_weights, load_config_or_exit, user_errors
from bisenet.demo import Segmenter, run_demo


def main():
    parser = config_parser(__doc__, positionals=[("source", "an image, a folder of images, a video file or a camera index")])
    parser.add_argument("--weights", help="checkpoint (default: <train.output_dir>/model_final.pth)")
    parser.add_argument("--out-dir", default="output/demo", help="where to write the results (default: %(default)s)")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    parser.add_argument("--fast", action="store_true",
                        help="deployment mode: folded BN, channels-last, bf16 (CPU with AVX-512 BF16) or fp16 (CUDA)")
    args = parser.parse_intermixed_args()
    cfg = load_config_or_exit(args)
    with user_errors():
        segmenter = Segmenter(cfg, default_weights(cfg, args.weights), args.device, fast=args.fast)
        for path in run_demo(segmenter, args.source, args.out_dir):
            print(f"wrote {os.path.normpath(path)}")


if __name__ == "__main__":
    main()
