"""DenseNet: Huang, Liu, van der Maaten, Weinberger, "Densely Connected Convolutional Networks", CVPR 2017.

Every layer of a dense block sees the concatenation of all the feature maps before it and
adds ``growth_rate`` (k) new ones. Layers are bottlenecks BN-ReLU-1x1 conv (4k)-BN-ReLU-3x3
conv (k); transitions between blocks are BN-ReLU-1x1 conv (halving the channels,
compression 0.5)-2x2 average pool.

ImageNet models (Table 1, native input 3x224x224); parameters as torchvision counts them
(BN running statistics excluded):

    name         k    initial features   layers per block   parameters
    densenet121  32   64                 6, 12, 24, 16       7,978,856
    densenet169  32   64                 6, 12, 32, 32      14,149,480
    densenet201  32   64                 6, 12, 48, 32      20,013,928
    densenet161  48   96                 6, 12, 36, 24      28,681,000

``densenet_bc_100`` is the paper's CIFAR DenseNet-BC (depth 100, k = 12, Section 3 and
Table 2; native input 3x32x32): a 3x3 conv with 2k channels, three blocks of 16 bottleneck
layers, final BN-ReLU-pool-fc. Parameters: 769,162 for 10 classes (the paper rounds to 0.8 M).

    >>> import tinycnn.models as models
    >>> net = models.get("densenet_bc_100", num_classes=10)
    >>> [name for name, _ in net.features.named_children()][:3]
    ['conv0', 'denseblock1', 'transition1']
"""
from collections import OrderedDict

import tinycnn.functions as F
import tinycnn.nn as nn

from .registry import register


class DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv (bn_size * k) - BN-ReLU-3x3 conv (k): returns the k new feature maps."""

    def __init__(self, in_channels, growth_rate, bn_size=4):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_channels, bn_size * growth_rate, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False)

    def forward(self, x):
        x = self.conv1(self.relu1(self.norm1(x)))
        return self.conv2(self.relu2(self.norm2(x)))


class DenseBlock(nn.Module):
    """``num_layers`` DenseLayers; each one's output is concatenated to its input along channels."""

    def __init__(self, num_layers, in_channels, growth_rate, bn_size=4):
        super().__init__()
        for i in range(num_layers):
            self.add_module(f"denselayer{i + 1}", DenseLayer(in_channels + i * growth_rate, growth_rate, bn_size))
        self.out_channels = in_channels + num_layers * growth_rate

    def forward(self, x):
        for layer in self.children():
            x = F.concat([x, layer(x)], axis=1)
        return x


def transition(in_channels, out_channels):
    """BN-ReLU-1x1 conv-2x2 average pool (stride 2) between dense blocks."""
    return nn.Sequential(OrderedDict([
        ("norm", nn.BatchNorm2d(in_channels)),
        ("relu", nn.ReLU()),
        ("conv", nn.Conv2d(in_channels, out_channels, 1, bias=False)),
        ("pool", nn.AvgPool2d(2, stride=2)),
    ]))


class DenseNet(nn.Module):
    """``features`` (stem, dense blocks and transitions, final BN) -> ReLU -> global pool -> ``classifier``.

    ``stem="imagenet"``: 7x7/2 conv, BN, ReLU, 3x3/2 max pool; ``stem="cifar"``: one 3x3 conv.
    """

    def __init__(self, growth_rate, block_config, num_init_features, num_classes=1000,
                 bn_size=4, compression=0.5, stem="imagenet"):
        super().__init__()
        if stem == "imagenet":
            layers = [("conv0", nn.Conv2d(3, num_init_features, 7, stride=2, padding=3, bias=False)),
                      ("norm0", nn.BatchNorm2d(num_init_features)),
                      ("relu0", nn.ReLU()),
                      ("pool0", nn.MaxPool2d(3, stride=2, padding=1))]
            self.input_shape = (3, 224, 224)
        elif stem == "cifar":
            layers = [("conv0", nn.Conv2d(3, num_init_features, 3, padding=1, bias=False))]
            self.input_shape = (3, 32, 32)
        else:
            raise ValueError(f"DenseNet: stem must be 'imagenet' or 'cifar', got {stem!r}")
        channels = num_init_features
        for i, num_layers in enumerate(block_config, start=1):
            block = DenseBlock(num_layers, channels, growth_rate, bn_size)
            layers.append((f"denseblock{i}", block))
            channels = block.out_channels
            if i < len(block_config):
                reduced = int(channels * compression)
                layers.append((f"transition{i}", transition(channels, reduced)))
                channels = reduced
        layers.append((f"norm{len(block_config) + 1}", nn.BatchNorm2d(channels)))
        self.features = nn.Sequential(OrderedDict(layers))
        self.relu = nn.ReLU()
        self.avgpool = nn.GlobalAvgPool2d()
        self.classifier = nn.Linear(channels, num_classes)
        self._init_weights()

    def _init_weights(self):
        """As torchvision: He-normal convs, BN gamma 1 / beta 0, classifier bias 0."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, x):
        return self.classifier(self.avgpool(self.relu(self.features(x))))


@register("densenet121")
def densenet121(num_classes=1000, **options):
    """DenseNet-121 (k=32), 3x224x224; torchvision densenet121: 7,978,856 parameters."""
    return DenseNet(32, (6, 12, 24, 16), 64, num_classes, **options)


@register("densenet169")
def densenet169(num_classes=1000, **options):
    """DenseNet-169 (k=32), 3x224x224; torchvision densenet169: 14,149,480 parameters."""
    return DenseNet(32, (6, 12, 32, 32), 64, num_classes, **options)


@register("densenet201")
def densenet201(num_classes=1000, **options):
    """DenseNet-201 (k=32), 3x224x224; torchvision densenet201: 20,013,928 parameters."""
    return DenseNet(32, (6, 12, 48, 32), 64, num_classes, **options)


@register("densenet161")
def densenet161(num_classes=1000, **options):
    """DenseNet-161 (k=48), 3x224x224; torchvision densenet161: 28,681,000 parameters."""
    return DenseNet(48, (6, 12, 36, 24), 96, num_classes, **options)


@register("densenet_bc_100")
def densenet_bc_100(num_classes=10, **options):
    """DenseNet-BC for CIFAR (depth 100, k=12), 3x32x32; 769,162 parameters with 10 classes."""
    return DenseNet(12, (16, 16, 16), 24, num_classes, stem="cifar", **options)
