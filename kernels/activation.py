"""Dispatch of ReLU's elementwise kernels: its output, and its gradient read from that output.

    >>> import numpy as np
    >>> from tinycnn import kernels
    >>> y = kernels.relu_forward(np.array([-1.0, 0.0, 2.0]))
    >>> y.tolist(), kernels.relu_backward(np.ones(3), y).tolist()
    ([0.0, 0.0, 2.0], [0.0, 0.0, 1.0])
"""
from .dispatch import _check_float, _check_same_dtype, _check_shape, _run


def relu_forward(x):
    """y = max(x, 0) elementwise, in x's dtype; NaN stays NaN (as PyTorch's)."""
    _check_float("relu_forward", "x", x)
    return _run("relu_forward", x)


def relu_backward(gy, y):
    """gx = gy where ReLU's output y > 0, else 0 (NaN outputs pass no gradient)."""
    name = "relu_backward"
    _check_float(name, "gy", gy)
    _check_float(name, "y", y)
    _check_same_dtype(name, gy=gy, y=y)
    _check_shape(name, "y", y, gy.shape)
    return _run(name, gy, y)
