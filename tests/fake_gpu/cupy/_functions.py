"""cupy.<function>: NumPy's function of that name, run on the arrays behind device arrays.

CuPy refuses a NumPy array where it expects a device array. The stand-in checks the array
operands: every argument of an elementwise function (ufuncs, ``where``, ``clip``), the first
argument of the others (the array, or the list of arrays of ``concatenate``), and ``out=``.
Later arguments such as ``split``'s indices or ``pad``'s widths may be host data, as in CuPy.
Only ``array``/``asarray``/``asanyarray`` take host data: they copy it to the device.
``empty`` and ``empty_like`` fill their array with NaN (or -7 for integers), like fresh GPU
memory holding leftovers, so an element that is never written cannot pass for a right result.
"""
import functools

import numpy

from . import _blas, _launches, _transfer
from ._array import garbage, ndarray, operand, unwrap, wrap

_ELEMENTWISE = {"where", "clip"}


def _check_operands(value, op):
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_operands(item, op)
    else:
        operand(value, op)


@functools.cache
def device_function(function):
    """`function` (a NumPy function or ufunc) applied to device arrays, giving device arrays."""
    name = function.__name__
    elementwise = isinstance(function, numpy.ufunc) or name in _ELEMENTWISE
    function = _blas.matmul if function is numpy.matmul else function    # float16 as cuBLAS computes it

    @functools.wraps(function)
    def on_device(*args, **kwargs):
        for arg in args if elementwise else args[:1]:
            _check_operands(arg, f"cupy.{name}")
        if kwargs.get("out") is not None:
            _check_operands(kwargs["out"], f"cupy.{name}")
        if name not in _launches.NO_KERNEL and not _already_contiguous(name, args):
            _launches.add("array_ops")
        out = kwargs.get("out")
        value = _launches.device_op(lambda: function(*unwrap(args), **unwrap(kwargs)), writes=out is not None)
        if value is None and out is not None:     # a write recorded by a capture: its result is out
            value = out[0] if isinstance(out, tuple) and len(out) == 1 else out
        return wrap(value)

    return on_device


def _already_contiguous(name, args):
    """CuPy's ascontiguousarray returns a C-contiguous array itself, launching nothing."""
    return name == "ascontiguousarray" and isinstance(args[0], ndarray) and args[0]._array.flags.c_contiguous


def asarray(a, dtype=None, order=None):
    """A device array of `a`: the same array if it is one already, else a copy of host data."""
    if isinstance(a, ndarray):
        return a if dtype is None or numpy.dtype(dtype) == a.dtype else a.astype(dtype)
    _transfer.count_host_to_device()
    return wrap(numpy.array(a, dtype=dtype, order=order or "K", copy=True))


asanyarray = asarray


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0):
    if isinstance(obj, ndarray):
        return wrap(numpy.array(obj._array, dtype=dtype, copy=copy, order=order, ndmin=ndmin))
    _transfer.count_host_to_device()
    return wrap(numpy.array(obj, dtype=dtype, copy=True, order=order, ndmin=ndmin))


def asnumpy(a, stream=None, order="C", out=None):
    """A NumPy copy of a device array (NumPy input passes through)."""
    if isinstance(a, ndarray):
        return _transfer.to_host(a._array, "cupy.asnumpy()")
    return numpy.asarray(a, order=order)


def empty(shape, dtype=float, order="C"):
    return ndarray(shape, dtype, order)


def empty_like(prototype, dtype=None, order="K", subok=None, shape=None):
    _check_operands(prototype, "cupy.empty_like")
    return wrap(garbage(numpy.empty_like(unwrap(prototype), dtype=dtype, order=order, shape=shape)))
