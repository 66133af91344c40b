"""GPU queries, PyTorch style.

    >>> import tinycnn
    >>> isinstance(tinycnn.cuda.is_available(), bool)
    True
"""
from .backend import gpu_available


def is_available():
    """True when CuPy is installed and a CUDA device is visible."""
    return gpu_available()


def device_count():
    if not gpu_available():
        return 0
    import cupy
    return cupy.cuda.runtime.getDeviceCount()
