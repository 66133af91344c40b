"""Layers with parameters, built on tinycnn.functions.

    >>> import tinycnn.nn as nn
    >>> sum(p.numel() for p in nn.Linear(10, 5).parameters())
    55
"""
from .module import Module, Parameter, register_global_forward_hook
from .containers import Sequential, ModuleList, ModuleDict
from .layers import (Conv2d, Linear, MaxPool2d, AvgPool2d, GlobalAvgPool2d, LocalResponseNorm,
                     BatchNorm1d, BatchNorm2d, Dropout, ReLU, LeakyReLU, ELU, Sigmoid, Tanh,
                     Softmax, Flatten, Identity)
from .activation_layers import ReLU6, ZeroPad2d
from .fusion import fuse, BatchNormReLU1d, BatchNormReLU2d, ReLUBatchNorm1d, ReLUBatchNorm2d
from .adaptive import AdaptiveAvgPool2d
from . import init, utils
