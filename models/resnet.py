"""ResNet: He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016.

ImageNet ResNets (native input 3x224x224), Table 1 of the paper:

    name        block       blocks per stage   parameters (torchvision's count, BN stats excluded)
    resnet18    basic       2, 2, 2, 2         11,689,512
    resnet34    basic       3, 4, 6, 3         21,797,672
    resnet50    bottleneck  3, 4, 6, 3         25,557,032
    resnet101   bottleneck  3, 4, 23, 3        44,549,160
    resnet152   bottleneck  3, 8, 36, 3        60,192,808

A shortcut is the identity, or a projection (1x1 conv + BN, the paper's option B) where
the shape changes. In a bottleneck the stride sits on the first 1x1 conv, as in the paper
and its Caffe models; ``stride_on="3x3"`` moves it to the 3x3 conv as torchvision does
("ResNet v1.5"). Both have the same parameters; the paper's placement costs fewer
multiply-adds (3.8 G for ResNet-50 at 224x224, as in the table, against 4.1 G).

CIFAR ResNets (native input 3x32x32), Section 4.2 of the paper: 6n+2 layers, three stages
of n basic blocks with 16, 32 and 64 channels, option-A shortcuts (subsample and pad the
new channels with zeros: no parameters). ``resnet20/32/44/56/110`` have 0.27/0.46/0.66/
0.85/1.7 M parameters (Table 6). ``plain20`` ... ``plain110`` are the same networks without
shortcuts (the paper's Figure 1: the deeper plain net trains worse).

    >>> import tinycnn.models as models
    >>> net = models.get("resnet20", num_classes=10)
    >>> sum(p.numel() for p in net.parameters())
    269722
"""
import tinycnn.functions as F
import tinycnn.nn as nn

from .registry import register

IMAGENET_INPUT_SHAPE = (3, 224, 224)
CIFAR_INPUT_SHAPE = (3, 32, 32)


def conv3x3(in_channels, out_channels, stride=1, groups=1):
    """3x3 convolution with padding 1 and no bias (a BatchNorm follows)."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_channels, out_channels, stride=1):
    """1x1 convolution without bias (a BatchNorm follows)."""
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


def projection_shortcut(in_channels, out_channels, stride):
    """Option B: 1x1 conv + BN, used when the block changes the shape."""
    return nn.Sequential(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))


class ZeroPadShortcut(nn.Module):
    """Option A: take every ``stride``-th pixel and pad the extra channels with zeros (no parameters).

        >>> import numpy as np, tinycnn
        >>> ZeroPadShortcut(16, 32, 2)(tinycnn.Tensor(np.ones((1, 16, 8, 8)))).shape
        (1, 32, 4, 4)
    """

    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"ZeroPadShortcut: cannot shrink {in_channels} channels to {out_channels}")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def forward(self, x):
        x = x[:, :, ::self.stride, ::self.stride]
        extra = self.out_channels - self.in_channels
        return F.pad(x, ((0, 0), (extra // 2, extra - extra // 2), (0, 0), (0, 0)))

    def extra_repr(self):
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


class ResidualBlock(nn.Module):
    """relu(residual_branch(x) + shortcut(x)); ``downsample`` None means the identity.

    With ``residual=False`` the shortcut is dropped: relu(residual_branch(x)), a "plain" block.
    Subclasses define ``residual_branch``.
    """

    def forward(self, x):
        out = self.residual_branch(x)
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)

    def residual_branch(self, x):
        raise NotImplementedError


class BasicBlock(ResidualBlock):
    """Two 3x3 convolutions (ResNet-18/34 and the CIFAR ResNets)."""

    expansion = 1

    def __init__(self, in_channels, channels, stride=1, downsample=None, residual=True):
        super().__init__()
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = downsample
        self.residual = residual

    def residual_branch(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out))


class Bottleneck(ResidualBlock):
    """1x1 (reduce) -> 3x3 -> 1x1 (expand x4), each followed by BN (ResNet-50/101/152).

    ``groups`` and ``base_width`` give ResNeXt's grouped 3x3 (width = channels * base_width/64
    * groups, torchvision's rule); ``stride_on`` is "1x1" (paper) or "3x3" (torchvision v1.5).
    """

    expansion = 4

    def __init__(self, in_channels, channels, stride=1, downsample=None, residual=True,
                 groups=1, base_width=64, stride_on="1x1"):
        super().__init__()
        if stride_on not in ("1x1", "3x3"):
            raise ValueError(f"Bottleneck: stride_on must be '1x1' or '3x3', got {stride_on!r}")
        width = int(channels * base_width / 64) * groups
        self.conv1 = conv1x1(in_channels, width, stride if stride_on == "1x1" else 1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride if stride_on == "3x3" else 1, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, channels * self.expansion)
        self.bn3 = nn.BatchNorm2d(channels * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample
        self.residual = residual

    def residual_branch(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))


def init_resnet_weights(model):
    """He-normal (fan_out) conv weights, BN gamma 1 and beta 0, as torchvision's ResNet."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class ResNet(nn.Module):
    """ImageNet ResNet: 7x7/2 conv, 3x3/2 max pool, four stages (``layer1``..``layer4``), pool, fc.

    ``block_options`` go to every block (e.g. ``stride_on="3x3"``, ResNeXt's ``groups``).
    """

    def __init__(self, block, layers, num_classes=1000, **block_options):
        super().__init__()
        self.in_channels = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_stage(block, 64, layers[0], 1, block_options)
        self.layer2 = self._make_stage(block, 128, layers[1], 2, block_options)
        self.layer3 = self._make_stage(block, 256, layers[2], 2, block_options)
        self.layer4 = self._make_stage(block, 512, layers[3], 2, block_options)
        self.avgpool = nn.GlobalAvgPool2d()
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        self.input_shape = IMAGENET_INPUT_SHAPE
        init_resnet_weights(self)

    def _make_stage(self, block, channels, count, stride, block_options):
        out_channels = channels * block.expansion
        downsample = None
        if stride != 1 or self.in_channels != out_channels:
            downsample = projection_shortcut(self.in_channels, out_channels, stride)
        blocks = [block(self.in_channels, channels, stride, downsample, **block_options)]
        blocks += [block(out_channels, channels, **block_options) for _ in range(count - 1)]
        self.in_channels = out_channels
        return nn.Sequential(*blocks)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x))


