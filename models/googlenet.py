"""GoogLeNet (Inception v1) and Inception v3.

GoogLeNet: Szegedy et al., "Going Deeper with Convolutions", CVPR 2015, Table 1 (the lecture
notes' table), 224x224 inputs:

    conv 7x7/2 64 -> max pool 3/2 -> LRN -> conv 1x1 64 -> conv 3x3 192 -> LRN -> max pool 3/2
    -> inception 3a, 3b -> max pool 3/2 -> 4a, 4b, 4c, 4d, 4e -> max pool 3/2 -> 5a, 5b
    -> avg pool 7x7 -> dropout 0.4 -> linear 1000

Each inception module concatenates a 1x1 branch, a 1x1-reduce + 3x3 branch, a 1x1-reduce +
5x5 branch and a 3x3 max pool + 1x1 projection branch (ReLU after every convolution). Max
pools round up (Caffe's ``ceil_mode``) so 112 -> 56 -> 28 -> 14 -> 7 as in the table. Two
auxiliary classifiers (avg pool 5x5/3, conv 1x1 128, fc 1024, dropout 0.7, fc) sit on 4a
and 4d; they run only in training, where ``forward`` returns ``(main, aux1, aux2)`` (the
paper weights the auxiliary losses by 0.3); in eval it returns the main logits only.
No BatchNorm unless ``batch_norm=True`` (then conv without bias -> BN -> ReLU, torchvision's
choice, without LRN).

Exact parameter counts, 1000 classes: main network 6,998,552; auxiliary classifiers
3,188,840 (on 4a) and 3,190,888 (on 4d); 13,378,280 in total. The paper's "params" column
is known to be inconsistent (2.7K for a 9,472-parameter first layer, 159K for a 163,696-
parameter 3a); the lecture notes' 6,797,700 is just that column's sum. ``batch_norm=True`` gives
7,005,832 without the auxiliary heads: torchvision's googlenet (6,624,904) plus 380,928,
because torchvision's "5x5" branches are 3x3 convolutions (a known quirk) and these are 5x5.
``variant="torchvision"`` builds torchvision's googlenet itself, for its weights
(``tinycnn.models.from_torchvision``): BatchNorm with eps 1e-3 and no LRN, 3x3 convolutions
in the "5x5" branches, a 2x2 last max pool, adaptive 4x4 pools in the auxiliary heads, a
global average pool and dropout 0.2; 6,624,904 parameters without the auxiliary heads,
13,004,888 with them, as torchvision counts them.
Multiply-adds of each inception module match the table's "ops" column (3a: 128.0 M,
5b: 70.7 M; checked in tests/test_models_classic.py).

Inception v3: Szegedy et al., "Rethinking the Inception Architecture for Computer Vision",
CVPR 2016, 299x299 inputs, laid out as torchvision's ``inception_v3`` (same module names,
so its weights map one to one) to compare with its published counts: 27,161,264 parameters
with the auxiliary classifier, 23,834,568 without (BatchNorm statistics not counted).

``transform_input=True`` (both networks) re-normalises ImageNet-normalised images as the
released torchvision weights of both expect (``models.layers.TransformInput``).

    >>> import tinycnn.models as models
    >>> net = models.get("googlenet")
    >>> net.input_shape, net.inception_3a.out_channels
    ((3, 224, 224), 256)
"""
import functools
from collections import OrderedDict

import tinycnn.functions as F
import tinycnn.nn as nn

from .layers import AdaptiveAvgPool2d, TransformInput
from .registry import register


