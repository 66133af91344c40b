"""Ops that move values without computing on them: reshape, transpose, indexing, and the
dtype and device conversions. Each gradient routes ``gy`` back the same way, reversed.

    >>> import numpy as np, tinycnn, tinycnn.functions as F
    >>> x = tinycnn.Tensor(np.arange(6, dtype=np.float32).reshape(2, 3), requires_grad=True)
    >>> F.getitem(x, (slice(None), [0, 0])).sum().backward()    # column 0 taken twice
    >>> x.grad
    array([[2., 0., 0.],
           [2., 0., 0.]], dtype=float32)
"""
import numpy as np

from ..backend import get_array_module, to_device as _move
from ..tensor import Function, Tensor


class Reshape(Function):
    saved_inputs, saves_outputs = (), False

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        return gy.reshape(self.in_shape)


class Transpose(Function):
    saved_inputs, saves_outputs = (), False

    def __init__(self, axes):
        self.axes = axes

    def forward(self, x):
        self.ndim = x.ndim
        return x.transpose(self.axes)

    def backward(self, gy):
        if self.axes is None:
            return gy.transpose()
        return gy.transpose(np.argsort([a % self.ndim for a in self.axes]))


class GetItem(Function):
    saved_inputs, saves_outputs = (), False

    def __init__(self, index):
        self.index = index

    def forward(self, x):
        self.shape, self.dtype = x.shape, x.dtype
        return x[self.index]

    def backward(self, gy):
        xp = get_array_module(gy)
        gx = xp.zeros(self.shape, dtype=self.dtype)
        if _is_basic_index(self.index):
            gx[self.index] = gy             # slices never select an element twice
        elif xp is np:
            np.add.at(gx, self.index, gy)   # repeated fancy indices accumulate
        else:
            import cupyx
            cupyx.scatter_add(gx, self.index, gy)
        return gx


def _is_basic_index(index):
    """True for ints, slices, None and Ellipsis (NumPy basic indexing: no repeated elements)."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, (int, np.integer, slice)) or p is None or p is Ellipsis for p in parts)


class Cast(Function):
    saved_inputs, saves_outputs = (), False

    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, x):
        self.in_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return gy.astype(self.in_dtype)


class ToDevice(Function):
    saved_inputs, saves_outputs = (), False

    def __init__(self, device):
        self.device = device

    def forward(self, x):
        self.source = "cuda" if get_array_module(x) is not np else "cpu"
        return _move(x, self.device)

    def backward(self, gy):
        return _move(gy, self.source)


def reshape(x, shape):
    shape = tuple(shape)
    x = x if isinstance(x, Tensor) else Tensor(x)
    if x.shape == shape:
        return x
    return Reshape(shape)(x)


def transpose(x, axes=None):
    return Transpose(None if axes is None else tuple(axes))(x)


def getitem(x, index):
    if isinstance(index, Tensor):
        index = index.data
    return GetItem(index)(x)


def cast(x, dtype):
    dtype = np.dtype(dtype)
    x = x if isinstance(x, Tensor) else Tensor(x)
    return x if x.dtype == dtype else Cast(dtype)(x)


def to_device(x, device):
    x = x if isinstance(x, Tensor) else Tensor(x)
    return x if x.device == device else ToDevice(device)(x)
