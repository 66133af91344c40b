"""ResNeXt: Xie, Girshick, Dollar, Tu, He, "Aggregated Residual Transformations for Deep
Neural Networks", CVPR 2017.

A ResNet-50 whose bottleneck 3x3 convolution is split into 32 groups of width 4 at the first
stage ("32x4d"; widths 128, 256, 512, 1024 by stage), with the stride on the grouped 3x3 as
in the paper's Torch code and torchvision. Native input 3x224x224. Parameters: 25,028,904,
as torchvision's resnext50_32x4d (BN running statistics excluded).

    >>> import tinycnn.models as models
    >>> net = models.get("resnext50_32x4d", num_classes=10)
    >>> net.layer1[0].conv2
    Conv2d(128, 128, kernel_size=(3, 3), stride=1, padding=1, groups=32, bias=False)
"""
from .registry import register
from .resnet import Bottleneck, ResNet


@register("resnext50_32x4d")
def resnext50_32x4d(num_classes=1000, **options):
    """ResNeXt-50 (32x4d), 3x224x224; torchvision resnext50_32x4d: 25,028,904 parameters."""
    options = {"groups": 32, "base_width": 4, "stride_on": "3x3", **options}
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes, **options)
