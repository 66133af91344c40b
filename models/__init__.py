"""The model zoo: every architecture of the lecture notes, built from tinycnn.nn and looked up by name.

    >>> import tinycnn.models as models
    >>> net = models.get("minivgg", num_classes=10)
    >>> net.input_shape
    (3, 32, 32)
    >>> [name for name in models.available() if name.startswith("vgg")]
    ['vgg11', 'vgg11_lrn', 'vgg13', 'vgg16', 'vgg16c', 'vgg19']

Each builder returns a Module with named layers and an ``input_shape`` attribute
(C, H, W) giving the input size it was built for; ``tinycnn.summary`` uses it.
``from_torchvision(name, state_dict)`` builds the zoo model in torchvision's variant and
loads torchvision's weights into it (``tinycnn.models.torchvision``).
"""
from .registry import register, get, available, resolve

# Importing a family module registers its builders.
from . import lenet, alexnet, vgg, minivgg, nin, googlenet, minigooglenet
from . import resnet, densenet, senet, resnext, xception, mobilenet, shufflenet, shufflenetv2
from .torchvision import from_torchvision, convert_torchvision, TORCHVISION_MODELS

__all__ = ["register", "get", "available", "resolve", "from_torchvision", "convert_torchvision",
           "TORCHVISION_MODELS"]
