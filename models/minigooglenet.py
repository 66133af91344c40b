"""MiniGoogLeNet (CIFAR-10) and DeeperGoogLeNet (Tiny ImageNet), from Rosebrock, "Deep
Learning for Computer Vision with Python" (Practitioner Bundle), after the small Inception
network of Zhang et al., "Understanding Deep Learning Requires Rethinking Generalization",
ICLR 2017 (the lecture notes' figures and tables).

MiniGoogLeNet, 32x32x3 inputs, built from three modules:
    conv module        conv KxK -> BN -> ReLU
    inception module   concat(conv module 1x1, conv module 3x3)
    downsample module  concat(conv module 3x3 stride 2 "valid", max pool 3x3 stride 2)

    conv 96 3x3 -> inception (32, 32), (32, 48) -> downsample 80                 32 -> 15
    -> inception (112, 48), (96, 64), (80, 80), (48, 96) -> downsample 96        15 -> 7
    -> inception (176, 160), (176, 160) -> avg pool 7x7 -> dropout 0.5 -> dense 10

1,656,250 parameters counted as Keras counts them (conv bias, BN gamma and beta trainable,
BN moving mean/variance non-trainable): 1,652,826 trainable + 3,424 non-trainable (the lecture
notes' "1.6M Params").

DeeperGoogLeNet, the lecture notes' Tiny ImageNet table (64x64x3 inputs, 200 classes): GoogLeNet's
inception modules (1x1 / 1x1-3x3 / 1x1-5x5 / pool-1x1 branches) with conv-BN-ReLU units,

    conv 5x5 64 -> max pool 3/2 -> conv 1x1 64 -> conv 3x3 192 -> max pool 3/2
    -> inception 3a, 3b -> max pool 3/2 -> inception 4a..4e -> max pool 3/2
    -> avg pool 4x4 -> dropout 0.4 -> dense 200

Max pools use Keras' "same" padding, which for stride 2 pads asymmetrically (the extra
pixel at the bottom/right). 3,667,976 parameters as Keras counts them (3,657,992 trainable
+ 9,984 non-trainable; the lecture notes' "3.6M Params"). The lecture notes' experiments drop inception
4a-4e (``inception_4=False``: 771,096 + 2,656), try conv -> ReLU -> BN
(``bn_after_activation=True``) and ELUs (``activation="elu"``). The lecture notes' L2 weight
decay (5e-4) belongs to the optimizer (``SGD(..., weight_decay=...)``).

Both return logits; the softmax is in the loss.

    >>> import tinycnn.models as models
    >>> models.get("minigooglenet").input_shape, models.get("deepergooglenet").input_shape
    ((3, 32, 32), (3, 64, 64))
"""
import functools
import math
from collections import OrderedDict

import tinycnn.functions as F
import tinycnn.nn as nn

from .googlenet import GOOGLENET_INCEPTIONS, Inception, conv_layers
from .registry import register

ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU}


class SmallInception(nn.Module):
    """MiniGoogLeNet's inception module: concat(1x1 conv module, 3x3 conv module)."""

    def __init__(self, in_channels, n1x1, n3x3, conv=conv_layers):
        super().__init__()
        self.branch1x1 = nn.Sequential(OrderedDict(conv("conv", in_channels, n1x1, 1)))
        self.branch3x3 = nn.Sequential(OrderedDict(conv("conv", in_channels, n3x3, 3)))
        self.out_channels = n1x1 + n3x3

    def forward(self, x):
        return F.concat([self.branch1x1(x), self.branch3x3(x)], axis=1)


class Downsample(nn.Module):
    """MiniGoogLeNet's downsample module: concat(3x3/2 "valid" conv module, 3x3/2 max pool)."""

    def __init__(self, in_channels, n3x3, conv=conv_layers):
        super().__init__()
        self.branch3x3 = nn.Sequential(OrderedDict(conv("conv", in_channels, n3x3, 3, stride=2, padding=0)))
        self.branch_pool = nn.MaxPool2d(3, 2)
        self.out_channels = n3x3 + in_channels

    def forward(self, x):
        return F.concat([self.branch3x3(x), self.branch_pool(x)], axis=1)


