"""AlexNet (Krizhevsky, Sutskever, Hinton, "ImageNet Classification with Deep Convolutional
Neural Networks", NIPS 2012), as the seeds' CS231n table draws it, on one GPU (no groups):

    227x227x3 -> conv1 96 11x11/4 -> pool 3/2 -> LRN -> conv2 256 5x5 pad 2 -> pool 3/2 -> LRN
    -> conv3 384 3x3 pad 1 -> conv4 384 -> conv5 256 -> pool 3/2 -> fc6 4096 -> fc7 4096 -> fc8 1000

ReLU after every layer but fc8, dropout 0.5 after fc6 and fc7, LRN with the paper's
k=2, n=5, alpha=1e-4, beta=0.75. (The paper normalizes before pooling; the seeds' table
pools first, and so does this model.)

Parameters per convolution, as the seeds' formula gives them: 34,944 / 614,656 / 885,120 /
1,327,488 / 884,992; with fc6 37,752,832, fc7 16,781,312, fc8 4,097,000 the total is
62,378,344 (the single-group count of learnopencv's "Number of Parameters and Tensor Sizes
in a CNN", cited by the seeds).

    >>> import tinycnn.models as models
    >>> net = models.get("alexnet")
    >>> net.input_shape, sum(p.numel() for p in net.parameters())
    ((3, 227, 227), 62378344)
"""
from collections import OrderedDict

import tinycnn.nn as nn

from .registry import register


def _lrn():
    return nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)


class AlexNet(nn.Module):
    def __init__(self, num_classes=1000, dropout=0.5):
        super().__init__()
        self.features = nn.Sequential(OrderedDict([
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
        ]))
        self.classifier = nn.Sequential(OrderedDict([
            ("flatten", nn.Flatten()),                        # 9216
            ("fc6", nn.Linear(256 * 6 * 6, 4096)),
            ("relu6", nn.ReLU()),
            ("dropout6", nn.Dropout(dropout)),
            ("fc7", nn.Linear(4096, 4096)),
            ("relu7", nn.ReLU()),
            ("dropout7", nn.Dropout(dropout)),
            ("fc8", nn.Linear(4096, num_classes)),
        ]))
        self.input_shape = (3, 227, 227)

    def forward(self, x):
        return self.classifier(self.features(x))


@register("alexnet")
def alexnet(num_classes=1000, dropout=0.5):
    """AlexNet for 227x227 inputs (single group, LRN after pooling as in the seeds)."""
    return AlexNet(num_classes, dropout)
