"""GPU queries and switches, PyTorch style; the probe itself is kernels.device's, the only one.

    >>> import tinycnn
    >>> isinstance(tinycnn.cuda.is_available(), bool)
    True

``tinycnn.cuda.allow_tf32`` (False unless CuPy's CUPY_TF32 environment variable is set) is
the process-wide switch of TF32 for float32 GEMMs, like ``torch.backends.cuda.matmul.allow_tf32``.
Set to True, CuPy runs the 2-D float32 matrix products (``cupy.dot``, ``cupy.matmul`` of two
matrices: the linear layers and the 1-D/2-D GEMMs of the engine) as cuBLAS
``CUBLAS_COMPUTE_32F_FAST_TF32`` on the tensor cores of an Ampere or later GPU: inputs rounded
to 10 mantissa bits, float32 sums. It sets CuPy's compute type for float32
(``cupy._core._routines_linalg.set_compute_type``), which CuPy 14 reads for 2-D GEMMs only:
its batched (3-D and up) matmul always computes in plain float32.

    >>> tinycnn.cuda.allow_tf32 = False
"""
import os
import sys
import types

import numpy as np

from .kernels.device import gpu_available, gpu_count


def is_available():
    """True when CuPy is installed and a CUDA device is visible."""
    return gpu_available()


def device_count():
    """CUDA devices visible to CuPy (0 without CuPy)."""
    return gpu_count()


_tf32 = [int(os.environ.get("CUPY_TF32", "0") or 0) > 0]


def _set_tf32(enabled):
    if not isinstance(enabled, bool):
        raise TypeError(f"tinycnn.cuda.allow_tf32 must be True or False, got {enabled!r}")
    if gpu_available():          # else no GEMM runs on a GPU: keep the choice only
        from cupy._core import _routines_linalg as linalg
        linalg.set_compute_type(np.float32, linalg.COMPUTE_TYPE_TF32 if enabled else linalg.COMPUTE_TYPE_DEFAULT)
    _tf32[0] = enabled


class _CudaModule(types.ModuleType):
    """This module, with ``allow_tf32`` as a property: assigning it sets CuPy's compute type."""

    @property
    def allow_tf32(self):
        return _tf32[0]

    @allow_tf32.setter
    def allow_tf32(self, enabled):
        _set_tf32(enabled)


sys.modules[__name__].__class__ = _CudaModule
