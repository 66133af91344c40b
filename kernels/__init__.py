"""Raw compute kernels: one dispatch function per primitive, no autograd.

Every primitive has three implementations with one signature (see each function below):
``reference`` (plain NumPy, the oracle), ``cpu`` (Numba) and ``cuda`` (CUDA C via CuPy).
The functions here check their arguments, so no kernel ever indexes out of bounds, then
pick the implementation: ``cuda`` for a CuPy array, else ``cpu`` when Numba is installed,
else ``reference``. Tests force one with ``use``:

    >>> import numpy as np
    >>> from tinycnn import kernels
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> with kernels.use("reference"):
    ...     col = kernels.im2col(x, 3, 3, 1, 1, 1, 1, 1, 1, 4, 4)
    >>> col.shape                      # (N, C, kh, kw, oh, ow)
    (1, 1, 3, 3, 4, 4)

Conventions: NCHW, float32 or float64 (the output keeps the input dtype), integer
arguments are Python ints, output sizes (oh, ow) are computed by the caller.
"""
import contextlib
import numbers

import numpy as np

from ..backend import get_array_module
from . import reference

try:
    import numba  # noqa: F401
except ImportError:          # without Numba the NumPy reference does the work
    cpu = None
else:
    from . import cpu

_CHOICES = ("reference", "cpu", "auto")
_default = "auto"
# Primitives without a Numba twin: elementwise ones NumPy already streams at memory speed,
# and the Winograd weight transforms (a few small products per layer). The "cpu" choice
# runs their reference version.
_NUMPY_ON_CPU = frozenset({"dropout_apply", "channel_shuffle", "bias_relu",
                           "winograd_weight_transform", "winograd_weight_transform_backward"})


def available():
    """Names of the implementations that can run here, e.g. ["reference", "cpu"] ("cuda" needs
    CuPy and a CUDA device)."""
    names = ["reference"]
    if cpu is not None:
        names.append("cpu")
    try:
        import cupy
        if cupy.cuda.runtime.getDeviceCount() > 0:
            names.append("cuda")
    except Exception:       # no CuPy, or CuPy without a usable CUDA device
        pass
    return names


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


def _is_cupy(array):
    return type(array).__module__.split(".")[0] == "cupy"


def _run(kernel, *args, **kwargs):
    """Call `kernel` in the implementation chosen by the first argument's type and the default."""
    if _is_cupy(args[0]):
        from . import cuda
        return getattr(cuda, kernel)(*args, **kwargs)
    if _default == "reference" or cpu is None or kernel in _NUMPY_ON_CPU:
        return getattr(reference, kernel)(*args, **kwargs)
    # Numba kernels index raw memory: hand them C-contiguous arrays
    args = [np.ascontiguousarray(a) if isinstance(a, np.ndarray) else a for a in args]
    return getattr(cpu, kernel)(*args, **kwargs)


# ---------------------------------------------------------------- argument checks


def _check_float(kernel, name, array):
    if not (isinstance(array, np.ndarray) or _is_cupy(array)):
        raise TypeError(f"{kernel}: {name} must be a NumPy or CuPy array, got {type(array).__name__}")
    if array.dtype not in (np.float32, np.float64):
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
    if get_array_module(out).may_share_memory(out, like):
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


