"""Colour the segmentation of an image, a folder of images, a video or a camera.

  python tools/demo.py img.png [--config ... --weights ...] [--out-dir DIR] [--fast | --precision int8]
  python tools/demo.py folder/ | video.mp4 | 0 (camera index)
  python tools/demo.py img.png --weights coincheung/bisenetv1_city   (published weights by name)

Writes into --out-dir, for each image, <name>_color.png (the classes in the palette's colours) and
<name>_overlay.png (them blended over the image), and for a video or a camera <name>_color.mp4 and
<name>_overlay.mp4 (camera0_... for camera 0).
"""
from bisenet import commands
from bisenet.cli import inference_parser, parse_args, run, runtime_of, tool_command, tool_config


def main(argv=None):
    parser = inference_parser(__doc__,
                              positionals=[("source", "an image, a folder of images, a video file or a camera index")],
                              overrides_example="eval.protocol=standard eval.short_side=512")
    parser.add_argument("--out-dir", default="output/demo",
                        help="folder for the results: <name>_color.png and <name>_overlay.png per image, "
                             "<name>_color.mp4 and <name>_overlay.mp4 for a video (default: %(default)s)")
    args = parse_args(parser, argv)
    commands.demo(tool_config(args), args.weights, args.source, args.out_dir, args.device, runtime_of(args),
                  tool_command(__file__, args))


if __name__ == "__main__":
    run(main)
