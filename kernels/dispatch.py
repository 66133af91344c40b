"""The dispatch point of every kernel: which implementation runs, and the cheap checks that keep
a kernel from reading or writing out of bounds.

An array goes to ``cuda`` if it is a CuPy array, else to ``cpu`` (Numba) when Numba is
installed and the default is "auto" or "cpu", else to ``reference`` (NumPy). The public ops in
tinycnn.functions check their users' arguments; the checks here guard the kernels' memory
(types, ranks, shapes, sizes that fit), so a wrong call fails with the kernel's name instead of
reading outside an array.
"""
import contextlib
import numbers

import numpy as np

from . import reference
from .device import array_module, gpu_available, is_cupy_array
from .geometry import conv_output_size

try:
    import numba  # noqa: F401
except ImportError:          # without Numba the NumPy reference does the work
    cpu = None
else:
    from . import cpu

_CHOICES = ("reference", "cpu", "auto")
_default = "auto"
# Primitives without a Numba twin: elementwise ones NumPy already streams at memory speed.
# The "cpu" choice runs their reference version.
_NUMPY_ON_CPU = frozenset({"dropout_apply"})


def available():
    """Names of the implementations that can run here, e.g. ["reference", "cpu"] ("cuda" needs
    CuPy and a CUDA device)."""
    return ["reference"] + ["cpu"] * (cpu is not None) + ["cuda"] * gpu_available()


def set_default(name):
    """Choose the implementation for NumPy arrays: "reference", "cpu" or "auto" (cpu if Numba
    is installed). CuPy arrays always go to "cuda"."""
    global _default
    if name not in _CHOICES:
        raise ValueError(f"kernels.set_default: expected one of {_CHOICES}, got {name!r}")
    if name == "cpu" and cpu is None:
        raise ValueError("kernels.set_default: 'cpu' needs numba, which is not installed")
    _default = name


@contextlib.contextmanager
def use(name):
    """Run a block with another default implementation: ``with kernels.use("reference"): ...``"""
    previous = _default
    set_default(name)
    try:
        yield
    finally:
        set_default(previous)


def _run(kernel, *args, **kwargs):
    """Call `kernel` in the implementation chosen by the first argument's type and the default."""
    if is_cupy_array(args[0]):
        from . import cuda
        implementation = getattr(cuda, kernel, None)
        if implementation is None:      # the GPU convolution needs only im2col / col2im
            raise NotImplementedError(f"{kernel}: there is no CUDA kernel for it; the GPU runs im2col")
        return implementation(*args, **kwargs)
    if _default == "reference" or cpu is None or kernel in _NUMPY_ON_CPU:
        return getattr(reference, kernel)(*args, **kwargs)
    # Numba kernels index raw memory: hand them C-contiguous arrays
    args = [np.ascontiguousarray(a) if isinstance(a, np.ndarray) else a for a in args]
    return getattr(cpu, kernel)(*args, **kwargs)


# ---------------------------------------------------------------- argument checks


def _check_float(kernel, name, array):
    if not (isinstance(array, np.ndarray) or is_cupy_array(array)):
        raise TypeError(f"{kernel}: {name} must be a NumPy or CuPy array, got {type(array).__name__}")
    if array.dtype not in (np.float32, np.float64) and not (array.dtype == np.float16 and is_cupy_array(array)):
        raise TypeError(f"{kernel}: {name} must be float32 or float64, got {array.dtype}")


def _check_array(kernel, name, array, ndim, layout):
    _check_float(kernel, name, array)
    if array.ndim != ndim:
        raise ValueError(f"{kernel}: {name} must be {ndim}-D {layout}, got shape {array.shape}")


def _check_same_dtype(kernel, **arrays):
    (first_name, first), *others = arrays.items()
    for name, array in others:
        if array.dtype != first.dtype:
            raise TypeError(f"{kernel}: {name} has dtype {array.dtype} but {first_name} has {first.dtype}")


def _check_shape(kernel, name, array, expected):
    if tuple(array.shape) != tuple(expected):
        raise ValueError(f"{kernel}: {name} must have shape {tuple(expected)}, got {tuple(array.shape)}")


def _check_out(kernel, out, like, shape):
    """`out` is None, or a C-contiguous array of `like`'s kind and dtype with exactly `shape`
    (any shape if `shape` is None: the caller checks it)."""
    if out is None:
        return
    if type(out) is not type(like):
        raise TypeError(f"{kernel}: out must be a {type(like).__name__} like the input, got {type(out).__name__}")
    if out.dtype != like.dtype:
        raise TypeError(f"{kernel}: out must have dtype {like.dtype}, got {out.dtype}")
    if shape is not None:
        _check_shape(kernel, "out", out, shape)
    if not out.flags.c_contiguous:
        raise ValueError(f"{kernel}: out must be C-contiguous")
    if array_module(out).may_share_memory(out, like):
        raise ValueError(f"{kernel}: out must not overlap the input")


def _ints(kernel, minimum, **values):
    """Check integer arguments are >= minimum; return them as Python ints, in order."""
    checked = []
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{kernel}: {name} must be an int, got {value!r}")
        if value < minimum:
            kind = "positive" if minimum == 1 else "non-negative"
            raise ValueError(f"{kernel}: {name} must be {kind}, got {value}")
        checked.append(int(value))
    return checked


def _real(kernel, name, value, minimum=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{kernel}: {name} must be a real number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{kernel}: {name} must be >= {minimum}, got {value}")
    return float(value)


def _check_pool_out(kernel, axis, size, out, k, s, p):
    if size < 1:
        raise ValueError(f"{kernel}: the input {axis} must be positive, got {size}")
    if p >= k:
        raise ValueError(f"{kernel}: padding {p} must be smaller than the kernel size {k} along {axis} "
                         f"(every window needs a real pixel)")
    limit = conv_output_size(size, k, s, p, ceil_mode=True)
    if not 1 <= out <= limit:
        raise ValueError(
            f"{kernel}: o{axis}={out} does not fit an input {axis}={size} (kernel {k}, stride {s}, "
            f"padding {p} give at most {max(limit, 0)} output positions, even in ceil mode)")


def _window_args(kernel, kh, kw, sy, sx, py, px):
    """A pooling window's kernel and stride (positive) and padding (non-negative) as Python ints."""
    kh, kw, sy, sx = _ints(kernel, 1, kh=kh, kw=kw, sy=sy, sx=sx)
    py, px = _ints(kernel, 0, py=py, px=px)
    return kh, kw, sy, sx, py, px
