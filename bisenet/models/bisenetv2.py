"""BiSeNetV2 (Yu et al., IJCV 2021): detail branch, semantic branch, bilateral guided aggregation.

Module names, shapes and initialisation follow the reference implementation (CoinCheung/BiSeNet),
so its checkpoints load with ``strict=True``. Its fixed-factor upsamplings become resizes to
the size of the feature they meet (identical for inputs divisible by 32), so any input size
works.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from bisenet.models.layers import ConvBNReLU


def _dw_bn(channels, out_channels=None, stride=1, relu=False, project=False):
    """Depthwise 3x3 conv + BN (+ ReLU) (+ 1x1 projection): the reference's Sequential layout."""
    layers = [nn.Conv2d(channels, out_channels or channels, 3, stride, 1, groups=channels, bias=False),
              nn.BatchNorm2d(out_channels or channels)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    if project:
        layers.append(nn.Conv2d(channels, channels, 1, bias=False))
    return nn.Sequential(*layers)


class DetailBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.S1 = nn.Sequential(ConvBNReLU(3, 64, 3, stride=2), ConvBNReLU(64, 64, 3))
        self.S2 = nn.Sequential(ConvBNReLU(64, 64, 3, stride=2), ConvBNReLU(64, 64, 3), ConvBNReLU(64, 64, 3))
        self.S3 = nn.Sequential(ConvBNReLU(64, 128, 3, stride=2), ConvBNReLU(128, 128, 3), ConvBNReLU(128, 128, 3))

    def forward(self, x):
        return self.S3(self.S2(self.S1(x)))


class StemBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = ConvBNReLU(3, 16, 3, stride=2)
        self.left = nn.Sequential(ConvBNReLU(16, 8, 1), ConvBNReLU(8, 16, 3, stride=2))
        self.right = nn.MaxPool2d(3, 2, 1)
        self.fuse = ConvBNReLU(32, 16, 3)

    def forward(self, x):
        feat = self.conv(x)
        return self.fuse(torch.cat([self.left(feat), self.right(feat)], dim=1))


class ContextEmbedding(nn.Module):
    def __init__(self, channels=128):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.conv_gap = ConvBNReLU(channels, channels, 1)
        self.conv_last = ConvBNReLU(channels, channels, 3)

    def forward(self, x):
        context = self.conv_gap(self.bn(torch.mean(x, dim=(2, 3), keepdim=True)))
        return self.conv_last(context + x)


class GatherExpand(nn.Module):
    """Gather-and-expand layer; ``stride=2`` halves the size and adds a depthwise shortcut."""

    def __init__(self, in_channels, out_channels, stride=1, expansion=6):
        super().__init__()
        mid = in_channels * expansion
        self.stride = stride
        self.conv1 = ConvBNReLU(in_channels, in_channels, 3)
        if stride == 1:
            self.dwconv = _dw_bn(in_channels, mid, relu=True)
        else:
            self.dwconv1 = _dw_bn(in_channels, mid, stride=2)
            self.dwconv2 = nn.Sequential(nn.Conv2d(mid, mid, 3, 1, 1, groups=mid, bias=False), nn.BatchNorm2d(mid),
                                         nn.ReLU(inplace=True))
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, in_channels, 3, 2, 1, groups=in_channels, bias=False),
                nn.BatchNorm2d(in_channels),
                nn.Conv2d(in_channels, out_channels, 1, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.conv2 = nn.Sequential(nn.Conv2d(mid, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
        self.conv2[1].last_bn = True  # initialised to zero: each block starts as its shortcut
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        feat = self.conv1(x)
        if self.stride == 1:
            return self.relu(self.conv2(self.dwconv(feat)) + x)
        return self.relu(self.conv2(self.dwconv2(self.dwconv1(feat))) + self.shortcut(x))


class SemanticBranch(nn.Module):
    """Returns the features at strides 4, 8, 16, 32 and the context-embedded stride-32 one."""

    def __init__(self):
        super().__init__()
        self.S1S2 = StemBlock()
        self.S3 = nn.Sequential(GatherExpand(16, 32, stride=2), GatherExpand(32, 32))
        self.S4 = nn.Sequential(GatherExpand(32, 64, stride=2), GatherExpand(64, 64))
        self.S5_4 = nn.Sequential(GatherExpand(64, 128, stride=2), GatherExpand(128, 128), GatherExpand(128, 128),
                                  GatherExpand(128, 128))
        self.S5_5 = ContextEmbedding(128)

    def forward(self, x):
        feat2 = self.S1S2(x)
        feat3 = self.S3(feat2)
        feat4 = self.S4(feat3)
        feat5_4 = self.S5_4(feat4)
        return feat2, feat3, feat4, feat5_4, self.S5_5(feat5_4)


class BilateralGuidedAggregation(nn.Module):
    def __init__(self, channels=128):
        super().__init__()
        self.left1 = _dw_bn(channels, project=True)
        self.left2 = nn.Sequential(nn.Conv2d(channels, channels, 3, 2, 1, bias=False), nn.BatchNorm2d(channels),
                                   nn.AvgPool2d(3, 2, 1))
        self.right1 = nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels))
        self.right2 = _dw_bn(channels, project=True)
        self.conv = nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels),
                                  nn.ReLU(inplace=True))

    def forward(self, detail, semantic):
        size = detail.shape[-2:]
        right1 = F.interpolate(self.right1(semantic), size=size, mode="nearest")
        left = self.left1(detail) * torch.sigmoid(right1)
        right = self.left2(detail) * torch.sigmoid(self.right2(semantic))
        return self.conv(left + F.interpolate(right, size=size, mode="nearest"))


