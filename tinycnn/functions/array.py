"""Joining, splitting and rearranging tensors.

    >>> import numpy as np, tinycnn, tinycnn.functions as F
    >>> a, b = tinycnn.Tensor(np.zeros((2, 3, 4, 4))), tinycnn.Tensor(np.ones((2, 5, 4, 4)))
    >>> F.concat([a, b], axis=1).shape
    (2, 8, 4, 4)
"""
import numbers

import numpy as np

from .. import parallel
from ..backend import get_array_module
from ..tensor import Function, Tensor
from .math import reshape, transpose
from .validate import require_ndim


class Concat(Function):
    """On the CPU, concatenation along an axis other than the batch copies each image's part on
    the worker threads (tinycnn.parallel), and backward hands back C-contiguous gradients,
    copied the same way, which the kernels that receive them would otherwise copy one by one
    on one thread."""

    saved_inputs, saves_outputs = (), False

    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        self.bounds = np.cumsum([x.shape[self.axis] for x in xs])[:-1]
        xp = get_array_module(xs[0])
        if xp is not np or self.axis == 0:
            return xp.concatenate(xs, axis=self.axis)
        shape = list(xs[0].shape)
        shape[self.axis] = sum(x.shape[self.axis] for x in xs)
        y = np.empty(shape, np.result_type(*xs))
        _copy_by_images(xs, np.split(y, self.bounds, axis=self.axis))
        return y

    def backward(self, gy):
        xp = get_array_module(gy)
        parts = xp.split(gy, self.bounds, axis=self.axis)
        if xp is not np or self.axis == 0:
            return tuple(parts)
        gxs = tuple(np.empty(part.shape, gy.dtype) for part in parts)
        _copy_by_images(parts, gxs)
        return gxs


def _copy_by_images(sources, targets):
    """targets[i][...] = sources[i] for every i, the images (axis 0) shared by the worker threads."""
    def copy(images):
        for part in images:
            for source, target in zip(sources, targets):
                np.copyto(target[part], source[part])
    n = sources[0].shape[0]
    step = -(-n // parallel.workers())
    parallel.map_parts(copy, [slice(start, start + step) for start in range(0, n, step)])


class Split(Function):
    saved_inputs, saves_outputs = (), False

    def __init__(self, bounds, axis):
        self.bounds, self.axis = bounds, axis

    def forward(self, x):
        return tuple(get_array_module(x).split(x, self.bounds, axis=self.axis))

    def backward(self, *gys):
        return get_array_module(gys[0]).concatenate(gys, axis=self.axis)


class Pad(Function):
    saved_inputs, saves_outputs = (), False

    def __init__(self, pad_width, value):
        self.pad_width, self.value = pad_width, value

    def forward(self, x):
        xp = get_array_module(x)
        return xp.pad(x, self.pad_width, mode="constant", constant_values=self.value)

    def backward(self, gy):
        return gy[tuple(slice(before, gy.shape[i] - after) for i, (before, after) in enumerate(self.pad_width))]


def concat(xs, axis=1):
    """Join tensors along ``axis`` (default 1, channels); other dimensions must agree."""
    xs = [x if isinstance(x, Tensor) else Tensor(x) for x in xs]
    if not xs:
        raise ValueError("concat: expected at least one tensor, got none")
    ndim = xs[0].ndim
    axis = axis % ndim
    for x in xs:
        if x.ndim != ndim or any(x.shape[i] != xs[0].shape[i] for i in range(ndim) if i != axis):
            raise ValueError(f"concat: shapes differ outside axis {axis}: {[tuple(t.shape) for t in xs]}")
        if x.dtype != xs[0].dtype:
            raise TypeError(f"concat: tensors must share one dtype, got {sorted({str(t.dtype) for t in xs})}")
    return Concat(axis)(*xs)


def split(x, sections, axis=1):
    """Split into equal parts (an int) or parts of the given sizes (a list), as torch.split."""
    size = x.shape[axis]
    if isinstance(sections, numbers.Integral):
        if sections <= 0 or size % sections:
            raise ValueError(f"split: cannot cut axis {axis} of size {size} into {sections} equal parts")
        sizes = [size // sections] * sections
    else:
        sizes = list(sections)
        if sum(sizes) != size or any(s <= 0 for s in sizes):
            raise ValueError(f"split: sizes {sizes} must be positive and add up to {size} (axis {axis})")
    return Split(list(np.cumsum(sizes)[:-1]), axis)(x)


def flatten(x, start_dim=1):
    """Flatten every dimension from ``start_dim`` on: (N, C, H, W) -> (N, C*H*W)."""
    return x.flatten(start_dim=start_dim)


def pad(x, pad_width, value=0.0):
    """Constant padding; ``pad_width`` is NumPy's ((before, after), ...) per dimension."""
    pad_width = tuple((int(a), int(b)) for a, b in pad_width)
    if len(pad_width) != x.ndim or any(a < 0 or b < 0 for a, b in pad_width):
        raise ValueError(f"pad: expected {x.ndim} non-negative (before, after) pairs, got {pad_width}")
    return Pad(pad_width, value)(x)


def channel_shuffle(x, groups):
    """ShuffleNet's channel shuffle: (N, G*K, H, W) -> view (N, G, K, H, W) -> swap G, K -> back."""
    require_ndim("channel_shuffle", x, 4, "(N, C, H, W)")
    n, c, h, w = x.shape
    if groups <= 0 or c % groups:
        raise ValueError(f"channel_shuffle: groups ({groups}) must divide the {c} channels")
    y = reshape(x, (n, groups, c // groups, h, w))
    return reshape(transpose(y, (0, 2, 1, 3, 4)), (n, c, h, w))
