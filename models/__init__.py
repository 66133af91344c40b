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
loads torchvision's weights into it (``tinycnn.models.torchvision``); ``from_keras(name, path)``
builds a zoo model and loads a Keras file into it. ``replace_head(model, num_classes)`` puts a new
classifier on any zoo model (``tinycnn.models.transfer``).
"""
from .registry import register, get, available, resolve

# Importing a family module registers its builders.
from . import lenet, alexnet, vgg, minivgg, nin, googlenet, minigooglenet
from . import resnet, densenet, senet, resnext, xception, mobilenet, shufflenet, shufflenetv2
from .torchvision import from_torchvision, convert_torchvision, TORCHVISION_MODELS
from .transfer import replace_head, find_head


def from_keras(name, path, num_classes=None, strict=True, **options):
    """The zoo model ``name`` (minivgg, vgg16 or resnet50: the ones ``tinycnn.io.load_keras`` maps) built
    with ``options`` and holding the weights of the Keras file ``path`` (.h5, .weights.h5, .keras).

    ``num_classes=None`` reads it from the file's last Dense layer. Raises what load_keras raises
    (CheckpointError naming the file and the layer) when the file does not fit the model.
    """
    from tinycnn.io import load_keras

    model = get(name, num_classes=keras_classes(path) if num_classes is None else num_classes, **options)
    load_keras(path, model, strict=strict)
    return model


def keras_classes(path):
    """The outputs of a Keras file's last Dense layer: the one whose outputs feed no other Dense layer."""
    from tinycnn.io import read_keras

    kernels = [arrays[0].shape for arrays in read_keras(path).values() if len(arrays) and arrays[0].ndim == 2]
    last = {out for _, out in kernels} - {inputs for inputs, _ in kernels}
    if len(last) != 1:
        raise ValueError(f"from_keras: cannot tell the number of classes from the Dense layers of {path!r} "
                         f"(kernels {kernels}); pass num_classes")
    return int(last.pop())


__all__ = ["register", "get", "available", "resolve", "from_torchvision", "convert_torchvision",
           "TORCHVISION_MODELS", "replace_head", "find_head", "from_keras"]
