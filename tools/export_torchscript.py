"""Export a TorchScript module (logits, BatchNorm folded) for libtorch.

  python tools/export_torchscript.py --config configs/bisenetv1_city.py --weights W.pth --out model.pt

In C++: auto module = torch::jit::load("model.pt"); auto logits = module.forward({image}).toTensor();
with image a normalised 1x3xHxW float tensor (any H and W).

The module is reloaded from its bytes and run on a random image of another size than --size; the
tool fails, and writes nothing, if its largest logit difference from PyTorch, relative to the
largest logit, is above --tolerance (default: 8 times what that fp32 evaluation rounds off,
measured against the model in float64). --out is written only once the module has passed.
"""
from bisenet import commands
from bisenet.cli import export_parser, non_negative_float, parse_args, run, tool_command, tool_config


def main(argv=None):
    parser = export_parser(__doc__, "the .pt file to write", (512, 1024), "traced at it, the module takes any size")
    parser.add_argument("--tolerance", type=non_negative_float, default=None,
                        help="largest allowed logit difference from PyTorch, relative to the largest logit (default: "
                             "8 times what one fp32 evaluation rounds off, measured against float64)")
    args = parse_args(parser, argv)
    commands.export_torchscript(tool_config(args), args.weights, args.out, tuple(args.size), args.tolerance,
                                tool_command(__file__, args))


if __name__ == "__main__":
    run(main)
