"""Squeeze-and-excitation: Hu, Shen, Sun, "Squeeze-and-Excitation Networks", CVPR 2018.

``SEBlock`` rescales each channel of a feature map by a gate in (0, 1) computed from the
whole map, as in the lecture notes' code illustration::

    x = GlobalAveragePooling2D()(in_block)          # squeeze:  (N, C)
    x = Dense(ch // ratio, activation='relu')(x)     # excitation
    x = Dense(ch, activation='sigmoid')(x)           # gate:     (N, C)
    return multiply()([in_block, x])                 # (N, C, H, W) * (N, C, 1, 1)

It drops into any model. ``se_resnet50`` puts one after the last BN of every ResNet-50
bottleneck, before the shortcut is added (the paper's Figure 3), with the stride on the first
1x1 conv as in the paper's Caffe model. Native input 3x224x224. Parameters: 28,088,024
(the paper: 28.1 M, about 2.5 M more than ResNet-50), counted as torchvision does (both fc
layers with bias, ratio 16, BN running statistics excluded): ResNet-50's 25,557,032 plus
2,530,992 in the SE blocks.

    >>> import numpy as np, tinycnn
    >>> se = SEBlock(32, ratio=16)
    >>> se(tinycnn.Tensor(np.ones((2, 32, 5, 5), dtype=np.float32))).shape
    (2, 32, 5, 5)
"""
import tinycnn.functions as F
import tinycnn.nn as nn

from .registry import register
from .resnet import Bottleneck, ResNet


class SEBlock(nn.Module):
    """Global average pool -> fc (C -> C/ratio) -> ReLU -> fc (C/ratio -> C) -> sigmoid -> x * gate.

    The hidden width is ``max(1, channels // ratio)``; both fc layers have a bias.
    """

    def __init__(self, channels, ratio=16):
        super().__init__()
        if channels < 1 or ratio < 1:
            raise ValueError(f"SEBlock: channels and ratio must be positive, got channels={channels}, ratio={ratio}")
        hidden = max(1, channels // ratio)
        self.channels, self.ratio = channels, ratio
        self.squeeze = nn.GlobalAvgPool2d()
        self.fc1 = nn.Linear(channels, hidden)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(hidden, channels)
        self.sigmoid = nn.Sigmoid()

    def gate(self, x):
        """The per-channel weights in (0, 1), shape (N, C)."""
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"SEBlock: expected an (N, {self.channels}, H, W) input, got shape {tuple(x.shape)}")
        return self.sigmoid(self.fc2(self.relu(self.fc1(self.squeeze(x)))))

    def forward(self, x):
        n, c = x.shape[:2]
        return F.mul(x, self.gate(x).reshape(n, c, 1, 1))   # (N, C, H, W) * (N, C, 1, 1)

    def extra_repr(self):
        return f"{self.channels}, ratio={self.ratio}"


class SEBottleneck(Bottleneck):
    """ResNet bottleneck whose residual branch ends in an SEBlock (before the shortcut is added)."""

    def __init__(self, in_channels, channels, stride=1, downsample=None, residual=True, se_ratio=16, **options):
        super().__init__(in_channels, channels, stride, downsample, residual, **options)
        self.se = SEBlock(channels * self.expansion, se_ratio)

    def residual_branch(self, x):
        return self.se(super().residual_branch(x))


@register("se_resnet50")
def se_resnet50(num_classes=1000, **options):
    """SE-ResNet-50, 3x224x224; 28,088,024 parameters (paper: 28.1 M). Options: se_ratio=16, stride_on."""
    return ResNet(SEBottleneck, (3, 4, 6, 3), num_classes, **options)
