"""cupy._core._routines_linalg of the stand-in: the per-dtype GEMM compute type CuPy keeps.

CuPy reads it for every 2-D float GEMM (``cupy.dot``, ``cupy.matmul`` of 2-D arrays): the
default is ``CUBLAS_COMPUTE_32F``; COMPUTE_TYPE_TF32 for float32 selects
``CUBLAS_COMPUTE_32F_FAST_TF32`` (tensor cores, inputs rounded to 10 mantissa bits). The
stand-in records the choice (its GEMMs stay NumPy's); CuPy starts from CUPY_TF32.
"""
import os

import numpy

COMPUTE_TYPE_TBD, COMPUTE_TYPE_DEFAULT, COMPUTE_TYPE_PEDANTIC = 0, 1, 2
COMPUTE_TYPE_FP16, COMPUTE_TYPE_FP32, COMPUTE_TYPE_FP64, COMPUTE_TYPE_BF16, COMPUTE_TYPE_TF32 = 3, 4, 5, 6, 7
_KNOWN = range(8)
_types = {}


def _index(dtype):
    char = numpy.dtype(dtype).char
    for index, chars in enumerate(("e", "fF", "dD")):
        if char in chars:
            return index
    raise TypeError(f"dtype is not supported: {dtype}")


def set_compute_type(dtype, compute_type):
    if compute_type not in _KNOWN:
        raise ValueError(f"Unknown compute type: {compute_type}")
    _types[_index(dtype)] = compute_type


def get_compute_type(dtype):
    index = _index(dtype)
    if index not in _types:
        tf32 = numpy.dtype(dtype).char in "fF" and int(os.getenv("CUPY_TF32", "0")) > 0
        _types[index] = COMPUTE_TYPE_TF32 if tf32 else COMPUTE_TYPE_DEFAULT
    return _types[index]