class SegmentHead(nn.Module):
    """3x3 conv-BN-ReLU to ``mid_channels``, dropout, (auxiliary: nearest 2x and a 3x3 conv to
    ``up_factor**2`` channels), 1x1 classifier, bilinear resize to the input size."""

    def __init__(self, in_channels, mid_channels, num_classes, up_factor=8, aux=True):
        super().__init__()
        self.conv = ConvBNReLU(in_channels, mid_channels, 3)
        self.drop = nn.Dropout(0.1)
        out_mid = up_factor * up_factor if aux else mid_channels
        self.conv_out = nn.Sequential(
            nn.Sequential(nn.Upsample(scale_factor=2), ConvBNReLU(mid_channels, out_mid, 3)) if aux else nn.Identity(),
            nn.Conv2d(out_mid, num_classes, 1, bias=True),
        )

    def forward(self, x, size):
        logits = self.conv_out(self.drop(self.conv(x)))
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


class BiSeNetV2(nn.Module):
    """In training mode returns ``(main, aux4, aux8, aux16, aux32)`` logits, in eval mode the
    main logits; all at the input size."""

    # 10x LR, as the reference's get_params does for every child named *head* or *aux*.
    head_modules = ("head", "aux2", "aux3", "aux4", "aux5_4")
    aux_head_modules = ("aux2", "aux3", "aux4", "aux5_4")
    # What ImageNet-pretrained weights start (model.backbone_weights, loaded by bisenet.weights):
    # the reference's backbone_v2.pth holds these two branches.
    backbone_modules = ("detail", "segment")
    # The classifier's weight, whose first dimension is the class count (see BiSeNetV1).
    classifier_weight = "head.conv_out.1.weight"

    def __init__(self, num_classes=19):
        super().__init__()
        self.num_classes = num_classes
        self.detail = DetailBranch()
        self.segment = SemanticBranch()
        self.bga = BilateralGuidedAggregation(128)
        self.head = SegmentHead(128, 1024, num_classes, up_factor=8, aux=False)
        self.aux2 = SegmentHead(16, 128, num_classes, up_factor=4)
        self.aux3 = SegmentHead(32, 128, num_classes, up_factor=8)
        self.aux4 = SegmentHead(64, 128, num_classes, up_factor=16)
        self.aux5_4 = SegmentHead(128, 128, num_classes, up_factor=32)
        self._init_weights()

    def _init_weights(self):
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                (nn.init.zeros_ if getattr(module, "last_bn", False) else nn.init.ones_)(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x):
        size = x.shape[-2:]
        feat2, feat3, feat4, feat5_4, semantic = self.segment(x)
        logits = self.head(self.bga(self.detail(x), semantic), size)
        if self.training:
            return (logits, self.aux2(feat2, size), self.aux3(feat3, size), self.aux4(feat4, size),
                    self.aux5_4(feat5_4, size))
        return logits
