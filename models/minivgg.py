"""MiniVGG for CIFAR-10 (Rosebrock, "Deep Learning for Computer Vision with Python",
Starter Bundle; the lecture notes' layer table and Keras summary):

    [CONV 3x3 32 -> ReLU -> BN] x 2 -> POOL 2x2 -> DROPOUT 0.25
    [CONV 3x3 64 -> ReLU -> BN] x 2 -> POOL 2x2 -> DROPOUT 0.25
    FC 512 -> ReLU -> BN -> DROPOUT 0.5 -> FC 10

Convolutions use Keras' "same" padding (stride 1, so 1 pixel on every side). Counted as
Keras counts (BatchNorm's moving mean/variance are non-trainable parameters), the lecture notes'
``model.summary()`` gives 2,171,178 parameters: 2,169,770 trainable, 1,408 non-trainable;
tinycnn has the same numbers (the BN statistics are buffers). The model returns logits:
the lecture notes' final softmax Activation lives in the loss (``F.softmax_cross_entropy``).

``input_shape`` (C, H, W): (3, 32, 32) for CIFAR-10, (1, 28, 28) for (Fashion-)MNIST.

    >>> import numpy as np, tinycnn, tinycnn.models as models
    >>> net = models.get("minivgg", input_shape=(1, 28, 28)).eval()
    >>> net(tinycnn.Tensor(np.zeros((1, 1, 28, 28), dtype=np.float32))).shape
    (1, 10)
"""
from collections import OrderedDict

import tinycnn.nn as nn

from .registry import register


def _block(layers, block, in_channels, channels):
    for index, c_in in enumerate((in_channels, channels), start=1):
        layers[f"block{block}_conv{index}"] = nn.Conv2d(c_in, channels, 3, padding=1)   # Keras "same"
        layers[f"block{block}_relu{index}"] = nn.ReLU()
        layers[f"block{block}_bn{index}"] = nn.BatchNorm2d(channels)
    layers[f"block{block}_pool"] = nn.MaxPool2d(2, 2)
    layers[f"block{block}_dropout"] = nn.Dropout(0.25)


class MiniVGG(nn.Module):
    def __init__(self, num_classes=10, input_shape=(3, 32, 32)):
        super().__init__()
        channels, height, width = input_shape
        if height % 4 or width % 4:
            raise ValueError(f"minivgg: input height and width must be multiples of 4 (two 2x2 pools), "
                             f"got input_shape {tuple(input_shape)}")
        layers = OrderedDict()
        _block(layers, 1, channels, 32)
        _block(layers, 2, 32, 64)
        self.features = nn.Sequential(layers)
        self.classifier = nn.Sequential(OrderedDict([
            ("flatten", nn.Flatten()),                                      # 4096 = 64 x 8 x 8 for CIFAR
            ("fc1", nn.Linear(64 * (height // 4) * (width // 4), 512)),
            ("fc1_relu", nn.ReLU()),
            ("fc1_bn", nn.BatchNorm1d(512)),
            ("fc1_dropout", nn.Dropout(0.5)),
            ("predictions", nn.Linear(512, num_classes)),
        ]))
        self.input_shape = tuple(input_shape)

    def forward(self, x):
        return self.classifier(self.features(x))


@register("minivgg", aliases=("mini_vgg",))
def minivgg(num_classes=10, input_shape=(3, 32, 32)):
    """MiniVGG (2,171,178 parameters as Keras counts them for CIFAR-10)."""
    return MiniVGG(num_classes, input_shape)
