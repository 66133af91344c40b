"""Xception: Chollet, "Xception: Deep Learning with Depthwise Separable Convolutions", CVPR 2017.

Built as Keras' ``keras.applications.Xception`` (layer names follow it: ``block1_conv1``,
``block2_sepconv1``, ...). Entry flow: two plain convs, then three blocks of separable convs
ending in a 3x3/2 max pool, each with a 1x1/2 conv + BN shortcut (128, 256, 728 channels).
Middle flow: eight residual blocks of three ReLU-separable conv-BN (728 channels). Exit flow:
one more downsampling block (728 -> 1024), two separable convs (1536, 2048), global average
pool, fc. A separable conv is a depthwise 3x3 conv (groups = channels) then a pointwise 1x1
conv, both without bias, as Keras' SeparableConv2D. BatchNorm uses Keras' epsilon (1e-3) and
momentum (0.99, i.e. 0.01 here).

Native input 3x299x299 (Keras' minimum 71x71). Parameters: 22,910,480 as Keras counts them,
which includes the BN moving mean and variance: here ``parameters()`` (22,855,952) plus the
BatchNorm buffers (54,528).

Keras pads "same" max pooling as TensorFlow does: when the padding is odd the extra row and
column go at the bottom/right. ``MaxPool2dSame`` reproduces that (73x73 -> 37x37 at 299x299).

    >>> import tinycnn.models as models
    >>> net = models.get("xception", num_classes=10)
    >>> net.input_shape
    (3, 299, 299)
"""
from collections import OrderedDict

import tinycnn.functions as F
import tinycnn.nn as nn

from .registry import register


def keras_batch_norm(channels):
    """BatchNorm with Keras' defaults: epsilon 1e-3, momentum 0.99 (0.01 in PyTorch's convention)."""
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


def init_keras_weights(model):
    """Keras' defaults: Glorot-uniform kernels, zero biases (BN starts at gamma 1, beta 0 anyway)."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def conv_bn(in_channels, out_channels, kernel_size, stride=1):
    """Conv (no bias, "valid" padding) + BN, the two pieces of Keras' Conv2D + BatchNormalization."""
    return [nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, bias=False),
            keras_batch_norm(out_channels)]


class SeparableConv2d(nn.Module):
    """Depthwise 3x3 conv (one filter per channel, "same" padding) then pointwise 1x1 conv; no bias."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class MaxPool2dSame(nn.Module):
    """3x3/2 max pooling with TensorFlow's "same" padding (odd padding puts the extra pixel bottom/right)."""

    def __init__(self, kernel_size=3, stride=2):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride

    def _padding(self, size):
        out = -(-size // self.stride)   # ceil(size / stride)
        total = max((out - 1) * self.stride + self.kernel_size - size, 0)
        return total // 2, total - total // 2

    def forward(self, x):
        (top, bottom), (left, right) = self._padding(x.shape[2]), self._padding(x.shape[3])
        x = F.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), value=float("-inf"))
        return F.max_pool2d(x, self.kernel_size, self.stride)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding='same'"


def separable_layers(block, channels, relu_first):
    """Named layers [ReLU] - SeparableConv2d - BN for each output width in ``channels``."""
    layers = []
    for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:]), start=1):
        if relu_first or i > 1:
            layers.append((f"block{block}_sepconv{i}_act", nn.ReLU()))
        layers.append((f"block{block}_sepconv{i}", SeparableConv2d(c_in, c_out)))
        layers.append((f"block{block}_sepconv{i}_bn", keras_batch_norm(c_out)))
    return layers


class XceptionBlock(nn.Module):
    """``residual`` (separable convs, optional max pool) + ``shortcut`` (1x1/2 conv + BN, or identity)."""

    def __init__(self, block, channels, downsample, relu_first=True):
        super().__init__()
        layers = separable_layers(block, channels, relu_first)
        if downsample:
            layers.append((f"block{block}_pool", MaxPool2dSame(3, 2)))
        self.residual = nn.Sequential(OrderedDict(layers))
        self.shortcut = nn.Sequential(*conv_bn(channels[0], channels[-1], 1, 2)) if downsample else nn.Identity()

    def forward(self, x):
        return self.residual(x) + self.shortcut(x)


class Xception(nn.Module):
    """Entry flow (``entry_flow``), middle flow (``middle_flow``), exit flow (``exit_flow``), ``predictions``."""

    def __init__(self, num_classes=1000):
        super().__init__()
        conv1, conv1_bn = conv_bn(3, 32, 3, stride=2)
        conv2, conv2_bn = conv_bn(32, 64, 3)
        self.entry_flow = nn.Sequential(OrderedDict([
            ("block1_conv1", conv1), ("block1_conv1_bn", conv1_bn), ("block1_conv1_act", nn.ReLU()),
            ("block1_conv2", conv2), ("block1_conv2_bn", conv2_bn), ("block1_conv2_act", nn.ReLU()),
            ("block2", XceptionBlock(2, (64, 128, 128), downsample=True, relu_first=False)),
            ("block3", XceptionBlock(3, (128, 256, 256), downsample=True)),
            ("block4", XceptionBlock(4, (256, 728, 728), downsample=True)),
        ]))
        self.middle_flow = nn.Sequential(OrderedDict(
            (f"block{b}", XceptionBlock(b, (728, 728, 728, 728), downsample=False)) for b in range(5, 13)))
        self.exit_flow = nn.Sequential(OrderedDict([
            ("block13", XceptionBlock(13, (728, 728, 1024), downsample=True)),
            ("block14_sepconv1", SeparableConv2d(1024, 1536)),
            ("block14_sepconv1_bn", keras_batch_norm(1536)),
            ("block14_sepconv1_act", nn.ReLU()),
            ("block14_sepconv2", SeparableConv2d(1536, 2048)),
            ("block14_sepconv2_bn", keras_batch_norm(2048)),
            ("block14_sepconv2_act", nn.ReLU()),
        ]))
        self.avg_pool = nn.GlobalAvgPool2d()
        self.predictions = nn.Linear(2048, num_classes)
        self.input_shape = (3, 299, 299)
        init_keras_weights(self)

    def forward(self, x):
        x = self.exit_flow(self.middle_flow(self.entry_flow(x)))
        return self.predictions(self.avg_pool(x))


@register("xception")
def xception(num_classes=1000):
    """Xception, 3x299x299; Keras Xception: 22,910,480 parameters (BN moving statistics included)."""
    return Xception(num_classes)
