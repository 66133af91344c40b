"""ShuffleNet (v1): Zhang, Zhou, Lin, Sun, "ShuffleNet: An Extremely Efficient Convolutional Neural
Network for Mobile Devices", CVPR 2018.

A ShuffleNet unit (the paper's Figure 2) is a bottleneck whose two 1x1 convolutions are
grouped; a channel shuffle after the first lets information cross the groups:

    1x1 group conv (bottleneck = out/4) - BN - ReLU - channel shuffle
    - 3x3 depthwise conv (stride 1 or 2) - BN - 1x1 group conv - BN

At stride 1 the input is added; at stride 2 the branch makes ``out - in`` channels and is
concatenated with a 3x3/2 average pool of the input. ReLU follows either way. As in the
paper, the first 1x1 conv of stage 2 is not grouped (its input has only 24 channels).

Table 1, scale factor 1.0: conv1 3x3/2 (24), 3x3/2 max pool, stages 2/3/4 of 4/8/4 units
(the first with stride 2), global pool, fc. Output channels of stages 2, 3, 4:

    groups   1     2     3     4     8
    stage 2  144   200   240   272   384   (x2 at stage 3, x4 at stage 4)

Native input 3x224x224. The paper gives no parameter counts, so none is matched exactly:
here ``groups=3`` has 1,865,728 parameters and ``groups=8`` 2,434,768 (fc with bias, BN
running statistics excluded), where Megvii's reference models report 1.9 M and 2.4 M.
Multiply-adds at 224x224 (convolutions and fc) match Table 1's complexity row: 143/141/137/134/138 M
for groups 1/2/3/4/8, against the paper's 143/140/137/133/137 MFLOPs.

    >>> import tinycnn.models as models
    >>> net = models.get("shufflenet", groups=8, num_classes=10)
    >>> net.stage2[0].conv1
    Conv2d(24, 96, kernel_size=(1, 1), stride=1, padding=0, bias=False)
"""
import tinycnn.functions as F
import tinycnn.nn as nn

from .registry import register

STAGE2_CHANNELS = {1: 144, 2: 200, 3: 240, 4: 272, 8: 384}
STAGE_REPEATS = (4, 8, 4)


class ShuffleUnit(nn.Module):
    """One ShuffleNet unit; ``first_groups`` is the grouping of the first 1x1 conv (1 at the start of stage 2)."""

    def __init__(self, in_channels, out_channels, groups, stride, first_groups=None):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"ShuffleUnit: stride must be 1 or 2, got {stride}")
        bottleneck = out_channels // 4
        branch_channels = out_channels - in_channels if stride == 2 else out_channels
        self.groups, self.stride = groups, stride
        self.conv1 = nn.Conv2d(in_channels, bottleneck, 1, groups=groups if first_groups is None else first_groups,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(bottleneck)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(bottleneck, bottleneck, 3, stride=stride, padding=1, groups=bottleneck, bias=False)
        self.bn2 = nn.BatchNorm2d(bottleneck)
        self.conv3 = nn.Conv2d(bottleneck, branch_channels, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(branch_channels)
        self.shortcut = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else nn.Identity()

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        if self.groups > 1:
            out = F.channel_shuffle(out, self.groups)
        out = self.bn3(self.conv3(self.bn2(self.conv2(out))))
        if self.stride == 2:
            out = F.concat([self.shortcut(x), out], axis=1)
        else:
            out = self.shortcut(x) + out
        return self.relu(out)


class ShuffleNet(nn.Module):
    """conv1 - maxpool - ``stage2``/``stage3``/``stage4`` - global pool - ``fc`` (Table 1, scale 1.0)."""

    def __init__(self, num_classes=1000, groups=3):
        super().__init__()
        if groups not in STAGE2_CHANNELS:
            raise ValueError(f"ShuffleNet: groups must be one of {sorted(STAGE2_CHANNELS)}, got {groups!r}")
        self.groups = groups
        self.conv1 = nn.Conv2d(3, 24, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        channels = 24
        for stage, repeats in enumerate(STAGE_REPEATS, start=2):
            out_channels = STAGE2_CHANNELS[groups] * 2 ** (stage - 2)
            units = [ShuffleUnit(channels, out_channels, groups, 2, first_groups=1 if stage == 2 else None)]
            units += [ShuffleUnit(out_channels, out_channels, groups, 1) for _ in range(repeats - 1)]
            setattr(self, f"stage{stage}", nn.Sequential(*units))
            channels = out_channels
        self.globalpool = nn.GlobalAvgPool2d()
        self.fc = nn.Linear(channels, num_classes)
        self.input_shape = (3, 224, 224)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.stage4(self.stage3(self.stage2(x)))
        return self.fc(self.globalpool(x))


@register("shufflenet", aliases=("shufflenet_v1",))
def shufflenet(num_classes=1000, groups=3):
    """ShuffleNet v1 1x, 3x224x224; option groups = 1, 2, 3 (default), 4 or 8."""
    return ShuffleNet(num_classes, groups)
