"""Export a TorchScript module (logits, BatchNorm folded) for libtorch.

  python tools/export_torchscript.py --config configs/bisenetv1_city.py --weights W.pth --out model.pt

In C++: auto module = torch::jit::load("model.pt"); auto logits = module.forward({image}).toTensor();
with image a normalised 1x3xHxW float tensor (any H and W).
"""
import io

import torch

from bisenet.cli import export_parser, parse_args, resolve_weights, run, tool_command, tool_config
from bisenet.deploy.export import export_torchscript
from bisenet.inference import load_model
from bisenet.outputs import check_output_file, write_bytes


def main(argv=None):
    parser = export_parser(__doc__, "the .pt file to write", (512, 1024), "traced at it, the module takes any size")
    args = parse_args(parser, argv)
    cfg = tool_config(args)
    check_output_file(args.out, "--out")
    buffer = io.BytesIO()
    model = load_model(cfg, resolve_weights(cfg, args.weights, tool_command(__file__, args)))
    traced = export_torchscript(model, buffer, tuple(args.size))
    check = torch.randn(1, 3, args.size[0] + 7, args.size[1] + 5)
    with torch.no_grad():
        difference = float((torch.jit.load(io.BytesIO(buffer.getvalue()))(check) - traced(check)).abs().max())
    write_bytes(args.out, buffer.getvalue())
    print(f"wrote {args.out}; reloaded module vs trace at another size: largest difference {difference:.3g}")


if __name__ == "__main__":
    run(main)
