"""GPU queries, PyTorch style; the probe itself is kernels.device's, the only one.

    >>> import tinycnn
    >>> isinstance(tinycnn.cuda.is_available(), bool)
    True
"""
from .kernels.device import gpu_available, gpu_count


def is_available():
    """True when CuPy is installed and a CUDA device is visible."""
    return gpu_available()


def device_count():
    """CUDA devices visible to CuPy (0 without CuPy)."""
    return gpu_count()
