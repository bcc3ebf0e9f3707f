"""BiSeNetV1 (Yu et al., ECCV 2018) with a ResNet-18 context path.

Module names and shapes match the widely used reference implementation (CoinCheung/BiSeNet),
so its checkpoints load with ``strict=True``. Unlike it, every resize targets the size of the
feature it is fused with, so any input size works, not only multiples of 32; for multiples of
32 the result is identical.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from bisenet.models.layers import ConvBNReLU, SegmentationHead
from bisenet.models.resnet import ResNet18


def channel_attention(feat, conv, bn):
    """``feat`` weighed per channel by sigmoid(bn(conv(global average of feat)))."""
    return feat * torch.sigmoid(bn(conv(torch.mean(feat, dim=(2, 3), keepdim=True))))


def attended_conv(in_channels, out_channels, kernel_size):
    """A conv block and the 1x1 conv + BN of its channel attention."""
    return (ConvBNReLU(in_channels, out_channels, kernel_size), nn.Conv2d(out_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels))


class AttentionRefinementModule(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv, self.conv_atten, self.bn_atten = attended_conv(in_channels, out_channels, 3)

    def forward(self, x):
        return channel_attention(self.conv(x), self.conv_atten, self.bn_atten)


class ContextPath(nn.Module):
    """ResNet-18 with attention refinement; returns 128-channel features at 1/8 and 1/16."""

    def __init__(self):
        super().__init__()
        self.resnet = ResNet18()
        self.arm16 = AttentionRefinementModule(256, 128)
        self.arm32 = AttentionRefinementModule(512, 128)
        self.conv_head32 = ConvBNReLU(128, 128, 3)
        self.conv_head16 = ConvBNReLU(128, 128, 3)
        self.conv_avg = ConvBNReLU(512, 128, 1)

    def forward(self, x):
        feat8, feat16, feat32 = self.resnet(x)
        global_context = self.conv_avg(torch.mean(feat32, dim=(2, 3), keepdim=True))
        feat32 = self.arm32(feat32) + global_context
        feat32_up = self.conv_head32(F.interpolate(feat32, size=feat16.shape[-2:], mode="nearest"))
        feat16 = self.arm16(feat16) + feat32_up
        feat16_up = self.conv_head16(F.interpolate(feat16, size=feat8.shape[-2:], mode="nearest"))
        return feat16_up, feat32_up  # strides 8 and 16


class SpatialPath(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = ConvBNReLU(3, 64, 7, stride=2)
        self.conv2 = ConvBNReLU(64, 64, 3, stride=2)
        self.conv3 = ConvBNReLU(64, 64, 3, stride=2)
        self.conv_out = ConvBNReLU(64, 128, 1)

    def forward(self, x):
        return self.conv_out(self.conv3(self.conv2(self.conv1(x))))


class FeatureFusionModule(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.convblk, self.conv, self.bn = attended_conv(in_channels, out_channels, 1)

    def forward(self, spatial, context):
        feat = self.convblk(torch.cat([spatial, context], dim=1))
        return channel_attention(feat, self.conv, self.bn) + feat


class BiSeNetV1(nn.Module):
    """In training mode returns ``(main, aux8, aux16)`` logits, in eval mode the main logits;
    all at the input size."""

    # Modules trained with the head learning-rate multiplier (see bisenet.optim).
    head_modules = ("ffm", "conv_out", "conv_out16", "conv_out32")
    aux_head_modules = ("conv_out16", "conv_out32")
    # What ImageNet-pretrained weights start (model.backbone_weights, loaded by bisenet.weights):
    # torchvision's ResNet-18.
    backbone_modules = ("cp.resnet",)
    # The classifier's weight, whose first dimension is the class count: it tells a checkpoint's
    # architecture (bisenet.models.architecture_of).
    classifier_weight = "conv_out.conv_out.weight"

    def __init__(self, num_classes=19):
        super().__init__()
        self.num_classes = num_classes
        self.cp = ContextPath()
        self.sp = SpatialPath()
        self.ffm = FeatureFusionModule(256, 256)
        self.conv_out = SegmentationHead(256, 256, num_classes)
        # The reference's names: conv_out16 reads the stride-8 context, conv_out32 the stride-16.
        self.conv_out16 = SegmentationHead(128, 64, num_classes)
        self.conv_out32 = SegmentationHead(128, 64, num_classes)
        self._init_weights()

    def _init_weights(self):
        for name, module in self.named_modules():
            if name.startswith("cp.resnet"):
                continue  # torchvision's init, or ImageNet weights
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, a=1)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x):
        size = x.shape[-2:]
        context8, context16 = self.cp(x)
        fused = self.ffm(self.sp(x), context8)
        logits = self.conv_out(fused, size)
        if self.training:
            return logits, self.conv_out16(context8, size), self.conv_out32(context16, size)
        return logits