def conv_layers(name, in_channels, out_channels, kernel_size, stride=1, padding=None, *, bias=True,
                batch_norm=False, activation=nn.ReLU, bn_after_activation=False, eps=1e-5):
    """Named layers of one convolution unit: [(name, conv), (name_bn, BN), (name_relu, act)].

    ``padding=None`` keeps the spatial size at stride 1 ((k - 1) / 2 per side, per axis).
    ``bn_after_activation`` gives conv -> act -> BN (the lecture notes' DeeperGoogLeNet experiment);
    ``eps`` is BatchNorm's.
    """
    kernel = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
    if padding is None:
        padding = (kernel[0] // 2, kernel[1] // 2)
    layers = [(name, nn.Conv2d(in_channels, out_channels, kernel, stride, padding, bias=bias))]
    norm = [(f"{name}_bn", nn.BatchNorm2d(out_channels, eps=eps))] if batch_norm else []
    act = [(f"{name}_{activation.__name__.lower()}", activation())]
    layers += act + norm if bn_after_activation else norm + act
    return layers


class Inception(nn.Module):
    """GoogLeNet's inception module with dimension reductions: four branches, concatenated.

    ``conv`` builds the named layers of one convolution unit (``conv_layers`` by default);
    ``kernel5x5=3`` is torchvision's quirk. Output channels: n1x1 + n3x3 + n5x5 + pool_proj.
    """

    def __init__(self, in_channels, n1x1, n3x3_reduce, n3x3, n5x5_reduce, n5x5, pool_proj, conv=conv_layers,
                 kernel5x5=5):
        super().__init__()
        self.branch1x1 = nn.Sequential(OrderedDict(conv("conv", in_channels, n1x1, 1)))
        self.branch3x3 = nn.Sequential(OrderedDict(conv("reduce", in_channels, n3x3_reduce, 1)
                                                   + conv("conv", n3x3_reduce, n3x3, 3)))
        self.branch5x5 = nn.Sequential(OrderedDict(conv("reduce", in_channels, n5x5_reduce, 1)
                                                   + conv("conv", n5x5_reduce, n5x5, kernel5x5)))
        self.branch_pool = nn.Sequential(OrderedDict([("pool", nn.MaxPool2d(3, 1, padding=1))]
                                                     + conv("proj", in_channels, pool_proj, 1)))
        self.out_channels = n1x1 + n3x3 + n5x5 + pool_proj

    def forward(self, x):
        return F.concat([self.branch1x1(x), self.branch3x3(x), self.branch5x5(x), self.branch_pool(x)], axis=1)


# The lecture notes' table: name -> (in_channels, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj).
GOOGLENET_INCEPTIONS = OrderedDict([
    ("3a", (192, 64, 96, 128, 16, 32, 32)),
    ("3b", (256, 128, 128, 192, 32, 96, 64)),
    ("4a", (480, 192, 96, 208, 16, 48, 64)),
    ("4b", (512, 160, 112, 224, 24, 64, 64)),
    ("4c", (512, 128, 128, 256, 24, 64, 64)),
    ("4d", (512, 112, 144, 288, 32, 64, 64)),
    ("4e", (528, 256, 160, 320, 32, 128, 128)),
    ("5a", (832, 256, 160, 320, 32, 128, 128)),
    ("5b", (832, 384, 192, 384, 48, 128, 128)),
])


class AuxClassifier(nn.Module):
    """GoogLeNet's auxiliary head: avg pool 5x5/3 (14 -> 4), conv 1x1 128, fc 1024, dropout 0.7, fc.

    ``adaptive_pool=True`` pools with torchvision's adaptive 4x4 windows instead (other windows at 14x14).
    """

    def __init__(self, in_channels, num_classes, conv=conv_layers, adaptive_pool=False):
        super().__init__()
        self.layers = nn.Sequential(OrderedDict(
            [("pool", AdaptiveAvgPool2d(4) if adaptive_pool else nn.AvgPool2d(5, 3))]
            + conv("conv", in_channels, 128, 1)
            + [("flatten", nn.Flatten()),                    # 2048 = 128 x 4 x 4
               ("fc1", nn.Linear(128 * 4 * 4, 1024)),
               ("fc1_relu", nn.ReLU()),
               ("dropout", nn.Dropout(0.7)),
               ("fc2", nn.Linear(1024, num_classes))]))

    def forward(self, x):
        return self.layers(x)


class GoogLeNet(nn.Module):
    """``variant`` "paper" (``batch_norm`` optional) or "torchvision" (see the module docstring)."""

    def __init__(self, num_classes=1000, aux_logits=True, batch_norm=False, dropout=0.4, variant="paper",
                 transform_input=False):
        super().__init__()
        if variant not in ("paper", "torchvision"):
            raise ValueError(f"GoogLeNet: variant must be 'paper' or 'torchvision', got {variant!r}")
        torchvision = variant == "torchvision"
        batch_norm = batch_norm or torchvision
        conv = functools.partial(conv_layers, bias=not batch_norm, batch_norm=batch_norm,
                                 eps=1e-3 if torchvision else 1e-5)
        self.transform = TransformInput() if transform_input else None

        def lrn(name):   # LRN only in the original (no BatchNorm) network
            return [] if batch_norm else [(name, nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0))]

        self.stem = nn.Sequential(OrderedDict(
            conv("conv1", 3, 64, 7, stride=2, padding=3)                         # 64 x 112 x 112
            + [("pool1", nn.MaxPool2d(3, 2, ceil_mode=True))]                    # 64 x 56 x 56
            + lrn("norm1")
            + conv("conv2_reduce", 64, 64, 1)
            + conv("conv2", 64, 192, 3)                                          # 192 x 56 x 56
            + lrn("norm2")
            + [("pool2", nn.MaxPool2d(3, 2, ceil_mode=True))]))                 # 192 x 28 x 28
        for name, config in GOOGLENET_INCEPTIONS.items():
            setattr(self, f"inception_{name}", Inception(*config, conv=conv, kernel5x5=3 if torchvision else 5))
            if name == "3b":
                self.pool3 = nn.MaxPool2d(3, 2, ceil_mode=True)                  # 480 x 14 x 14
            if name == "4e":
                self.pool4 = nn.MaxPool2d(2 if torchvision else 3, 2, ceil_mode=True)  # 832 x 7 x 7
        self.aux_logits = aux_logits
        if aux_logits:
            self.aux1 = AuxClassifier(512, num_classes, conv, adaptive_pool=torchvision)
            self.aux2 = AuxClassifier(528, num_classes, conv, adaptive_pool=torchvision)
        self.avgpool = nn.GlobalAvgPool2d() if torchvision else nn.AvgPool2d(7, 1)  # 1024 x 1 x 1
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)
        self.input_shape = (3, 224, 224)

    def forward(self, x):
        x = self.stem(x if self.transform is None else self.transform(x))
        x = self.inception_3b(self.inception_3a(x))
        x = self.inception_4a(self.pool3(x))
        aux1 = self.aux1(x) if self.aux_logits and self.training else None
        x = self.inception_4d(self.inception_4c(self.inception_4b(x)))
        aux2 = self.aux2(x) if self.aux_logits and self.training else None
        x = self.pool4(self.inception_4e(x))
        x = self.inception_5b(self.inception_5a(x))
        logits = self.fc(self.dropout(self.flatten(self.avgpool(x))))
        return (logits, aux1, aux2) if aux1 is not None else logits


