"""AlexNet (Krizhevsky, Sutskever, Hinton, "ImageNet Classification with Deep Convolutional
Neural Networks", NIPS 2012), as the lecture notes' CS231n table draws it, on one GPU (no groups):

    227x227x3 -> conv1 96 11x11/4 -> pool 3/2 -> LRN -> conv2 256 5x5 pad 2 -> pool 3/2 -> LRN
    -> conv3 384 3x3 pad 1 -> conv4 384 -> conv5 256 -> pool 3/2 -> fc6 4096 -> fc7 4096 -> fc8 1000

ReLU after every layer but fc8, dropout 0.5 after fc6 and fc7, LRN with the paper's
k=2, n=5, alpha=1e-4, beta=0.75. (The paper normalizes before pooling; the lecture notes' table
pools first, and so does this model.)

Parameters per convolution, as the lecture notes' formula gives them: 34,944 / 614,656 / 885,120 /
1,327,488 / 884,992; with fc6 37,752,832, fc7 16,781,312, fc8 4,097,000 the total is
62,378,344 (the single-group count of learnopencv's "Number of Parameters and Tensor Sizes
in a CNN", cited by the lecture notes).

``variant="torchvision"`` builds torchvision's ``alexnet`` instead, the single-tower network of
Krizhevsky's "One weird trick for parallelizing convolutional neural networks" (2014):
64-192-384-256-256 channels, conv1 padded by 2, no LRN, an adaptive average pool to 6x6
before the classifier (so inputs from 63x63 up run) and dropout before fc6 and fc7. Its
61,100,840 parameters are torchvision's count; ``tinycnn.models.from_torchvision`` loads its
weights.

    >>> import tinycnn.models as models
    >>> net = models.get("alexnet")
    >>> net.input_shape, sum(p.numel() for p in net.parameters())
    ((3, 227, 227), 62378344)
"""
from collections import OrderedDict

import tinycnn.nn as nn

from .layers import AdaptiveAvgPool2d
from .registry import register


def _lrn():
    return nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)


def _torchvision_layers(num_classes, dropout):
    """torchvision's alexnet ("One weird trick"), with this module's layer names."""
    features = OrderedDict([
        ("conv1", nn.Conv2d(3, 64, 11, stride=4, padding=2)),  # 64 x 55 x 55
        ("relu1", nn.ReLU()),
        ("pool1", nn.MaxPool2d(3, 2)),                         # 64 x 27 x 27
        ("conv2", nn.Conv2d(64, 192, 5, padding=2)),
        ("relu2", nn.ReLU()),
        ("pool2", nn.MaxPool2d(3, 2)),                         # 192 x 13 x 13
        ("conv3", nn.Conv2d(192, 384, 3, padding=1)),
        ("relu3", nn.ReLU()),
        ("conv4", nn.Conv2d(384, 256, 3, padding=1)),
        ("relu4", nn.ReLU()),
        ("conv5", nn.Conv2d(256, 256, 3, padding=1)),
        ("relu5", nn.ReLU()),
        ("pool5", nn.MaxPool2d(3, 2)),                         # 256 x 6 x 6
    ])
    classifier = OrderedDict([
        ("avgpool", AdaptiveAvgPool2d(6)),                     # 6 x 6 from any input of 63 x 63 or more
        ("flatten", nn.Flatten()),
        ("dropout6", nn.Dropout(dropout)),
        ("fc6", nn.Linear(256 * 6 * 6, 4096)),
        ("relu6", nn.ReLU()),
        ("dropout7", nn.Dropout(dropout)),
        ("fc7", nn.Linear(4096, 4096)),
        ("relu7", nn.ReLU()),
        ("fc8", nn.Linear(4096, num_classes)),
    ])
    return features, classifier


def _paper_layers(num_classes, dropout):
    """The lecture notes' AlexNet: features and classifier."""
    features = OrderedDict([
        ("conv1", nn.Conv2d(3, 96, 11, stride=4)),        # 96 x 55 x 55
        ("relu1", nn.ReLU()),
        ("pool1", nn.MaxPool2d(3, 2)),                    # 96 x 27 x 27
        ("norm1", _lrn()),
        ("conv2", nn.Conv2d(96, 256, 5, padding=2)),      # 256 x 27 x 27
        ("relu2", nn.ReLU()),
        ("pool2", nn.MaxPool2d(3, 2)),                    # 256 x 13 x 13
        ("norm2", _lrn()),
        ("conv3", nn.Conv2d(256, 384, 3, padding=1)),     # 384 x 13 x 13
        ("relu3", nn.ReLU()),
        ("conv4", nn.Conv2d(384, 384, 3, padding=1)),
        ("relu4", nn.ReLU()),
        ("conv5", nn.Conv2d(384, 256, 3, padding=1)),     # 256 x 13 x 13
        ("relu5", nn.ReLU()),
        ("pool5", nn.MaxPool2d(3, 2)),                    # 256 x 6 x 6
    ])
    classifier = OrderedDict([
        ("flatten", nn.Flatten()),                        # 9216
        ("fc6", nn.Linear(256 * 6 * 6, 4096)),
        ("relu6", nn.ReLU()),
        ("dropout6", nn.Dropout(dropout)),
        ("fc7", nn.Linear(4096, 4096)),
        ("relu7", nn.ReLU()),
        ("dropout7", nn.Dropout(dropout)),
        ("fc8", nn.Linear(4096, num_classes)),
    ])
    return features, classifier


class AlexNet(nn.Module):
    """``features`` then ``classifier``; ``variant`` "paper" (the lecture notes') or "torchvision"."""

    def __init__(self, num_classes=1000, dropout=0.5, variant="paper"):
        super().__init__()
        layers = {"paper": _paper_layers, "torchvision": _torchvision_layers}
        if variant not in layers:
            raise ValueError(f"AlexNet: variant must be 'paper' or 'torchvision', got {variant!r}")
        features, classifier = layers[variant](num_classes, dropout)
        self.features, self.classifier = nn.Sequential(features), nn.Sequential(classifier)
        self.variant = variant
        self.input_shape = (3, 227, 227) if variant == "paper" else (3, 224, 224)

    def forward(self, x):
        return self.classifier(self.features(x))


@register("alexnet")
def alexnet(num_classes=1000, dropout=0.5, variant="paper"):
    """AlexNet for 227x227 inputs (single group, LRN after pooling as in the lecture notes);
    ``variant="torchvision"``: torchvision's alexnet (see the module docstring)."""
    return AlexNet(num_classes, dropout, variant)
