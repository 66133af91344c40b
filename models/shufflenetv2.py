"""ShuffleNet v2: Ma, Zhang, Zheng, Sun, "ShuffleNet V2: Practical Guidelines for Efficient CNN
Architecture Design", ECCV 2018; laid out as torchvision's ``shufflenet_v2_x*`` (same module
names, so its weights map one to one).

Where v1 (``shufflenet.py``) groups its 1x1 convolutions, v2 splits the channels: a unit at
stride 1 passes one half through untouched and sends the other through 1x1 conv - BN - ReLU
- 3x3 depthwise conv - BN - 1x1 conv - BN - ReLU, at equal widths (the paper's guidelines:
equal channel widths, no group convolutions, few branches, few element-wise ops). At
stride 2 both halves are the whole input: ``branch1`` (3x3 depthwise/2 - BN - 1x1 - BN -
ReLU) and ``branch2``, doubling the channels. The two halves are concatenated and shuffled
(two groups), so the next unit's split mixes them.

Table 5, widths 0.5x / 1x / 1.5x / 2x: conv1 3x3/2 (24), 3x3/2 max pool, stages 2/3/4 of
4/8/4 units with 48/116/176/244 channels at stage 2 (doubling per stage), conv5 1x1
(1024, 2048 at 2x), global pool, fc. Native input 3x224x224. Parameters with 1000 classes,
as torchvision counts them (BN running statistics excluded): 1,366,792 / 2,278,604 /
3,503,624 / 7,393,996.

    >>> import tinycnn.models as models
    >>> net = models.get("shufflenet_v2_x1_0", num_classes=10)
    >>> net.stage2[1].branch2[3]
    Conv2d(58, 58, kernel_size=(3, 3), stride=1, padding=1, groups=58, bias=False)
"""
import tinycnn.functions as F
import tinycnn.nn as nn

from .registry import register

STAGE_REPEATS = (4, 8, 4)
# width -> output channels of conv1, stages 2, 3, 4 and conv5 (torchvision's stages_out_channels)
STAGE_CHANNELS = {0.5: (24, 48, 96, 192, 1024), 1.0: (24, 116, 232, 464, 1024),
                  1.5: (24, 176, 352, 704, 1024), 2.0: (24, 244, 488, 976, 2048)}


def conv_bn(in_channels, out_channels, kernel_size, stride=1, groups=1, relu=True):
    """Conv (no bias, padding (k-1)/2) - BN [- ReLU] as a list of layers."""
    layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2,
                        groups=groups, bias=False),
              nn.BatchNorm2d(out_channels)]
    return layers + [nn.ReLU()] if relu else layers


class ShuffleV2Unit(nn.Module):
    """One ShuffleNet v2 unit (the paper's Figure 3 (c) at stride 1, (d) at stride 2)."""

    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"ShuffleV2Unit: stride must be 1 or 2, got {stride}")
        if stride == 1 and in_channels != out_channels:
            raise ValueError(f"ShuffleV2Unit: at stride 1 the unit keeps its width, "
                             f"got {in_channels} -> {out_channels}")
        half = out_channels // 2
        self.stride = stride
        if stride == 2:
            self.branch1 = nn.Sequential(*conv_bn(in_channels, in_channels, 3, 2, groups=in_channels, relu=False),
                                         *conv_bn(in_channels, half, 1))
        self.branch2 = nn.Sequential(*conv_bn(in_channels if stride == 2 else half, half, 1),
                                     *conv_bn(half, half, 3, stride, groups=half, relu=False),
                                     *conv_bn(half, half, 1))

    def forward(self, x):
        if self.stride == 1:
            kept, x = F.split(x, 2, axis=1)
            out = F.concat([kept, self.branch2(x)], axis=1)
        else:
            out = F.concat([self.branch1(x), self.branch2(x)], axis=1)
        return F.channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    """``conv1`` - maxpool - ``stage2``/``stage3``/``stage4`` - ``conv5`` - global pool - ``fc``."""

    def __init__(self, num_classes=1000, width_mult=1.0):
        super().__init__()
        if width_mult not in STAGE_CHANNELS:
            raise ValueError(f"ShuffleNetV2: width_mult must be one of {sorted(STAGE_CHANNELS)}, got {width_mult!r}")
        channels = STAGE_CHANNELS[width_mult]
        self.conv1 = nn.Sequential(*conv_bn(3, channels[0], 3, stride=2))
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        for stage, (repeats, in_channels, out_channels) in enumerate(
                zip(STAGE_REPEATS, channels[:3], channels[1:4]), start=2):
            units = [ShuffleV2Unit(in_channels, out_channels, 2)]
            units += [ShuffleV2Unit(out_channels, out_channels, 1) for _ in range(repeats - 1)]
            setattr(self, f"stage{stage}", nn.Sequential(*units))
        self.conv5 = nn.Sequential(*conv_bn(channels[3], channels[4], 1))
        self.globalpool = nn.GlobalAvgPool2d()
        self.fc = nn.Linear(channels[4], num_classes)
        self.input_shape = (3, 224, 224)

    def forward(self, x):
        x = self.maxpool(self.conv1(x))
        x = self.conv5(self.stage4(self.stage3(self.stage2(x))))
        return self.fc(self.globalpool(x))


def _builder(width_mult):
    def build(num_classes=1000):
        return ShuffleNetV2(num_classes, width_mult)
    build.__name__ = f"shufflenet_v2_x{str(width_mult).replace('.', '_')}"
    build.__doc__ = f"ShuffleNet v2 {width_mult}x (torchvision's layout), 3x224x224."
    return build


for _width in STAGE_CHANNELS:
    register(f"shufflenet_v2_x{str(_width).replace('.', '_')}",
             aliases=("shufflenet_v2",) if _width == 1.0 else ())(_builder(_width))
