"""ResNet-18 feature extractor for the context path, with torchvision's parameter names."""
from torchvision.models.resnet import BasicBlock, ResNet


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