@register("googlenet", aliases=("inception_v1",))
def googlenet(num_classes=1000, aux_logits=True, batch_norm=False, dropout=0.4, variant="paper",
              transform_input=False):
    """GoogLeNet; in training mode with ``aux_logits`` it returns (main, aux1, aux2) logits.
    Options: ``variant="torchvision"``, ``transform_input`` (see the module docstring)."""
    return GoogLeNet(num_classes, aux_logits, batch_norm, dropout, variant, transform_input)


# ----- Inception v3 --------------------------------------------------------------------------

class BasicConv2d(nn.Module):
    """conv (no bias) -> BN (eps 1e-3) -> ReLU; attribute names as torchvision's, so weights map."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


def _avg_pool_3x3():
    return nn.AvgPool2d(3, 1, padding=1)


class InceptionModuleA(nn.Module):
    """35x35 module (paper's Figure 5; torchvision's InceptionA): the 5x5 is factorised into two
    3x3 (``branch3x3dbl``); the released network also keeps a 1x1 + 5x5 branch, kept here too.

    Output channels: 64 + 64 + 96 + pool_features.
    """

    def __init__(self, in_channels, pool_features):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, 1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.pool = _avg_pool_3x3()
        self.branch_pool = BasicConv2d(in_channels, pool_features, 1)

    def forward(self, x):
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return F.concat([self.branch1x1(x), branch5x5, branch3x3dbl, self.branch_pool(self.pool(x))], axis=1)


class GridReduction35to17(nn.Module):
    """35x35 -> 17x17 reduction (paper's Figure 10; torchvision's InceptionB): stride-2 conv
    branches beside a stride-2 max pool, so the grid shrinks while the filter bank widens.

    Output channels: 384 + 96 + in_channels (768 for 288 in).
    """

    def __init__(self, in_channels):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)
        self.pool = nn.MaxPool2d(3, 2)

    def forward(self, x):
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return F.concat([self.branch3x3(x), branch3x3dbl, self.pool(x)], axis=1)


class InceptionModuleB(nn.Module):
    """17x17 module (paper's Figure 6; torchvision's InceptionC): n x n convolutions factorised
    into 1 x n then n x 1 (n = 7), which costs 2n instead of n^2 weights per channel pair.

    Output channels: 4 x 192 = 768.
    """

    def __init__(self, in_channels, channels_7x7):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.pool = _avg_pool_3x3()
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x):
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        branch7x7dbl = x
        for index in range(1, 6):
            branch7x7dbl = getattr(self, f"branch7x7dbl_{index}")(branch7x7dbl)
        return F.concat([self.branch1x1(x), branch7x7, branch7x7dbl, self.branch_pool(self.pool(x))], axis=1)


class GridReduction17to8(nn.Module):
    """17x17 -> 8x8 reduction (torchvision's InceptionD). Output channels: 320 + 192 + in_channels."""

    def __init__(self, in_channels):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)
        self.pool = nn.MaxPool2d(3, 2)

    def forward(self, x):
        branch3x3 = self.branch3x3_2(self.branch3x3_1(x))
        branch7x7x3 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return F.concat([branch3x3, branch7x7x3, self.pool(x)], axis=1)