class CifarResNet(nn.Module):
    """He et al. Section 4.2: 3x3 conv (16), three stages of n basic blocks (16, 32, 64 channels), pool, fc.

    depth = 6n + 2. ``residual=False`` builds the plain counterpart (same layers, no shortcuts).
    Shortcuts that change shape use option A (``ZeroPadShortcut``), so both have the same parameters.
    """

    def __init__(self, depth, num_classes=10, residual=True):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CifarResNet: depth must be 6n+2 (20, 32, 44, 56, 110, ...), got {depth}")
        blocks_per_stage = (depth - 2) // 6
        self.conv1 = conv3x3(3, 16)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        self.layer1 = self._make_stage(16, 16, blocks_per_stage, 1, residual)
        self.layer2 = self._make_stage(16, 32, blocks_per_stage, 2, residual)
        self.layer3 = self._make_stage(32, 64, blocks_per_stage, 2, residual)
        self.avgpool = nn.GlobalAvgPool2d()
        self.fc = nn.Linear(64, num_classes)
        self.input_shape = CIFAR_INPUT_SHAPE
        init_resnet_weights(self)

    @staticmethod
    def _make_stage(in_channels, channels, count, stride, residual):
        downsample = None
        if residual and (stride != 1 or in_channels != channels):
            downsample = ZeroPadShortcut(in_channels, channels, stride)
        blocks = [BasicBlock(in_channels, channels, stride, downsample, residual)]
        blocks += [BasicBlock(channels, channels, residual=residual) for _ in range(count - 1)]
        return nn.Sequential(*blocks)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x))


@register("resnet18")
def resnet18(num_classes=1000, **options):
    """ResNet-18, 3x224x224; torchvision resnet18: 11,689,512 parameters."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes, **options)


@register("resnet34")
def resnet34(num_classes=1000, **options):
    """ResNet-34, 3x224x224; torchvision resnet34: 21,797,672 parameters."""
    return ResNet(BasicBlock, (3, 4, 6, 3), num_classes, **options)


@register("resnet50")
def resnet50(num_classes=1000, **options):
    """ResNet-50, 3x224x224; torchvision resnet50: 25,557,032 parameters. Option: stride_on="1x1"|"3x3"."""
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes, **options)


@register("resnet101")
def resnet101(num_classes=1000, **options):
    """ResNet-101, 3x224x224; torchvision resnet101: 44,549,160 parameters. Option: stride_on."""
    return ResNet(Bottleneck, (3, 4, 23, 3), num_classes, **options)


@register("resnet152")
def resnet152(num_classes=1000, **options):
    """ResNet-152, 3x224x224; torchvision resnet152: 60,192,808 parameters. Option: stride_on."""
    return ResNet(Bottleneck, (3, 8, 36, 3), num_classes, **options)


def _cifar_builder(depth, residual):
    kind = "ResNet" if residual else "plain net"

    def build(num_classes=10):
        return CifarResNet(depth, num_classes, residual=residual)

    build.__name__ = f"{'resnet' if residual else 'plain'}{depth}"
    build.__doc__ = (f"CIFAR {kind}-{depth} (He et al. Section 4.2), 3x32x32; "
                     f"{(depth - 2) // 6} basic blocks per stage, option-A shortcuts.")
    return build


for _depth in (20, 32, 44, 56, 110):
    register(f"resnet{_depth}")(_cifar_builder(_depth, residual=True))
    register(f"plain{_depth}")(_cifar_builder(_depth, residual=False))
