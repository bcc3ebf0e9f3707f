"""ResNet-18 feature extractor for the context path, with torchvision's parameter names."""
import os

import torch.nn as nn

from bisenet.checkpoint import CheckpointError, compare_state_dicts, format_mismatch, read_torch_file
from bisenet.weights import hub_checkpoint_path

TORCHVISION_HINT = (
    "Get the ImageNet ResNet-18 weights on a machine with internet access, e.g.\n"
    "  python -c \"import torchvision; torchvision.models.resnet18(weights='IMAGENET1K_V1')\"\n"
    "which stores resnet18-f37072fd.pth in torch's hub cache ($TORCH_HOME/hub/checkpoints, default "
    "~/.cache/torch/hub/checkpoints); copy it there on this machine or pass its path as "
    "model.backbone_weights=/path/to/resnet18-f37072fd.pth"
)


class BasicBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class ResNet18(nn.Module):
    """Returns the features at strides 8, 16 and 32 (128, 256 and 512 channels)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(64, 64, 1)
        self.layer2 = self._make_layer(64, 128, 2)
        self.layer3 = self._make_layer(128, 256, 2)
        self.layer4 = self._make_layer(256, 512, 2)

    @staticmethod
    def _make_layer(in_channels, out_channels, stride):
        return nn.Sequential(BasicBlock(in_channels, out_channels, stride), BasicBlock(out_channels, out_channels))

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
            raise FileNotFoundError(f"ImageNet backbone weights not found at {path}.\n{TORCHVISION_HINT}")
        state = read_torch_file(path)
        if not isinstance(state, dict):
            raise CheckpointError(f"{path} is not a torchvision ResNet-18 state dict")
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        report = format_mismatch(*compare_state_dicts(self.state_dict(), state))
        if report:
            raise CheckpointError(f"{path} is not a torchvision ResNet-18 state dict:\n{report}")
        self.load_state_dict(state, strict=True)
