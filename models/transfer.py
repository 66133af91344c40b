"""A zoo model for other classes: ``replace_head(model, num_classes)``.

The head is the layer that produces the logits: the last Linear (or Conv2d, as NIN's 1x1
``cccp`` layer) the model registers, outside any auxiliary classifier. GoogLeNet's and
Inception v3's auxiliary heads (their modules named ``aux...``) are replaced too, since they
predict the same classes during training.

    >>> import tinycnn.models as models
    >>> net = models.get("minivgg", num_classes=10)
    >>> replace_head(net, 5)
    ['classifier.predictions']
    >>> net.classifier.predictions.out_features
    5
"""
import numpy as np

import tinycnn.nn as nn
from tinycnn.nn import init


def _is_aux(name):
    return any(part.lower().startswith("aux") for part in name.split("."))


def find_head(model):
    """``(name, layer)`` of the layer producing ``model``'s logits (see the module docstring)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"find_head: expected a tinycnn.nn.Module, got {type(model).__name__}")
    layers = [(name, m) for name, m in model.named_modules()
              if isinstance(m, (nn.Linear, nn.Conv2d)) and not _is_aux(name)]
    if not layers:
        raise ValueError(f"find_head: {type(model).__name__} has no Linear or Conv2d layer to replace")
    return layers[-1]


def _classes_of(layer):
    return layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels


def _new_like(layer, num_classes):
    """A freshly initialised layer shaped as ``layer`` but with ``num_classes`` outputs, on its device and dtype."""
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, num_classes, bias=layer.bias is not None)
    else:
        new = nn.Conv2d(layer.in_channels, num_classes, layer.kernel_size, layer.stride, layer.padding,
                        layer.dilation, layer.groups, bias=layer.bias is not None)
        init.kaiming_normal_(new.weight)
        if new.bias is not None:
            init.zeros_(new.bias)
    return new.to(np.dtype(layer.weight.dtype)).to(layer.weight.device)


def replace_head(model, num_classes):
    """Put a new, freshly initialised classifier for ``num_classes`` classes in place of ``model``'s
    head (and of its auxiliary heads), keeping every other layer and its weights; returns the
    names of the layers replaced. Works for every model of ``tinycnn.models.available()``.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"replace_head: num_classes must be an int >= 1, got {num_classes!r}")
    head_name, head = find_head(model)
    old_classes = _classes_of(head)
    names = [name for name, m in model.named_modules()
             if isinstance(m, (nn.Linear, nn.Conv2d)) and _is_aux(name) and _classes_of(m) == old_classes]
    names.append(head_name)
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        # in the table itself: setattr would move the layer to the end of an nn.Sequential
        parent._modules[child] = _new_like(parent._modules[child], int(num_classes))
    for module in model.modules():
        if isinstance(module.__dict__.get("num_classes"), int):
            module.num_classes = int(num_classes)
    return names