class MiniGoogLeNet(nn.Module):
    def __init__(self, num_classes=10, input_shape=(3, 32, 32)):
        super().__init__()
        channels, height, width = input_shape
        conv = functools.partial(conv_layers, batch_norm=True)
        self.conv1 = nn.Sequential(OrderedDict(conv("conv", channels, 96, 3)))
        self.inception_1a = SmallInception(96, 32, 32, conv)
        self.inception_1b = SmallInception(64, 32, 48, conv)
        self.downsample_1 = Downsample(80, 80, conv)                             # 160 channels
        self.inception_2a = SmallInception(160, 112, 48, conv)
        self.inception_2b = SmallInception(160, 96, 64, conv)
        self.inception_2c = SmallInception(160, 80, 80, conv)
        self.inception_2d = SmallInception(160, 48, 96, conv)
        self.downsample_2 = Downsample(144, 96, conv)                            # 240 channels
        self.inception_3a = SmallInception(240, 176, 160, conv)
        self.inception_3b = SmallInception(336, 176, 160, conv)                  # 336 channels
        final = [(size - 3) // 2 + 1 for size in (height, width)]               # after the two downsamples
        final = [(size - 3) // 2 + 1 for size in final]                         # 32 -> 15 -> 7
        if min(final) < 1:
            raise ValueError(f"minigooglenet: input_shape {tuple(input_shape)} is too small for two "
                             f"3x3/2 downsample modules (needs at least 7x7)")
        self.avgpool = nn.AvgPool2d(tuple(final))                                # 7x7 for CIFAR-10: global
        self.dropout = nn.Dropout(0.5)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(336, num_classes)
        self.input_shape = tuple(input_shape)

    def forward(self, x):
        x = self.inception_1b(self.inception_1a(self.conv1(x)))
        x = self.downsample_1(x)
        for name in ("2a", "2b", "2c", "2d"):
            x = getattr(self, f"inception_{name}")(x)
        x = self.inception_3b(self.inception_3a(self.downsample_2(x)))
        return self.fc(self.flatten(self.dropout(self.avgpool(x))))


class KerasSameMaxPool2d(nn.Module):
    """Max pooling with Keras' padding="same": output size ceil(in / stride).

    The total padding max((out - 1) * stride + k - in, 0) is split with the extra pixel at
    the bottom/right, which for stride 2 makes it asymmetric, so the input is padded
    explicitly (with -inf, never a maximum) before a plain "valid" max pool.
    """

    def __init__(self, kernel_size, stride):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride

    def forward(self, x):
        widths = [(0, 0), (0, 0)]
        for size in x.shape[2:]:
            out = math.ceil(size / self.stride)
            total = max((out - 1) * self.stride + self.kernel_size - size, 0)
            widths.append((total // 2, total - total // 2))
        if any(before or after for before, after in widths):
            x = F.pad(x, widths, value=float("-inf"))
        return F.max_pool2d(x, self.kernel_size, self.stride)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding='same'"


class DeeperGoogLeNet(nn.Module):
    def __init__(self, num_classes=200, input_shape=(3, 64, 64), inception_4=True, activation="relu",
                 bn_after_activation=False):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"deepergooglenet: activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        channels, height, width = input_shape
        conv = functools.partial(conv_layers, batch_norm=True, activation=ACTIVATIONS[activation],
                                 bn_after_activation=bn_after_activation)
        self.stem = nn.Sequential(OrderedDict(
            conv("block1", channels, 64, 5)                                      # 64 x 64 x 64
            + [("pool1", KerasSameMaxPool2d(3, 2))]                              # 64 x 32 x 32
            + conv("block2", 64, 64, 1)
            + conv("block3", 64, 192, 3)                                         # 192 x 32 x 32
            + [("pool2", KerasSameMaxPool2d(3, 2))]))                            # 192 x 16 x 16
        self.inception_3a = Inception(*GOOGLENET_INCEPTIONS["3a"], conv=conv)
        self.inception_3b = Inception(*GOOGLENET_INCEPTIONS["3b"], conv=conv)    # 480 x 16 x 16
        self.pool3 = KerasSameMaxPool2d(3, 2)                                    # 480 x 8 x 8
        self.inception_4 = inception_4
        if inception_4:
            for name in ("4a", "4b", "4c", "4d", "4e"):
                setattr(self, f"inception_{name}", Inception(*GOOGLENET_INCEPTIONS[name], conv=conv))
        self.pool4 = KerasSameMaxPool2d(3, 2)                                    # 832 x 4 x 4
        final = [math.ceil(size / 16) for size in (height, width)]              # four stride-2 "same" pools
        self.avgpool = nn.AvgPool2d(tuple(final))                                # 4x4 for 64x64: global
        self.dropout = nn.Dropout(0.4)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(832 if inception_4 else 480, num_classes)
        self.input_shape = tuple(input_shape)

    def forward(self, x):
        x = self.pool3(self.inception_3b(self.inception_3a(self.stem(x))))
        if self.inception_4:
            for name in ("4a", "4b", "4c", "4d", "4e"):
                x = getattr(self, f"inception_{name}")(x)
        x = self.avgpool(self.pool4(x))
        return self.fc(self.flatten(self.dropout(x)))


@register("minigooglenet", aliases=("mini_googlenet",))
def minigooglenet(num_classes=10, input_shape=(3, 32, 32)):
    """MiniGoogLeNet for CIFAR-10 (1,656,250 parameters as Keras counts them)."""
    return MiniGoogLeNet(num_classes, input_shape)


@register("deepergooglenet", aliases=("deeper_googlenet",))
def deepergooglenet(num_classes=200, input_shape=(3, 64, 64), inception_4=True, activation="relu",
                    bn_after_activation=False):
    """DeeperGoogLeNet for Tiny ImageNet; ``inception_4=False`` drops inception 4a-4e."""
    return DeeperGoogLeNet(num_classes, input_shape, inception_4, activation, bn_after_activation)
