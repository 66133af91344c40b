"""VGG configurations A, A-LRN, B, C, D, E (Simonyan & Zisserman, "Very Deep Convolutional
Networks for Large-Scale Image Recognition", ICLR 2015, Table 1), 224x224 inputs.

Layer names are Keras' (``block1_conv1`` ... ``block5_pool``, ``flatten``, ``fc1``, ``fc2``,
``predictions``), so ``tinycnn.summary`` reproduces ``keras.applications.VGG16().summary()``.
Conv layers are 3x3 stride 1 pad 1 (configuration C's extra layers are 1x1), ReLU after
each, 2x2/2 max pooling, two fully connected layers of 4096 with dropout 0.5 (the paper's
training setup; Keras' VGG16 has no dropout, which adds no parameters).

Parameters with 1000 classes (Table 2 of the paper, in millions: 133, 133, 134, 138, 144),
equal to torchvision's vgg11/13/16/19 and Keras' VGG16/VGG19:

    A, A-LRN 132,863,336   B 133,047,848   C 133,638,952   D 138,357,544   E 143,667,240

``batch_norm=True`` puts BatchNorm between each conv and its ReLU (torchvision's vgg*_bn:
A 132,868,840, B 133,053,736, D 138,365,992, E 143,678,248 trainable parameters).
``input_shape`` other than 224x224 resizes fc1 (512 * H/32 * W/32 inputs), e.g. (3, 32, 32).
``adaptive_pool=(7, 7)`` is torchvision's layout instead: an adaptive average pool to 7x7
before flatten, so fc1 always has 25,088 inputs and any input from 32x32 up runs (a 1x1
map is repeated 49 times); ``tinycnn.models.from_torchvision`` builds it for torchvision's
weights.

    >>> import tinycnn.models as models
    >>> net = models.get("vgg11", input_shape=(3, 32, 32), num_classes=10)
    >>> net.classifier.fc1.in_features
    512
"""
from collections import OrderedDict

import tinycnn.nn as nn

from .layers import AdaptiveAvgPool2d
from .registry import register

# Per configuration, the five blocks' conv layers as (out_channels, kernel_size).
_3x3, _1x1 = 3, 1
CONFIGS = {
    "A": [[(64, _3x3)], [(128, _3x3)], [(256, _3x3)] * 2, [(512, _3x3)] * 2, [(512, _3x3)] * 2],
    "B": [[(64, _3x3)] * 2, [(128, _3x3)] * 2, [(256, _3x3)] * 2, [(512, _3x3)] * 2, [(512, _3x3)] * 2],
    "C": [[(64, _3x3)] * 2, [(128, _3x3)] * 2, [(256, _3x3)] * 2 + [(256, _1x1)],
          [(512, _3x3)] * 2 + [(512, _1x1)], [(512, _3x3)] * 2 + [(512, _1x1)]],
    "D": [[(64, _3x3)] * 2, [(128, _3x3)] * 2, [(256, _3x3)] * 3, [(512, _3x3)] * 3, [(512, _3x3)] * 3],
    "E": [[(64, _3x3)] * 2, [(128, _3x3)] * 2, [(256, _3x3)] * 4, [(512, _3x3)] * 4, [(512, _3x3)] * 4],
}
CONFIGS["A-LRN"] = CONFIGS["A"]


def vgg_features(config, in_channels=3, batch_norm=False):
    """The convolutional part: five blocks of conv (+BN) + ReLU, each closed by a 2x2/2 max pool."""
    layers = OrderedDict()
    for block, convs in enumerate(CONFIGS[config], start=1):
        for index, (channels, kernel) in enumerate(convs, start=1):
            layers[f"block{block}_conv{index}"] = nn.Conv2d(in_channels, channels, kernel, padding=kernel // 2)
            if batch_norm:
                layers[f"block{block}_bn{index}"] = nn.BatchNorm2d(channels)
            layers[f"block{block}_relu{index}"] = nn.ReLU()
            if config == "A-LRN" and block == 1:
                layers["block1_lrn"] = nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)
            in_channels = channels
        layers[f"block{block}_pool"] = nn.MaxPool2d(2, 2)
    return nn.Sequential(layers)


class VGG(nn.Module):
    """``features`` (Keras' block1..block5) then ``classifier`` (flatten, fc1, fc2, predictions)."""

    def __init__(self, config="D", num_classes=1000, batch_norm=False, input_shape=(3, 224, 224), dropout=0.5,
                 adaptive_pool=None):
        super().__init__()
        if config not in CONFIGS:
            raise ValueError(f"vgg: config must be one of {sorted(CONFIGS)}, got {config!r}")
        channels, height, width = input_shape
        if adaptive_pool is None and (height % 32 or width % 32):
            raise ValueError(f"vgg: input height and width must be multiples of 32 (five 2x2 pools), "
                             f"got input_shape {tuple(input_shape)}")
        if adaptive_pool is not None and min(height, width) < 32:
            raise ValueError(f"vgg: input height and width must be at least 32 (five 2x2 pools), "
                             f"got input_shape {tuple(input_shape)}")
        self.features = vgg_features(config, channels, batch_norm)
        if adaptive_pool is None:
            pool, flat = [], 512 * (height // 32) * (width // 32)        # 25,088 = 512 x 7 x 7 at 224x224
        else:
            avgpool = AdaptiveAvgPool2d(adaptive_pool)
            pool, flat = [("avgpool", avgpool)], 512 * avgpool.output_size[0] * avgpool.output_size[1]
        self.classifier = nn.Sequential(OrderedDict(pool + [
            ("flatten", nn.Flatten()),
            ("fc1", nn.Linear(flat, 4096)),
            ("fc1_relu", nn.ReLU()),
            ("fc1_dropout", nn.Dropout(dropout)),
            ("fc2", nn.Linear(4096, 4096)),
            ("fc2_relu", nn.ReLU()),
            ("fc2_dropout", nn.Dropout(dropout)),
            ("predictions", nn.Linear(4096, num_classes)),
        ]))
        self.config = config
        self.input_shape = tuple(input_shape)

    def forward(self, x):
        return self.classifier(self.features(x))


def _builder(config):
    def build(num_classes=1000, batch_norm=False, input_shape=(3, 224, 224), dropout=0.5, adaptive_pool=None):
        return VGG(config, num_classes, batch_norm, input_shape, dropout, adaptive_pool)
    build.__name__ = f"vgg_{config.lower().replace('-', '_')}"
    build.__doc__ = f"VGG configuration {config} (see tinycnn.models.vgg)."
    return build


for _config, _name, _aliases in (("A", "vgg11", ("vgg_a",)), ("A-LRN", "vgg11_lrn", ("vgg_a_lrn",)),
                                 ("B", "vgg13", ("vgg_b",)), ("C", "vgg16c", ("vgg_c",)),
                                 ("D", "vgg16", ("vgg_d",)), ("E", "vgg19", ("vgg_e",))):
    register(_name, aliases=_aliases)(_builder(_config))
