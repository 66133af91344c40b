"""LeNet-5 (LeCun, Bottou, Bengio, Haffner, "Gradient-based learning applied to document
recognition", Proc. IEEE 1998), in the lecture notes' notation:

    6c5 -> 2w2s -> 16c5 -> 2w2s -> flatten 400 -> 120fc -> 84fc -> 10fc

Input 32x32 (MNIST's 28x28 digits padded by 2 pixels, ``input_size=28``). Max pooling and a
fully connected C3 layer, as the lecture notes and today's implementations (d2l.ai, Keras tutorials)
draw it: 61,706 parameters for one input channel and 10 classes
(156 + 2,416 + 48,120 + 10,164 + 850). The 1998 paper's ~60,000 comes from its sparse C3
connection table and trainable subsampling layers, which are not reproduced here.

    >>> import numpy as np, tinycnn, tinycnn.models as models
    >>> net = models.get("lenet", input_size=28)
    >>> net(tinycnn.Tensor(np.zeros((2, 1, 28, 28), dtype=np.float32))).shape
    (2, 10)
"""
from collections import OrderedDict

import tinycnn.nn as nn

from .registry import register

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


class LeNet(nn.Module):
    """``features`` (two conv + pool stages) then ``classifier`` (three fully connected layers)."""

    def __init__(self, num_classes=10, in_channels=1, input_size=32, activation="tanh"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"lenet: activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if input_size not in (28, 32):
            raise ValueError(f"lenet: input_size must be 32 or 28 (padded to 32 by conv1), got {input_size!r}")
        act = ACTIVATIONS[activation]
        # A 28x28 image zero-padded by 2 on each side is the paper's 32x32 input:
        # conv1's own padding does exactly that.
        first_padding = (32 - input_size) // 2
        self.features = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(in_channels, 6, 5, padding=first_padding)),   # 6 x 28 x 28
            ("act1", act()),
            ("pool1", nn.MaxPool2d(2, 2)),                                    # 6 x 14 x 14
            ("conv2", nn.Conv2d(6, 16, 5)),                                   # 16 x 10 x 10
            ("act2", act()),
            ("pool2", nn.MaxPool2d(2, 2)),                                    # 16 x 5 x 5
        ]))
        self.classifier = nn.Sequential(OrderedDict([
            ("flatten", nn.Flatten()),                                        # 400
            ("fc1", nn.Linear(400, 120)),
            ("act3", act()),
            ("fc2", nn.Linear(120, 84)),
            ("act4", act()),
            ("fc3", nn.Linear(84, num_classes)),
        ]))
        self.input_shape = (in_channels, input_size, input_size)

    def forward(self, x):
        return self.classifier(self.features(x))


@register("lenet", aliases=("lenet5",))
def lenet(num_classes=10, in_channels=1, input_size=32, activation="tanh"):
    """LeNet-5; ``input_size=28`` pads MNIST digits to 32x32, ``activation`` "tanh" or "relu"."""
    return LeNet(num_classes, in_channels, input_size, activation)
