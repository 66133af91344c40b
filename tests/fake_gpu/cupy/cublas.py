"""cupy.cublas of the stand-in: ``gemm``, one cuBLAS call, with CuPy's checks."""
import numpy

from . import _launches
from ._array import ndarray


def gemm(transa, transb, a, b, out=None, alpha=1.0, beta=0.0):
    """out = alpha * op(a) @ op(b) + beta * out, op(m) = m or m.T ('N' or 'T'); with beta = 0
    the old values of out are not read (as cuBLAS: NaN garbage there does not spread)."""
    for name, array in (("a", a), ("b", b), ("out", out)):
        if array is not None and not isinstance(array, ndarray):
            raise TypeError(f"cupy.cublas.gemm: {name} must be a cupy.ndarray, got {type(array).__name__}")
    if transa not in ("N", "T") or transb not in ("N", "T"):
        raise ValueError(f"cupy.cublas.gemm: trans must be 'N' or 'T', got {transa!r}, {transb!r}")
    assert a.ndim == b.ndim == 2
    assert a.dtype == b.dtype
    left = a._array if transa == "N" else a._array.T
    right = b._array if transb == "N" else b._array.T
    assert left.shape[1] == right.shape[0]
    _launches.add("array_ops")
    if out is None:
        return ndarray._wrap_array(_launches.device_op(
            lambda: numpy.asfortranarray((alpha * (left @ right)).astype(a.dtype)), writes=False))
    assert out.ndim == 2 and out.shape == (left.shape[0], right.shape[1]) and out.dtype == a.dtype

    def write():
        product = alpha * (left @ right)
        out._array[...] = product if beta == 0 else product + beta * out._array
    _launches.device_op(write, writes=True)
    return out
