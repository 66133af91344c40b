"""The one backend switch: NumPy on the CPU, CuPy on the GPU.

Every op asks ``xp = get_array_module(x)`` and then writes ``xp.exp(...)``,
``xp.matmul(...)``: the same line runs on both devices.

    >>> import numpy as np
    >>> get_array_module(np.zeros(3)) is np
    True
"""
import numpy as np

# the one GPU probe and device test, kernels.device's; re-exported for the engine
from .kernels.device import array_module, gpu_available, gpu_count, is_cupy_array  # noqa: F401


def unwrap(value):
    """The raw array behind a Tensor; arrays (NumPy or CuPy) and other values pass through.

    Not ``getattr(value, "data", value)``: a CuPy array's ``.data`` is its memory pointer.
    """
    if isinstance(value, np.ndarray) or is_cupy_array(value):
        return value
    return getattr(value, "data", value)


def get_array_module(*arrays):
    """Return ``cupy`` if any argument is a CuPy array, else ``numpy``.

    Tensors are unwrapped through their ``.data`` attribute.
    """
    return array_module(*map(unwrap, arrays))


def device_of(array):
    """"cuda" for a CuPy array, "cpu" otherwise."""
    return "cuda" if is_cupy_array(unwrap(array)) else "cpu"


def normalize_device(device):
    """Accept "cpu", "cuda", "cuda:0" (or a tinycnn device) and return "cpu" or "cuda"."""
    name = str(device).lower()
    if name == "cpu":
        return "cpu"
    if name == "cuda" or name.startswith("cuda:") or name == "gpu":
        return "cuda"
    raise ValueError(f"device: expected 'cpu' or 'cuda', got {device!r}")


def to_device(array, device):
    """Move a raw array to "cpu" (NumPy) or "cuda" (CuPy); no copy if already there."""
    device = normalize_device(device)
    if device == "cpu":
        return array.get() if is_cupy_array(array) else np.asarray(array)
    try:
        import cupy
    except ImportError:
        raise RuntimeError("to_device: 'cuda' needs CuPy; install it with pip install -e '.[cuda]'") from None
    return cupy.asarray(array)
