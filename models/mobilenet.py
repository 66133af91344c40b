"""MobileNets built from depthwise separable convolutions.

``mobilenet_v1``: Howard et al., "MobileNets: Efficient Convolutional Neural Networks for
Mobile Vision Applications", 2017, built as Keras' ``keras.applications.MobileNet``
(depth multiplier 1, layer names ``conv1``, ``conv_dw_1``, ``conv_pw_1``, ...). Width
multiplier ``alpha`` scales every layer's channels (int(channels * alpha)). Strided convs
pad only the bottom/right row and column, as Keras' ZeroPadding2D(((0, 1), (0, 1))), and
BatchNorm uses Keras' epsilon 1e-3 and momentum 0.99.
Native input 3x224x224. Parameters at alpha 1.0: 4,253,864 as Keras counts them, which
includes the BN moving mean and variance: ``parameters()`` (4,231,976) plus BN buffers (21,888).
Multiply-adds at 224x224: 569 M, as the paper's Table 8.

``mobilenet_v2``: Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks",
CVPR 2018, built as torchvision's ``mobilenet_v2``: inverted residual blocks (1x1 expand,
ReLU6, 3x3 depthwise, ReLU6, 1x1 linear projection), residual when stride 1 and the width
is kept, ``width_mult`` scaling channels to multiples of 8. Native input 3x224x224.
Parameters at width 1.0: 3,504,872 as torchvision counts them (BN running statistics excluded).
Multiply-adds at 224x224: 301 M (the paper's Table 4: 300 M).

    >>> import tinycnn.models as models
    >>> net = models.get("mobilenet_v2", num_classes=10)
    >>> net.features[1].conv[0][0]
    Conv2d(32, 32, kernel_size=(3, 3), stride=1, padding=1, groups=32, bias=False)
"""
from collections import OrderedDict

import tinycnn.nn as nn

from .registry import register
from .xception import init_keras_weights, keras_batch_norm


def conv_bn_relu6(in_channels, out_channels, kernel_size, stride=1, groups=1):
    """Conv (no bias, padding (k-1)/2) - BN - ReLU6, torchvision's Conv2dNormActivation."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2,
                  groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU6(),
    )


# ----- MobileNet v1 (Keras) ----------------------------------------------------------

# (pointwise output channels, stride of the depthwise conv), blocks 1..13
MOBILENET_V1_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                       (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


def keras_conv_bn_relu6(prefix, in_channels, out_channels, kernel_size, stride, groups=1):
    """Keras-named [pad] - conv - BN - ReLU6 layers; stride 2 pads bottom/right by one then uses "valid"."""
    layers = []
    if stride == 2:
        layers.append((f"{prefix}_pad", nn.ZeroPad2d((0, 1, 0, 1))))     # left, right, top, bottom
    padding = 0 if stride == 2 else (kernel_size - 1) // 2
    layers += [
        (prefix, nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                           groups=groups, bias=False)),
        (f"{prefix}_bn", keras_batch_norm(out_channels)),
        (f"{prefix}_relu", nn.ReLU6()),
    ]
    return layers


class MobileNetV1(nn.Module):
    """Keras MobileNet: ``features`` (conv1 + 13 depthwise separable blocks), pool, dropout, ``conv_preds``.

    Keras' classifier is a 1x1 conv with bias on the pooled (N, C, 1, 1) map; here it is the
    equivalent Linear layer (same weights, same count).
    """

    def __init__(self, num_classes=1000, alpha=1.0, dropout=1e-3):
        super().__init__()
        if alpha <= 0:
            raise ValueError(f"MobileNetV1: alpha must be positive, got {alpha}")
        channels = int(32 * alpha)
        layers = keras_conv_bn_relu6("conv1", 3, channels, 3, stride=2)
        for block_id, (pointwise, stride) in enumerate(MOBILENET_V1_BLOCKS, start=1):
            out_channels = int(pointwise * alpha)
            layers += keras_conv_bn_relu6(f"conv_dw_{block_id}", channels, channels, 3, stride, groups=channels)
            layers += keras_conv_bn_relu6(f"conv_pw_{block_id}", channels, out_channels, 1, stride=1)
            channels = out_channels
        self.features = nn.Sequential(OrderedDict(layers))
        self.global_average_pooling = nn.GlobalAvgPool2d()
        self.dropout = nn.Dropout(dropout)
        self.conv_preds = nn.Linear(channels, num_classes)
        self.input_shape = (3, 224, 224)
        init_keras_weights(self)

    def forward(self, x):
        return self.conv_preds(self.dropout(self.global_average_pooling(self.features(x))))


# ----- MobileNet v2 (torchvision) ------------------------------------------------------

# expansion t, output channels c, repeats n, first stride s (the paper's Table 2)
MOBILENET_V2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                         (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def make_divisible(value, divisor=8):
    """Round ``value`` to the nearest multiple of ``divisor``, never going below 90% of it (torchvision's rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class InvertedResidual(nn.Module):
    """1x1 expand (t x) - ReLU6 - 3x3 depthwise - ReLU6 - 1x1 linear projection, + x when shapes allow."""

    def __init__(self, in_channels, out_channels, stride, expand_ratio):
        super().__init__()
        hidden = int(round(in_channels * expand_ratio))
        self.use_residual = stride == 1 and in_channels == out_channels
        layers = [conv_bn_relu6(in_channels, hidden, 1)] if expand_ratio != 1 else []
        layers += [conv_bn_relu6(hidden, hidden, 3, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, out_channels, 1, bias=False),
                   nn.BatchNorm2d(out_channels)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision's MobileNetV2: ``features`` (stem, 17 inverted residuals, 1x1 to 1280), pool, ``classifier``."""

    def __init__(self, num_classes=1000, width_mult=1.0, dropout=0.2):
        super().__init__()
        if width_mult <= 0:
            raise ValueError(f"MobileNetV2: width_mult must be positive, got {width_mult}")
        channels = make_divisible(32 * width_mult)
        last_channels = make_divisible(1280 * max(1.0, width_mult))
        layers = [conv_bn_relu6(3, channels, 3, stride=2)]
        for expand_ratio, c, repeats, first_stride in MOBILENET_V2_SETTINGS:
            out_channels = make_divisible(c * width_mult)
            for i in range(repeats):
                layers.append(InvertedResidual(channels, out_channels, first_stride if i == 0 else 1, expand_ratio))
                channels = out_channels
        layers.append(conv_bn_relu6(channels, last_channels, 1))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.GlobalAvgPool2d()
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last_channels, num_classes))
        self.input_shape = (3, 224, 224)
        self._init_weights()

    def _init_weights(self):
        """As torchvision: He-normal (fan_out) convs, BN 1/0, Linear N(0, 0.01) and bias 0."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)))


@register("mobilenet_v1")
def mobilenet_v1(num_classes=1000, **options):
    """MobileNet v1 (Keras), 3x224x224; alpha 1.0: 4,253,864 parameters (BN moving statistics included)."""
    return MobileNetV1(num_classes, **options)


@register("mobilenet_v2")
def mobilenet_v2(num_classes=1000, **options):
    """MobileNet v2 (torchvision), 3x224x224; width 1.0: 3,504,872 parameters. Option: width_mult."""
    return MobileNetV2(num_classes, **options)
