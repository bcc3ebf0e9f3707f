"""Export a TorchScript module (logits, BatchNorm folded) for libtorch.

  python tools/export_torchscript.py --config configs/bisenetv1_city.py --weights W.pth --out model.pt

In C++: auto module = torch::jit::load("model.pt"); auto logits = module.forward({image}).toTensor();
with image a normalised 1x3xHxW float tensor (any H and W).
"""
import torch

from bisenet.cli import config_parser, load_config_or_exit, positive_int, trained_model
from bisenet.export import export_torchscript


def main():
    parser = config_parser(__doc__)
    parser.add_argument("--weights", help="checkpoint (default: <train.output_dir>/model_final.pth)")
    parser.add_argument("--out", required=True, help="the .pt file to write")
    parser.add_argument("--size", type=positive_int, nargs=2, default=(512, 1024), metavar=("H", "W"),
                        help="example size for tracing (the module accepts any size)")
    args = parser.parse_intermixed_args()
    cfg = load_config_or_exit(args)
    model = trained_model(cfg, args.weights)
    traced = export_torchscript(model, args.out, tuple(args.size))
    check = torch.randn(1, 3, args.size[0] + 7, args.size[1] + 5)
    with torch.no_grad():
        difference = float((torch.jit.load(args.out)(check) - traced(check)).abs().max())
    print(f"wrote {args.out}; reloaded module vs trace at another size: largest difference {difference:.3g}")


if __name__ == "__main__":
    main()
