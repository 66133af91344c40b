"""MiniVGG and MiniGoogLeNet in PyTorch, layer for layer as tinycnn's zoo builds them.

Used only by the benchmarks as the reference implementation.
"""
import torch
from torch import nn


def minivgg(in_channels=3, num_classes=10, size=32):
    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(cout),
                nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(cout),
                nn.MaxPool2d(2), nn.Dropout(0.25)]
    return nn.Sequential(*block(in_channels, 32), *block(32, 64), nn.Flatten(),
                         nn.Linear(64 * (size // 4) ** 2, 512), nn.ReLU(), nn.BatchNorm1d(512),
                         nn.Dropout(0.5), nn.Linear(512, num_classes))


class ConvModule(nn.Sequential):
    def __init__(self, cin, cout, k, stride=1, padding="same"):
        super().__init__(nn.Conv2d(cin, cout, k, stride, padding), nn.BatchNorm2d(cout), nn.ReLU())


class Inception(nn.Module):
    def __init__(self, cin, n1, n3):
        super().__init__()
        self.one, self.three = ConvModule(cin, n1, 1), ConvModule(cin, n3, 3)

    def forward(self, x):
        return torch.cat([self.one(x), self.three(x)], 1)


class Downsample(nn.Module):
    def __init__(self, cin, n3):
        super().__init__()
        self.conv, self.pool = ConvModule(cin, n3, 3, 2, 0), nn.MaxPool2d(3, 2)

    def forward(self, x):
        return torch.cat([self.conv(x), self.pool(x)], 1)


def minigooglenet(in_channels=3, num_classes=10):
    return nn.Sequential(
        ConvModule(in_channels, 96, 3),
        Inception(96, 32, 32), Inception(64, 32, 48), Downsample(80, 80),
        Inception(160, 112, 48), Inception(160, 96, 64), Inception(160, 80, 80), Inception(160, 48, 96),
        Downsample(144, 96),
        Inception(240, 176, 160), Inception(336, 176, 160),
        nn.AvgPool2d(7), nn.Dropout(0.5), nn.Flatten(), nn.Linear(336, num_classes))


BUILDERS = {"minivgg": minivgg, "minigooglenet": minigooglenet}
