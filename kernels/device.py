"""Which device an array lives on, and whether there is a GPU: the one probe tinycnn uses.

Nothing here imports CuPy unless a GPU question needs it, so the CPU path never pays for it.

    >>> import numpy as np
    >>> is_cupy_array(np.zeros(3)), array_module(np.zeros(3)) is np
    (False, True)
"""
import numpy as np


def is_cupy_array(array):
    """True for a cupy.ndarray (tested by its type's module, without importing cupy)."""
    return type(array).__module__.split(".")[0] == "cupy"


def array_module(*arrays):
    """``cupy`` if any argument is a CuPy array, else ``numpy``."""
    if any(is_cupy_array(array) for array in arrays):
        import cupy
        return cupy
    return np


def gpu_count():
    """CUDA devices CuPy can see: 0 without CuPy or without a usable device."""
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount()
    except Exception:       # no CuPy, or CuPy without a driver / device
        return 0


def gpu_available():
    """True when CuPy is importable and sees at least one CUDA device."""
    return gpu_count() > 0