class InceptionModuleC(nn.Module):
    """8x8 module with expanded filter banks (paper's Figure 7; torchvision's InceptionE): the
    3x3 outputs split into parallel 1x3 and 3x1 convolutions, widening instead of deepening.

    Output channels: 320 + 2 x 384 + 2 x 384 + 192 = 2048.
    """

    def __init__(self, in_channels):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 320, 1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.pool = _avg_pool_3x3()
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x):
        branch3x3 = self.branch3x3_1(x)
        branch3x3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        return F.concat([self.branch1x1(x),
                         self.branch3x3_2a(branch3x3), self.branch3x3_2b(branch3x3),
                         self.branch3x3dbl_3a(branch3x3dbl), self.branch3x3dbl_3b(branch3x3dbl),
                         self.branch_pool(self.pool(x))], axis=1)


class InceptionAux(nn.Module):
    """Auxiliary classifier on the 17x17x768 grid: avg pool 5x5/3 -> 1x1 128 -> 5x5 768 -> fc."""

    def __init__(self, in_channels, num_classes):
        super().__init__()
        self.pool = nn.AvgPool2d(5, 3)                      # 768 x 5 x 5
        self.conv0 = BasicConv2d(in_channels, 128, 1)
        self.conv1 = BasicConv2d(128, 768, 5)               # 768 x 1 x 1
        self.global_pool = nn.GlobalAvgPool2d()
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x):
        return self.fc(self.global_pool(self.conv1(self.conv0(self.pool(x)))))


class InceptionV3(nn.Module):
    """Inception v3 for 299x299 inputs (module names as torchvision's ``Inception3``).

    In training with ``aux_logits`` the forward returns ``(main, aux)`` logits, else ``main``.
    The global average pool lets smaller inputs (down to 75x75) run without the auxiliary head.
    """

    def __init__(self, num_classes=1000, aux_logits=True, dropout=0.5, transform_input=False):
        super().__init__()
        self.transform = TransformInput() if transform_input else None
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)        # 32 x 149 x 149
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)                 # 32 x 147 x 147
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)      # 64 x 147 x 147
        self.maxpool1 = nn.MaxPool2d(3, 2)                          # 64 x 73 x 73
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)                 # 80 x 73 x 73
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)                # 192 x 71 x 71
        self.maxpool2 = nn.MaxPool2d(3, 2)                          # 192 x 35 x 35
        self.Mixed_5b = InceptionModuleA(192, pool_features=32)     # 256 x 35 x 35
        self.Mixed_5c = InceptionModuleA(256, pool_features=64)     # 288
        self.Mixed_5d = InceptionModuleA(288, pool_features=64)     # 288
        self.Mixed_6a = GridReduction35to17(288)                    # 768 x 17 x 17
        self.Mixed_6b = InceptionModuleB(768, channels_7x7=128)
        self.Mixed_6c = InceptionModuleB(768, channels_7x7=160)
        self.Mixed_6d = InceptionModuleB(768, channels_7x7=160)
        self.Mixed_6e = InceptionModuleB(768, channels_7x7=192)
        self.aux_logits = aux_logits
        if aux_logits:
            self.AuxLogits = InceptionAux(768, num_classes)
        self.Mixed_7a = GridReduction17to8(768)                     # 1280 x 8 x 8
        self.Mixed_7b = InceptionModuleC(1280)                      # 2048 x 8 x 8
        self.Mixed_7c = InceptionModuleC(2048)
        self.avgpool = nn.GlobalAvgPool2d()                         # (N, 2048)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(2048, num_classes)
        self.input_shape = (3, 299, 299)

    def forward(self, x):
        x = x if self.transform is None else self.transform(x)
        for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
                     "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d",
                     "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):
            x = getattr(self, name)(x)
        aux = self.AuxLogits(x) if self.aux_logits and self.training else None
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))
        logits = self.fc(self.dropout(self.avgpool(x)))
        return (logits, aux) if aux is not None else logits


@register("inception_v3", aliases=("inceptionv3",))
def inception_v3(num_classes=1000, aux_logits=True, dropout=0.5, transform_input=False):
    """Inception v3 (27,161,264 parameters with the auxiliary classifier, 23,834,568 without).
    Option ``transform_input`` (see the module docstring)."""
    return InceptionV3(num_classes, aux_logits, dropout, transform_input)
