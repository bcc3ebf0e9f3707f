"""Building blocks shared by the BiSeNet models.

Attribute names (``conv``, ``bn``, ``conv_out``) follow the reference implementation so its
checkpoints load without renaming.
"""
import torch.nn as nn
import torch.nn.functional as F


class ConvBNReLU(nn.Sequential):
    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=None):
        if padding is None:
            padding = kernel_size // 2
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)


class SegmentationHead(nn.Module):
    """3x3 conv-BN-ReLU, 1x1 classifier, bilinear upsampling to the requested size."""

    def __init__(self, in_channels, mid_channels, num_classes):
        super().__init__()
        self.conv = ConvBNReLU(in_channels, mid_channels, 3)
        self.conv_out = nn.Conv2d(mid_channels, num_classes, 1, bias=True)

    def forward(self, x, size):
        x = self.conv_out(self.conv(x))
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
