"""Network in Network for CIFAR-10 (Lin, Chen, Yan, "Network In Network", ICLR 2014).

Three mlpconv blocks, each a spatial convolution followed by two 1x1 convolutions (the
"micro network" shared over positions), ReLU after every convolution; the configuration of
the authors' released CIFAR-10 Caffe model (192-160-96 / 192-192-192 / 192-192-10):

    conv 5x5 192 pad 2 -> 1x1 160 -> 1x1 96  -> max pool 3/2 -> dropout 0.5
    conv 5x5 192 pad 2 -> 1x1 192 -> 1x1 192 -> avg pool 3/2 -> dropout 0.5
    conv 3x3 192 pad 1 -> 1x1 192 -> 1x1 10  -> global average pooling (the classifier)

Pools round up as Caffe's do (``ceil_mode``): 32 -> 16 -> 8. No fully connected layer:
the last 1x1 convolution has one map per class and global average pooling turns the maps
into scores. 966,986 parameters for 10 classes (14,592 + 30,880 + 15,456 + 460,992 +
37,056 x 3 + 331,968 + 1,930), the count of that Caffe model.

    >>> import numpy as np, tinycnn, tinycnn.models as models
    >>> models.get("nin")(tinycnn.Tensor(np.zeros((1, 3, 32, 32), dtype=np.float32))).shape
    (1, 10)
"""
from collections import OrderedDict

import tinycnn.nn as nn

from .registry import register


def mlpconv(in_channels, channels, kernel_size):
    """A spatial conv then two 1x1 convs (a shared MLP per position), ReLU after each.

    ``channels`` = (spatial conv, first 1x1, second 1x1) output channels.
    """
    first, second, third = channels
    return nn.Sequential(OrderedDict([
        ("conv", nn.Conv2d(in_channels, first, kernel_size, padding=kernel_size // 2)),
        ("relu", nn.ReLU()),
        ("cccp1", nn.Conv2d(first, second, 1)),
        ("cccp1_relu", nn.ReLU()),
        ("cccp2", nn.Conv2d(second, third, 1)),
        ("cccp2_relu", nn.ReLU()),
    ]))


class NIN(nn.Module):
    def __init__(self, num_classes=10, in_channels=3, dropout=0.5):
        super().__init__()
        self.mlpconv1 = mlpconv(in_channels, (192, 160, 96), 5)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)          # 96 x 16 x 16
        self.dropout1 = nn.Dropout(dropout)
        self.mlpconv2 = mlpconv(96, (192, 192, 192), 5)
        self.pool2 = nn.AvgPool2d(3, 2, ceil_mode=True)          # 192 x 8 x 8
        self.dropout2 = nn.Dropout(dropout)
        self.mlpconv3 = mlpconv(192, (192, 192, num_classes), 3)
        self.global_pool = nn.GlobalAvgPool2d()                  # (N, num_classes)
        self.input_shape = (in_channels, 32, 32)

    def forward(self, x):
        x = self.dropout1(self.pool1(self.mlpconv1(x)))
        x = self.dropout2(self.pool2(self.mlpconv2(x)))
        return self.global_pool(self.mlpconv3(x))


@register("nin", aliases=("network_in_network",))
def nin(num_classes=10, in_channels=3, dropout=0.5):
    """Network in Network, CIFAR-10 configuration (966,986 parameters)."""
    return NIN(num_classes, in_channels, dropout)