def _conv_out(size, k, s, p, d):
    """Output length of a convolution window along one axis (no ceil mode)."""
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _pool_out_max(size, k, s, p):
    """Largest output length of a pooling window (PyTorch's ceil mode): the last window
    must start inside the input or its left padding."""
    out = -(-(size + 2 * p - k) // s) + 1
    if (out - 1) * s >= size + p:
        out -= 1
    return out


def _check_conv_out(kernel, axis, size, out, k, s, p, d):
    limit = _conv_out(size, k, s, p, d)
    if not 1 <= out <= limit:
        raise ValueError(
            f"{kernel}: o{axis}={out} does not fit an input {axis}={size} (kernel {k}, stride {s}, "
            f"padding {p}, dilation {d} give at most {max(limit, 0)} output positions)")


def _check_pool_out(kernel, axis, size, out, k, s, p):
    if size < 1:
        raise ValueError(f"{kernel}: the input {axis} must be positive, got {size}")
    if p >= k:
        raise ValueError(f"{kernel}: padding {p} must be smaller than the kernel size {k} along {axis} "
                         f"(every window needs a real pixel)")
    limit = _pool_out_max(size, k, s, p)
    if not 1 <= out <= limit:
        raise ValueError(
            f"{kernel}: o{axis}={out} does not fit an input {axis}={size} (kernel {k}, stride {s}, "
            f"padding {p} give at most {max(limit, 0)} output positions, even in ceil mode)")


def _window_args(kernel, kh, kw, sy, sx, py, px, dy=1, dx=1):
    kh, kw, sy, sx, dy, dx = _ints(kernel, 1, kh=kh, kw=kw, sy=sy, sx=sx, dy=dy, dx=dx)
    py, px = _ints(kernel, 0, py=py, px=px)
    return kh, kw, sy, sx, py, px, dy, dx


# ---------------------------------------------------------------- convolution


def _image_windows(name, x, kh, kw, sy, sx, py, px, dy, dx, oh, ow):
    """Checks of im2col and im2row: x is (N, C, H, W) and (oh, ow) windows fit it. Returns
    the window arguments and output size as Python ints."""
    _check_array(name, "x", x, 4, "(N, C, H, W)")
    kh, kw, sy, sx, py, px, dy, dx = _window_args(name, kh, kw, sy, sx, py, px, dy, dx)
    oh, ow = _ints(name, 1, oh=oh, ow=ow)
    _check_conv_out(name, "h", x.shape[2], oh, kh, sy, py, dy)
    _check_conv_out(name, "w", x.shape[3], ow, kw, sx, px, dx)
    return kh, kw, sy, sx, py, px, dy, dx, oh, ow


def im2col(x, kh, kw, sy, sx, py, px, dy, dx, oh, ow, out=None):
    """x (N, C, H, W) -> col (N, C, kh, kw, oh, ow) with
    col[n, c, i, j, y, x] = x[n, c, y*sy - py + i*dy, x*sx - px + j*dx] (0 outside the input).
    ``out``: an optional C-contiguous array of that shape and x's dtype to write into."""
    name = "im2col"
    kh, kw, sy, sx, py, px, dy, dx, oh, ow = _image_windows(name, x, kh, kw, sy, sx, py, px, dy, dx, oh, ow)
    _check_out(name, out, x, x.shape[:2] + (kh, kw, oh, ow))
    return _run(name, x, kh, kw, sy, sx, py, px, dy, dx, oh, ow, out=out)


def col2im(col, h, w, sy, sx, py, px, dy, dx, out=None):
    """col (N, C, kh, kw, oh, ow) -> x (N, C, h, w), the adjoint of im2col: each pixel sums
    the column entries that were copied from it. ``out``: an optional C-contiguous array of
    that shape and col's dtype to write into."""
    name = "col2im"
    _check_array(name, "col", col, 6, "(N, C, kh, kw, oh, ow)")
    h, w = _ints(name, 1, h=h, w=w)
    kh, kw, oh, ow = col.shape[2:]
    kh, kw, sy, sx, py, px, dy, dx = _window_args(name, kh, kw, sy, sx, py, px, dy, dx)
    _check_conv_out(name, "h", h, oh, kh, sy, py, dy)
    _check_conv_out(name, "w", w, ow, kw, sx, px, dx)
    _check_out(name, out, col, col.shape[:2] + (h, w))
    return _run(name, col, h, w, sy, sx, py, px, dy, dx, out=out)


def im2row(x, kh, kw, sy, sx, py, px, dy, dx, oh, ow, out=None):
    """x (N, C, H, W) -> rows (N, oh, ow, kh, kw, C): im2col's windows laid out one row per
    output pixel, rows[n, y, x, i, j, c] = col[n, c, i, j, y, x]. ``out``: an optional
    C-contiguous array of that shape and x's dtype to write into."""
    name = "im2row"
    kh, kw, sy, sx, py, px, dy, dx, oh, ow = _image_windows(name, x, kh, kw, sy, sx, py, px, dy, dx, oh, ow)
    _check_out(name, out, x, (x.shape[0], oh, ow, kh, kw, x.shape[1]))
    return _run(name, x, kh, kw, sy, sx, py, px, dy, dx, oh, ow, out=out)


def row2im(rows, h, w, sy, sx, py, px, dy, dx, out=None):
    """rows (N, oh, ow, kh, kw, C) -> x (N, C, h, w), the adjoint of im2row. ``out``: an
    optional C-contiguous array of that shape and rows' dtype to write into."""
    name = "row2im"
    _check_array(name, "rows", rows, 6, "(N, oh, ow, kh, kw, C)")
    h, w = _ints(name, 1, h=h, w=w)
    n, oh, ow, kh, kw, c = rows.shape
    kh, kw, sy, sx, py, px, dy, dx = _window_args(name, kh, kw, sy, sx, py, px, dy, dx)
    _check_conv_out(name, "h", h, oh, kh, sy, py, dy)
    _check_conv_out(name, "w", w, ow, kw, sx, px, dx)
    _check_out(name, out, rows, (n, c, h, w))
    return _run(name, rows, h, w, sy, sx, py, px, dy, dx, out=out)


def swap_last_axes(x, out=None):
    """(..., A, B) -> (..., B, A) as a C-contiguous array (a transpose that is copied, e.g.
    NCL <-> NLC). ``out``: an optional C-contiguous array of that shape and x's dtype."""
    name = "swap_last_axes"
    _check_float(name, "x", x)
    if x.ndim < 2:
        raise ValueError(f"{name}: x must have at least 2 dimensions, got shape {x.shape}")
    _check_out(name, out, x, x.shape[:-2] + (x.shape[-1], x.shape[-2]))
    return _run(name, x, out=out)


# ---------------------------------------------------------------- Winograd F(4x4, 3x3)
# The transforms of a 3x3 stride-1 convolution computed as 36 matrix products per layer;
# the algorithm, the tile numbering and the (36, S) plane layout are in kernels/reference.py.
WINOGRAD_PLANES = reference.WINOGRAD_PLANES
winograd_tile_grid = reference.winograd_tile_grid


def winograd_plane_size(elements):
    """S, the distance between the 36 planes of `elements` (tiles x channels) transformed values:
    rounded up to whole 4 KiB of float32, plus 64 bytes, so the planes fall in different sets
    of the L1 cache (planes a multiple of 4 KiB apart evict each other: 4x slower)."""
    return -(-elements // 1024) * 1024 + 16


def _check_planes(kernel, name, planes, elements):
    """planes: a (36, S) float array with S >= elements."""
    _check_array(kernel, name, planes, 2, "(36, S)")
    if planes.shape[0] != WINOGRAD_PLANES or planes.shape[1] < elements:
        raise ValueError(f"{kernel}: {name} must have shape (36, S) with S >= {elements}, got {planes.shape}")


def _planes_out(kernel, out, like, elements):
    """The (36, S) output planes: `out` checked, or a new array; the entries past `elements`
    (never written by the kernels) zeroed, so results are fully defined."""
    if out is None:
        out = get_array_module(like).empty((WINOGRAD_PLANES, winograd_plane_size(elements)), like.dtype)
    _check_out(kernel, out, like, shape=None)
    _check_planes(kernel, "out", out, elements)
    out[:, elements:] = 0
    return out


def _tile_grid(kernel, oh, ow):
    oh, ow = _ints(kernel, 1, oh=oh, ow=ow)
    return (oh, ow) + winograd_tile_grid(oh, ow)


def winograd_input_transform(x, py, px, th, tw, out=None):
    """x (N, C, H, W) -> planes (36, S): B^T d B of every 6x6 input tile d (th x tw tiles per
    image, 4 pixels apart, the first at (-py, -px)). ``out``: an optional (36, S) array, S >= N*th*tw*C."""
    name = "winograd_input_transform"
    _check_array(name, "x", x, 4, "(N, C, H, W)")
    py, px = _ints(name, 0, py=py, px=px)
    th, tw = _ints(name, 1, th=th, tw=tw)
    elements = x.shape[0] * th * tw * x.shape[1]
    out = _planes_out(name, out, x, elements)
    return _run(name, x, py, px, th, tw, out)


def winograd_input_transform_backward(v, n, c, h, w, py, px, th, tw, out=None):
    """planes v (36, S) -> x (n, c, h, w), the adjoint of winograd_input_transform: each pixel
    sums B v B^T of the tiles that read it. ``out``: an optional C-contiguous (n, c, h, w) array."""
    name = "winograd_input_transform_backward"
    n, c, h, w, th, tw = _ints(name, 1, n=n, c=c, h=h, w=w, th=th, tw=tw)
    py, px = _ints(name, 0, py=py, px=px)
    _check_planes(name, "v", v, n * th * tw * c)
    _check_out(name, out, v, (n, c, h, w))
    return _run(name, v, n, c, h, w, py, px, th, tw, out=out)


def winograd_output_transform(m, n, k, oh, ow, out=None):
    """planes m (36, S) -> y (n, k, oh, ow): A^T m A of every tile (ceil(oh/4) x ceil(ow/4) per
    image), cropped to (oh, ow). ``out``: an optional C-contiguous (n, k, oh, ow) array."""
    name = "winograd_output_transform"
    n, k = _ints(name, 1, n=n, k=k)
    oh, ow, th, tw = _tile_grid(name, oh, ow)
    _check_planes(name, "m", m, n * th * tw * k)
    _check_out(name, out, m, (n, k, oh, ow))
    return _run(name, m, n, k, oh, ow, out=out)


def winograd_output_transform_backward(gy, out=None):
    """gy (N, K, oh, ow) -> planes (36, S), the adjoint of winograd_output_transform: A g A^T of
    every 4x4 tile g of gy (zeros past the edge). ``out``: an optional (36, S) array, S >= N*th*tw*K."""
    name = "winograd_output_transform_backward"
    _check_array(name, "gy", gy, 4, "(N, K, oh, ow)")
    n, k, oh, ow = gy.shape
    _, _, th, tw = _tile_grid(name, oh, ow)
    elements = n * th * tw * k
    out = _planes_out(name, out, gy, elements)
    return _run(name, gy, out)


def winograd_weight_transform(weight):
    """weight (K, C, 3, 3) -> u (36, C, K): G g G^T of every 3x3 filter g."""
    name = "winograd_weight_transform"
    _check_array(name, "weight", weight, 4, "(K, C, 3, 3)")
    if weight.shape[2:] != (3, 3):
        raise ValueError(f"{name}: weight must be (K, C, 3, 3), got shape {weight.shape}")
    return _run(name, weight)


def winograd_weight_transform_backward(gu):
    """gu (36, C, K) -> gweight (K, C, 3, 3), the adjoint of winograd_weight_transform."""
    name = "winograd_weight_transform_backward"
    _check_array(name, "gu", gu, 3, "(36, C, K)")
    if gu.shape[0] != WINOGRAD_PLANES:
        raise ValueError(f"{name}: gu must be (36, C, K), got shape {gu.shape}")
    return _run(name, gu)


# ---------------------------------------------------------------- pooling


def max_pool2d_forward(x, kh, kw, sy, sx, py, px, oh, ow):
    """x (N, C, H, W) -> (y, argmax), both (N, C, oh, ow); argmax (int32) is iy*W + ix of the
    first maximum of each window in scan order. Padding is never selected; NaN propagates."""
    name = "max_pool2d_forward"
    _check_array(name, "x", x, 4, "(N, C, H, W)")
    kh, kw, sy, sx, py, px, _, _ = _window_args(name, kh, kw, sy, sx, py, px)
    oh, ow = _ints(name, 1, oh=oh, ow=ow)
    _check_pool_out(name, "h", x.shape[2], oh, kh, sy, py)
    _check_pool_out(name, "w", x.shape[3], ow, kw, sx, px)
    return _run(name, x, kh, kw, sy, sx, py, px, oh, ow)


def max_pool2d_backward(gy, argmax, h, w, kh, kw, sy, sx, py, px):
    """gy, argmax (N, C, oh, ow) -> gx (N, C, h, w): each pixel sums gy over the windows whose
    argmax is that pixel."""
    name = "max_pool2d_backward"
    _check_array(name, "gy", gy, 4, "(N, C, oh, ow)")
    if not (isinstance(argmax, np.ndarray) or _is_cupy(argmax)) or argmax.dtype != np.int32:
        got = getattr(argmax, "dtype", type(argmax).__name__)
        raise TypeError(f"{name}: argmax must be an int32 array, got {got}")
    _check_shape(name, "argmax", argmax, gy.shape)
    h, w = _ints(name, 1, h=h, w=w)
    kh, kw, sy, sx, py, px, _, _ = _window_args(name, kh, kw, sy, sx, py, px)
    _check_pool_out(name, "h", h, gy.shape[2], kh, sy, py)
    _check_pool_out(name, "w", w, gy.shape[3], kw, sx, px)
    return _run(name, gy, argmax, h, w, kh, kw, sy, sx, py, px)


def avg_pool2d_forward(x, kh, kw, sy, sx, py, px, oh, ow, count_include_pad):
    """x (N, C, H, W) -> y (N, C, oh, ow), the mean of each window. The divisor is PyTorch's:
    the window clipped to the padded input if count_include_pad, else to the input."""
    name = "avg_pool2d_forward"
    _check_array(name, "x", x, 4, "(N, C, H, W)")
    kh, kw, sy, sx, py, px, _, _ = _window_args(name, kh, kw, sy, sx, py, px)
    oh, ow = _ints(name, 1, oh=oh, ow=ow)
    _check_pool_out(name, "h", x.shape[2], oh, kh, sy, py)
    _check_pool_out(name, "w", x.shape[3], ow, kw, sx, px)
    return _run(name, x, kh, kw, sy, sx, py, px, oh, ow, bool(count_include_pad))


def avg_pool2d_backward(gy, h, w, kh, kw, sy, sx, py, px, count_include_pad):
    """gy (N, C, oh, ow) -> gx (N, C, h, w): each pixel sums gy / divisor over its windows."""
    name = "avg_pool2d_backward"
    _check_array(name, "gy", gy, 4, "(N, C, oh, ow)")
    h, w = _ints(name, 1, h=h, w=w)
    kh, kw, sy, sx, py, px, _, _ = _window_args(name, kh, kw, sy, sx, py, px)
    _check_pool_out(name, "h", h, gy.shape[2], kh, sy, py)
    _check_pool_out(name, "w", w, gy.shape[3], kw, sx, px)
    return _run(name, gy, h, w, kh, kw, sy, sx, py, px, bool(count_include_pad))


# ---------------------------------------------------------------- local response normalisation


def _lrn_args(name, size, alpha, beta):
    (size,) = _ints(name, 1, size=size)
    return size, _real(name, "alpha", alpha), _real(name, "beta", beta)


def lrn_forward(x, size, alpha, beta, k):
    """x (N, C, H, W) -> (y, scale): scale = k + alpha * sum of x^2 over the channels
    [c - size//2, c + (size-1)//2] (alpha not divided by size, as in AlexNet), y = x * scale**-beta."""
    name = "lrn_forward"
    _check_array(name, "x", x, 4, "(N, C, H, W)")
    size, alpha, beta = _lrn_args(name, size, alpha, beta)
    return _run(name, x, size, alpha, beta, _real(name, "k", k))


def lrn_backward(x, y, scale, gy, size, alpha, beta):
    """Gradient of lrn_forward with respect to x, from its saved y and scale."""
    name = "lrn_backward"
    arrays = {"x": x, "y": y, "scale": scale, "gy": gy}
    for array_name, array in arrays.items():
        _check_array(name, array_name, array, 4, "(N, C, H, W)")
        _check_shape(name, array_name, array, x.shape)
    _check_same_dtype(name, **arrays)
    size, alpha, beta = _lrn_args(name, size, alpha, beta)
    return _run(name, x, y, scale, gy, size, alpha, beta)


# ---------------------------------------------------------------- batch normalisation


def _check_batch_norm(name, x, eps, **per_channel):
    """x (N, C, L) with N*L > 0 and (C,) vectors of the same dtype; returns eps as a float."""
    _check_array(name, "x", x, 3, "(N, C, L)")
    if x.shape[0] * x.shape[2] == 0:
        raise ValueError(f"{name}: x needs at least one value per channel, got shape {x.shape}")
    for vector_name, vector in per_channel.items():
        _check_array(name, vector_name, vector, 1, "(C,)")
        _check_shape(name, vector_name, vector, (x.shape[1],))
    _check_same_dtype(name, x=x, **per_channel)
    return _real(name, "eps", eps, minimum=0)


def batch_norm_forward_train(x, gamma, beta, eps, relu=False, relu_input=False):
    """x (N, C, L) -> (y, mean, var): normalise with the batch mean and biased variance
    over axes (0, 2), then y = xhat * gamma + beta. ``relu`` fuses y = max(y, 0) after it,
    ``relu_input`` a ReLU before it (the statistics and xhat of max(x, 0))."""
    name = "batch_norm_forward_train"
    eps = _check_batch_norm(name, x, eps, gamma=gamma, beta=beta)
    return _run(name, x, gamma, beta, eps, bool(relu), bool(relu_input))


def batch_norm_forward_eval(x, gamma, beta, mean, var, eps, relu=False, relu_input=False):
    """x (N, C, L) -> y = (x - mean) / sqrt(var + eps) * gamma + beta with given statistics;
    ``relu`` fuses y = max(y, 0) after it, ``relu_input`` x = max(x, 0) before it."""
    name = "batch_norm_forward_eval"
    eps = _check_batch_norm(name, x, eps, gamma=gamma, beta=beta, mean=mean, var=var)
    return _run(name, x, gamma, beta, mean, var, eps, bool(relu), bool(relu_input))


def batch_norm_backward(x, gy, gamma, mean, var, eps, y=None, relu_input=False):
    """Training-mode gradient (batch statistics) -> (gx, ggamma, gbeta). ``y``: the output of a
    forward with ``relu=True``; the gradient reaching BatchNorm is then gy where y > 0, else 0.
    ``relu_input``: the forward had ``relu_input=True``; gx is then 0 where x <= 0."""
    name = "batch_norm_backward"
    eps = _check_batch_norm(name, x, eps, gamma=gamma, mean=mean, var=var)
    _check_array(name, "gy", gy, 3, "(N, C, L)")
    _check_shape(name, "gy", gy, x.shape)
    _check_same_dtype(name, x=x, gy=gy)
    if y is not None:
        _check_array(name, "y", y, 3, "(N, C, L)")
        _check_shape(name, "y", y, x.shape)
        _check_same_dtype(name, x=x, y=y)
    return _run(name, x, gy, gamma, mean, var, eps, y, bool(relu_input))


# ---------------------------------------------------------------- depthwise convolution


def _check_depthwise_weight(name, weight, channels):
    """weight (C*M, 1, kh, kw) for C input channels; returns (kh, kw)."""
    _check_array(name, "weight", weight, 4, "(C*M, 1, kh, kw)")
    out_channels, one, kh, kw = weight.shape
    if one != 1 or out_channels == 0 or out_channels % channels != 0:
        raise ValueError(f"{name}: weight must have shape (C*M, 1, kh, kw) with C={channels} "
                         f"input channels, got {weight.shape}")
    return _ints(name, 1, kh=kh, kw=kw)


def depthwise_conv2d_forward(x, weight, sy, sx, py, px, dy, dx, oh, ow):
    """x (N, C, H, W), weight (C*M, 1, kh, kw) -> y (N, C*M, oh, ow); output channel o
    convolves input channel o // M with weight[o]."""
    name = "depthwise_conv2d_forward"
    _check_array(name, "x", x, 4, "(N, C, H, W)")
    kh, kw = _check_depthwise_weight(name, weight, x.shape[1])
    _check_same_dtype(name, x=x, weight=weight)
    kh, kw, sy, sx, py, px, dy, dx = _window_args(name, kh, kw, sy, sx, py, px, dy, dx)
    oh, ow = _ints(name, 1, oh=oh, ow=ow)
    _check_conv_out(name, "h", x.shape[2], oh, kh, sy, py, dy)
    _check_conv_out(name, "w", x.shape[3], ow, kw, sx, px, dx)
    return _run(name, x, weight, sy, sx, py, px, dy, dx, oh, ow)


def depthwise_conv2d_backward_input(gy, weight, h, w, sy, sx, py, px, dy, dx, in_channels=None):
    """gy (N, C*M, oh, ow) -> gx (N, C, h, w). The shapes of gy and weight do not tell C
    apart from M: pass in_channels=C (None means C = C*M, a multiplier of 1)."""
    name = "depthwise_conv2d_backward_input"
    _check_array(name, "gy", gy, 4, "(N, C*M, oh, ow)")
    if in_channels is None:
        in_channels = gy.shape[1]
    (in_channels,) = _ints(name, 1, in_channels=in_channels)
    kh, kw = _check_depthwise_weight(name, weight, in_channels)
    _check_same_dtype(name, gy=gy, weight=weight)
    if gy.shape[1] != weight.shape[0]:
        raise ValueError(f"{name}: gy has {gy.shape[1]} channels, weight has {weight.shape[0]} filters")
    h, w = _ints(name, 1, h=h, w=w)
    kh, kw, sy, sx, py, px, dy, dx = _window_args(name, kh, kw, sy, sx, py, px, dy, dx)
    _check_conv_out(name, "h", h, gy.shape[2], kh, sy, py, dy)
    _check_conv_out(name, "w", w, gy.shape[3], kw, sx, px, dx)
    return _run(name, gy, weight, h, w, sy, sx, py, px, dy, dx, in_channels=in_channels)


def depthwise_conv2d_backward_weight(x, gy, kh, kw, sy, sx, py, px, dy, dx):
    """x (N, C, H, W), gy (N, C*M, oh, ow) -> gweight (C*M, 1, kh, kw)."""
    name = "depthwise_conv2d_backward_weight"
    _check_array(name, "x", x, 4, "(N, C, H, W)")
    _check_array(name, "gy", gy, 4, "(N, C*M, oh, ow)")
    _check_same_dtype(name, x=x, gy=gy)
    n, channels = x.shape[:2]
    if channels == 0 or gy.shape[0] != n or gy.shape[1] == 0 or gy.shape[1] % channels != 0:
        raise ValueError(f"{name}: gy must have shape (N={n}, C*M, oh, ow) with C={channels} "
                         f"input channels, got {gy.shape}")
    kh, kw, sy, sx, py, px, dy, dx = _window_args(name, kh, kw, sy, sx, py, px, dy, dx)
    _check_conv_out(name, "h", x.shape[2], gy.shape[2], kh, sy, py, dy)
    _check_conv_out(name, "w", x.shape[3], gy.shape[3], kw, sx, px, dx)
    return _run(name, x, gy, kh, kw, sy, sx, py, px, dy, dx)


# ---------------------------------------------------------------- elementwise


def _check_channels_first(kernel, x):
    """x (N, C, ...): a float array of at least 2 dimensions."""
    _check_float(kernel, "x", x)
    if x.ndim < 2:
        raise ValueError(f"{kernel}: x must be at least 2-D (N, C, ...), got shape {x.shape}")


def dropout_apply(x, mask, scale):
    """y = x * mask * scale with mask a bool array of x's shape (inverted dropout: scale = 1 / (1 - p))."""
    name = "dropout_apply"
    _check_float(name, "x", x)
    if not (isinstance(mask, np.ndarray) or _is_cupy(mask)) or mask.dtype != np.bool_:
        got = getattr(mask, "dtype", type(mask).__name__)
        raise TypeError(f"{name}: mask must be a bool array, got {got}")
    _check_shape(name, "mask", mask, x.shape)
    return _run(name, x, mask, _real(name, "scale", scale, minimum=0))


def channel_shuffle(x, groups):
    """x (N, C, ...) -> the same shape with channel j*groups + g taken from channel g*(C/groups) + j
    (ShuffleNet's shuffle; channel_shuffle(y, C // groups) undoes it)."""
    name = "channel_shuffle"
    _check_channels_first(name, x)
    (groups,) = _ints(name, 1, groups=groups)
    if x.shape[1] % groups:
        raise ValueError(f"{name}: groups ({groups}) must divide the {x.shape[1]} channels")
    return _run(name, x, groups)


def bias_relu(x, bias):
    """x (N, C, ...), bias (C,) -> max(x + bias[c], 0) in one pass; NaN stays NaN."""
    name = "bias_relu"
    _check_channels_first(name, x)
    _check_array(name, "bias", bias, 1, "(C,)")
    _check_shape(name, "bias", bias, (x.shape[1],))
    _check_same_dtype(name, x=x, bias=bias)
    return _run(name, x, bias)
