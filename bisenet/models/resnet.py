"""ResNet-18 feature extractor for the context path, with torchvision's parameter names."""
import os

from torchvision.models.resnet import BasicBlock, ResNet

from bisenet.checkpoint import CheckpointError, compare_state_dicts, format_mismatch, read_torch_file
from bisenet.errors import MissingFileError
from bisenet.weights import hub_checkpoint_path

TORCHVISION_HINT = (
    "Get the ImageNet ResNet-18 weights on a machine with internet access, e.g.\n"
    "  python -c \"import torchvision; torchvision.models.resnet18(weights='IMAGENET1K_V1')\"\n"
    "which stores resnet18-f37072fd.pth in torch's hub cache ($TORCH_HOME/hub/checkpoints, default "
    "~/.cache/torch/hub/checkpoints); copy it there on this machine or pass its path as "
    "model.backbone_weights=/path/to/resnet18-f37072fd.pth"
)


class ResNet18(ResNet):
    """torchvision's ResNet-18 without its pooling and classifier, returning the features at
    strides 8, 16 and 32 (128, 256 and 512 channels). The parameter names are torchvision's, which
    the reference implementation's checkpoints use too."""

    def __init__(self):
        super().__init__(BasicBlock, [2, 2, 2, 2])
        del self.avgpool, self.fc

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        feat8 = self.layer2(self.layer1(x))
        feat16 = self.layer3(feat8)
        feat32 = self.layer4(feat16)
        return feat8, feat16, feat32

    def load_imagenet_weights(self, source):
        """Load torchvision's ImageNet weights from ``source``: a file path or "imagenet".

        "imagenet" resolves through torchvision's weights API to its hub cache and never
        downloads: building a model must work offline and must not hang on a network call.
        """
        if source == "imagenet":
            from torchvision.models import ResNet18_Weights

            path = hub_checkpoint_path(os.path.basename(ResNet18_Weights.IMAGENET1K_V1.url))
        else:
            path = os.path.expanduser(source)
        if not os.path.isfile(path):
            raise MissingFileError(f"ImageNet backbone weights not found at {path}.\n{TORCHVISION_HINT}")
        state = read_torch_file(path)
        if not isinstance(state, dict):
            raise CheckpointError(f"{path} is not a torchvision ResNet-18 state dict")
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        report = format_mismatch(*compare_state_dicts(self.state_dict(), state))
        if report:
            raise CheckpointError(f"{path} is not a torchvision ResNet-18 state dict:\n{report}")
        self.load_state_dict(state, strict=True)
