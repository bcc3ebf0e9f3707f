"""bisenet.models.layers: the shared blocks."""
import torch

from bisenet.models.layers import ConvBNReLU, SegmentationHead


def test_conv_bn_relu_keeps_the_size_and_the_reference_names():
    block = ConvBNReLU(3, 8, 3)
    assert list(dict(block.named_children())) == ["conv", "bn", "relu"]
    assert block(torch.randn(2, 3, 9, 11)).shape == (2, 8, 9, 11)
    assert ConvBNReLU(3, 8, 3, stride=2)(torch.randn(2, 3, 9, 11)).shape == (2, 8, 5, 6)
    assert (block(torch.randn(2, 3, 9, 11)) >= 0).all()


def test_segmentation_head_predicts_at_the_requested_size():
    head = SegmentationHead(16, 8, 5).eval()
    with torch.no_grad():
        assert head(torch.randn(1, 16, 4, 6), (37, 53)).shape == (1, 5, 37, 53)
