"""Colour the segmentation of an image, a folder of images, a video or a camera.

  python tools/demo.py img.png [--config ... --weights ...] [--out-dir DIR] [--fast | --precision int8]
  python tools/demo.py folder/ | video.mp4 | 0 (camera index)
  python tools/demo.py img.png --weights coincheung/bisenetv1_city   (published weights by name)
"""
import os

from bisenet.cli import device_of, inference_parser, parse_args, resolve_weights, run, runtime_of, tool_config
from bisenet.demo import Segmenter, run_demo


def main(argv=None):
    parser = inference_parser(__doc__,
                              positionals=[("source", "an image, a folder of images, a video file or a camera index")])
    parser.add_argument("--out-dir", default="output/demo", help="folder for the results (default: %(default)s)")
    args = parse_args(parser, argv)
    cfg = tool_config(args)
    segmenter = Segmenter(cfg, resolve_weights(cfg, args.weights), device_of(args), **runtime_of(args))
    for path in run_demo(segmenter, args.source, args.out_dir):
        print(f"wrote {os.path.normpath(path)}")


if __name__ == "__main__":
    run(main)
