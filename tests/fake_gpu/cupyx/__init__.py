"""cupyx of the stand-in: scatter_add and CuPy's host-synchronisation detector."""
import numpy

from cupy._array import ndarray, operand, unwrap
from cupy._transfer import DeviceSynchronized, allow_synchronize  # noqa: F401


def scatter_add(a, slices, value):
    """a[slices] += value with repeated indices accumulating (numpy.add.at on the device)."""
    if not isinstance(a, ndarray):
        raise TypeError(f"scatter_add: expected a cupy.ndarray, got {type(a).__name__}")
    numpy.add.at(a._array, unwrap(slices), operand(value, "scatter_add"))


def empty_pinned(shape, dtype=float, order="C"):
    """A host array in page-locked memory (the stand-in's host memory is NumPy's)."""
    return numpy.empty(shape, dtype=dtype, order=order)
