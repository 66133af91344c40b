"""A NumPy stand-in for the part of CuPy that tinycnn uses, so its GPU path runs without a GPU.

With tests/fake_gpu first on sys.path (PYTHONPATH), ``import cupy`` anywhere in tinycnn gets
this package, and the code a GPU user runs is exercised unchanged:

* ``cupy.ndarray`` (_array.py) wraps a NumPy array behind CuPy's wall: ``numpy.asarray``
  raises TypeError, NumPy arrays in device operations raise TypeError, only explicit
  transfers reach the host, and ``cupyx.allow_synchronize(False)`` turns every host sync
  into ``cupyx.DeviceSynchronized`` (_transfer.py);
* ``cupy.<name>`` is NumPy's function run on the wrapped arrays (_functions.py);
  ``cupy.float32`` and the other dtypes are NumPy's, as in CuPy;
* ``cupy.RawModule(code=...)`` compiles *that* CUDA C with g++ through
  tests/cuda_harness.py and runs its kernels on the CPU with CuPy's launch signature (_raw.py);
* ``cupy.cuda``: one device, ``Device().synchronize()``; ``cupy.random``: a seeded NumPy
  Generator, so ``cupy.random.seed(s)`` draws what ``numpy.random.default_rng(s)`` draws.

    >>> import cupy                     # with PYTHONPATH=tests/fake_gpu
    >>> x = cupy.arange(4.0)
    >>> float((x * 2).sum())
    12.0
"""
import sys

import numpy

from . import cuda, random
from ._array import ndarray
from ._functions import array, asanyarray, asarray, asnumpy, device_function, empty, empty_like
from ._raw import RawModule

IS_STAND_IN = True
__version__ = "0.0.0+tinycnn.stand.in"


def get_array_module(*args):
    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in args) else numpy


def __getattr__(name):
    """Anything else CuPy has: NumPy's dtypes and constants as they are, functions on the device."""
    if not hasattr(numpy, name):
        raise AttributeError(f"module 'cupy' has no attribute {name!r}")
    target = getattr(numpy, name)
    if isinstance(target, type) or not callable(target):
        return target
    return device_function(target)
