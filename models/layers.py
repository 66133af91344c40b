"""Two layers the zoo's torchvision variants need: adaptive average pooling (``tinycnn.nn.AdaptiveAvgPool2d``,
re-exported here) and Inception's input transform.

    >>> import numpy as np, tinycnn
    >>> AdaptiveAvgPool2d((3, 3))(tinycnn.Tensor(np.ones((1, 2, 1, 1), dtype=np.float32))).shape
    (1, 2, 3, 3)
"""
import numpy as np

import tinycnn.nn as nn
from tinycnn.backend import get_array_module
from tinycnn.functions.pool import averaging_matrix
from tinycnn.nn import AdaptiveAvgPool2d

__all__ = ["AdaptiveAvgPool2d", "TransformInput", "averaging_matrix"]


class TransformInput(nn.Module):
    """torchvision's ``transform_input`` of GoogLeNet and Inception v3: an image normalised with the
    ImageNet mean and std becomes one normalised as (x - 0.5) / 0.5, the normalisation those
    networks' released weights were trained with: x_c * std_c / 0.5 + (mean_c - 0.5) / 0.5.
    """

    mean = np.array([0.485, 0.456, 0.406])
    std = np.array([0.229, 0.224, 0.225])

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"TransformInput: expected (N, 3, H, W) images, got shape {tuple(x.shape)}")
        xp = get_array_module(x.data)
        scale = xp.asarray((self.std / 0.5).reshape(1, 3, 1, 1), dtype=x.dtype)
        shift = xp.asarray(((self.mean - 0.5) / 0.5).reshape(1, 3, 1, 1), dtype=x.dtype)
        return x * scale + shift
