"""Export a TorchScript module (logits, BatchNorm folded) for libtorch.

  python tools/export_torchscript.py --config configs/bisenetv1_city.py --weights W.pth --out model.pt

In C++: auto module = torch::jit::load("model.pt"); auto logits = module.forward({image}).toTensor();
with image a normalised 1x3xHxW float tensor (any H and W).
"""
import torch

from bisenet.cli import add_weights_option, config_parser, parse_args, positive_int, resolve_weights, run, tool_config
from bisenet.deploy.export import export_torchscript
from bisenet.inference import load_model


def main(argv=None):
    parser = config_parser(__doc__)
    add_weights_option(parser)
    parser.add_argument("--out", required=True, metavar="FILE", help="the .pt file to write")
    parser.add_argument("--size", type=positive_int, nargs=2, default=(512, 1024), metavar=("H", "W"),
                        help="example size for tracing (default: %(default)s; the module accepts any size)")
    args = parse_args(parser, argv)
    cfg = tool_config(args)
    traced = export_torchscript(load_model(cfg, resolve_weights(cfg, args.weights)), args.out, tuple(args.size))
    check = torch.randn(1, 3, args.size[0] + 7, args.size[1] + 5)
    with torch.no_grad():
        difference = float((torch.jit.load(args.out)(check) - traced(check)).abs().max())
    print(f"wrote {args.out}; reloaded module vs trace at another size: largest difference {difference:.3g}")


if __name__ == "__main__":
    run(main)
