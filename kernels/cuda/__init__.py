"""CUDA kernels run through CuPy: the GPU twins of the reference kernels the GPU path uses (im2col /
col2im, depthwise convolution, pooling, LRN, BatchNorm, dropout), same signatures: the
convolutions take a ``kernels.Window`` and launch its ints. The CPU-only layouts (im2row,
Winograd) have none: the GPU convolution multiplies im2col columns with cuBLAS.

The CUDA C lives in the *.cu files beside this one; each kernel exists as NAME_f32 and
NAME_f64, and those mixed precision runs on float16 arrays (``HALF_KERNELS``) as NAME_f16
too. All of them are compiled together by NVRTC into one ``cupy.RawModule`` on the first
call (CuPy keeps the compiled cubin in its on-disk cache), and each function here allocates
its output, then launches one kernel with one thread per output element.

Two details matter for correctness:

* sizes are passed as ``numpy.int32`` and float scalars in the array's dtype, because CuPy
  marshals a plain Python int as a 64-bit integer and a Python float as a double, which would
  not match the kernels' ``int`` / ``float`` parameters (see ``_kernel_args``);
* the BatchNorm statistics and gradient sums are cooperative block reductions of our own
  (batch_norm.py, norm_fused.cu, in a fixed order); every other kernel is one thread per output
  element.

Importing this module never needs CuPy; calling a function without CuPy raises RuntimeError.
Example, on a machine with a GPU::

    import cupy
    from tinycnn.kernels import cuda
    x = cupy.arange(16, dtype=cupy.float32).reshape(1, 1, 4, 4)
    y, argmax = cuda.max_pool2d_forward(x, 2, 2, 2, 2, 0, 0, 2, 2)
    print(y[0, 0].tolist())        # [[5.0, 7.0], [13.0, 15.0]]

Test hooks (tests/test_cuda_kernels.py uses them to run this module on the CPU):
``_cupy`` is the array module; all that is asked of it is ``empty(shape, dtype=)``,
``ascontiguousarray``, ``where`` and, on its arrays, ``shape``/``dtype``/``size``, ``mean``/``var``/``sum``
over axes, ``[:, None]`` and arithmetic (numpy qualifies). ``_get_kernel(name)`` returns
something called like a CuPy kernel, ``kernel(grid, block, args)``. ``_BLOCK_SIZE`` and
``_MAX_BLOCKS`` shape every launch.
"""
import math
import pathlib

import numpy as np


SOURCE_DIR = pathlib.Path(__file__).parent
_COMMON_HEADER = "common.cuh"
NVRTC_OPTIONS = ("--std=c++17",)

_BLOCK_SIZE = 256       # threads per block
_MAX_BLOCKS = 4096      # grid size cap; the kernels' grid-stride loops cover the rest
_INT32_MAX = 2**31 - 1
_SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64", np.dtype(np.float16): "f16"}
# The kernels with a float16 variant: those that mixed precision (tinycnn.amp) runs on float16
# arrays; they compute in float and round once when they store.
HALF_KERNELS = frozenset({"im2col", "im2col_by_channel", "col2im", "col2im_by_channel", "channel_rows_and_sums",
                          "max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
                          "dropout_apply"})

_cupy = None            # the cupy module, imported on first use
_module = None          # cupy.RawModule holding every kernel, compiled on first use
_kernels = {}           # kernel name -> compiled kernel


def source_files():
    """The CUDA sources of this package (paths), in a fixed order."""
    return sorted(SOURCE_DIR.glob("*.cu"))


def program_source(files=None):
    """The text NVRTC compiles: the given sources (default: all) with common.cuh pasted in.

    Pasting the header (instead of passing an include path) makes CuPy's cache key, which
    hashes the source text, change whenever the header changes.
    """
    header = (SOURCE_DIR / _COMMON_HEADER).read_text()
    include = f'#include "{_COMMON_HEADER}"'
    texts = [pathlib.Path(f).read_text().replace(include, header) for f in files or source_files()]
    return "\n".join(texts)


def _require_cupy():
    global _cupy
    if _cupy is None:
        try:
            import cupy
        except ImportError as error:
            raise RuntimeError(
                "tinycnn.kernels.cuda needs CuPy, which is not installed "
                "(pip install cupy-cuda13x, or cupy-cuda12x for CUDA 12)") from error
        _cupy = cupy
    return _cupy


def _get_kernel(name):
    """The compiled kernel `name` (e.g. "im2col_f32"), callable as kernel(grid, block, args)."""
    global _module
    kernel = _kernels.get(name)
    if kernel is None:
        if _module is None:
            _module = _require_cupy().RawModule(code=program_source(), options=NVRTC_OPTIONS)
        kernel = _kernels[name] = _module.get_function(name)
    return kernel


def _int32(value, op):
    if not 0 <= value <= _INT32_MAX:
        raise ValueError(f"{op}: size {value} does not fit the kernels' int32 parameters")
    return np.int32(value)


def _kernel_args(op, dtype, args):
    """Arrays pass through; Python ints become int32, Python floats become `dtype` scalars
    (float32 for float16 arrays: the half kernels take their scalars as float)."""
    scalar = np.float32 if dtype == np.float16 else dtype.type
    converted = []
    for arg in args:
        if isinstance(arg, (bool, int, np.integer)):
            converted.append(_int32(int(arg), op))
        elif isinstance(arg, float):
            converted.append(scalar(arg))
        else:
            converted.append(arg)
    return tuple(converted)


def _launch(op, work_items, *args):
    """Run kernel `op`_f32/_f64/_f16 (the dtype of the first argument, an array) with one thread per
    work item; when the grid is capped, the kernels' grid-stride loops cover the rest."""
    if work_items == 0:
        return
    dtype = args[0].dtype
    blocks = min(math.ceil(work_items / _BLOCK_SIZE), _MAX_BLOCKS)
    kernel = _get_kernel(f"{op}_{_SUFFIX[dtype]}")
    kernel((blocks,), (_BLOCK_SIZE,), _kernel_args(op, dtype, args))


def _inputs(op, first, *others):
    """C-contiguous copies (if needed) of float arrays that all share the first one's dtype."""
    cupy = _require_cupy()
    if np.dtype(first.dtype) not in _SUFFIX:
        raise TypeError(f"{op}: expected a float32 or float64 array, got {first.dtype}")
    if first.dtype == np.float16 and op not in HALF_KERNELS:
        raise TypeError(f"{op}: has no float16 kernel (those are {', '.join(sorted(HALF_KERNELS))}); "
                        "expected a float32 or float64 array, got float16")
    for other in others:
        if other.dtype != first.dtype:
            raise TypeError(f"{op}: all arrays must be {first.dtype}, got one of {other.dtype}")
    arrays = tuple(cupy.ascontiguousarray(a) for a in (first, *others))
    return arrays if others else arrays[0]


def _empty(shape, like):
    """An uninitialised array of `shape` with the dtype of array `like`."""
    return _cupy.empty(shape, dtype=like.dtype)


def _pixels(shape):
    """Elements per (sample, channel) of an (N, C, ...) shape."""
    return math.prod(shape[2:])


def im2col(x, window, out=None):
    """x (N, C, H, W) -> col (N, C, kh, kw, oh, ow), zeros where a window leaves the image.
    ``out``, if given, is the (C-contiguous) array to fill."""
    x = _inputs("im2col", x)
    n, c, h, w = x.shape
    (kh, kw), (sy, sx), (py, px), (dil_h, dil_w) = window
    oh, ow = window.output_size(h, w)
    col = _empty((n, c, kh, kw, oh, ow), x) if out is None else out
    _launch("im2col", col.size, x, col, n * c, h, w, kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow)
    return col


def col2im(col, window, size, out=None):
    """col (N, C, kh, kw, oh, ow) -> x (N, C, h, w) with size = (h, w): the adjoint of im2col
    (gathered). ``out``, if given, is the (C-contiguous) array to fill."""
    col = _inputs("col2im", col)
    n, c, kh, kw, oh, ow = col.shape
    h, w = size
    _, (sy, sx), (py, px), (dil_h, dil_w) = window
    x = _empty((n, c, h, w), col) if out is None else out
    _launch("col2im", x.size, col, x, n * c, h, w, kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow)
    return x


def im2col_by_channel(x, window, out=None):
    """x (N, C, H, W) -> col (C, kh, kw, N, oh, ow): im2col with the batch inside each row, the
    weight gradient's one-GEMM layout. ``out``, if given, is the (C-contiguous) array to fill."""
    x = _inputs("im2col_by_channel", x)
    n, c, h, w = x.shape
    (kh, kw), (sy, sx), (py, px), (dil_h, dil_w) = window
    oh, ow = window.output_size(h, w)
    col = _empty((c, kh, kw, n, oh, ow), x) if out is None else out
    _launch("im2col_by_channel", col.size, x, col, n, c, h, w, kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow)
    return col


def col2im_by_channel(col, window, size, out=None):
    """col (C, kh, kw, N, oh, ow) -> x (N, C, h, w) with size = (h, w): the adjoint of
    im2col_by_channel (gathered). ``out``, if given, is the (C-contiguous) array to fill."""
    col = _inputs("col2im_by_channel", col)
    c, kh, kw, n, oh, ow = col.shape
    h, w = size
    _, (sy, sx), (py, px), (dil_h, dil_w) = window
    x = _empty((n, c, h, w), col) if out is None else out
    _launch("col2im_by_channel", x.size, col, x, n, c, h, w, kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow)
    return x


def channel_rows_and_sums(gy, with_sums):
    """gy (N, C, ...) -> (gy with N and C swapped, C-contiguous; its sums per channel or None)."""
    return batch_norm.channel_rows_and_sums(gy, with_sums)


def max_pool2d_forward(x, kh, kw, sy, sx, py, px, oh, ow):
    """Max over each window -> (y, argmax int32 = iy*W + ix of the first maximum)."""
    x = _inputs("max_pool2d_forward", x)
    n, c, h, w = x.shape
    y = _empty((n, c, oh, ow), x)
    argmax = _cupy.empty((n, c, oh, ow), dtype=np.int32)
    _launch("max_pool2d_forward", y.size, x, y, argmax, n * c, h, w, kh, kw, sy, sx, py, px,
            oh, ow)
    return y, argmax


def max_pool2d_backward(gy, argmax, h, w, kh, kw, sy, sx, py, px):
    """gx (N, C, h, w): each pixel sums gy over the windows whose argmax it is."""
    gy = _inputs("max_pool2d_backward", gy)
    if argmax.dtype != np.int32:
        raise TypeError(f"max_pool2d_backward: argmax must be int32, got {argmax.dtype}")
    argmax = _cupy.ascontiguousarray(argmax)
    n, c, oh, ow = gy.shape
    gx = _empty((n, c, h, w), gy)
    _launch("max_pool2d_backward", gx.size, gy, argmax, gx, n * c, h, w, kh, kw, sy, sx, py, px,
            oh, ow)
    return gx


def avg_pool2d_forward(x, kh, kw, sy, sx, py, px, oh, ow, count_include_pad):
    """Mean over each window, with PyTorch's divisor rule."""
    x = _inputs("avg_pool2d_forward", x)
    n, c, h, w = x.shape
    y = _empty((n, c, oh, ow), x)
    _launch("avg_pool2d_forward", y.size, x, y, n * c, h, w, kh, kw, sy, sx, py, px, oh, ow,
            bool(count_include_pad))
    return y


def avg_pool2d_backward(gy, h, w, kh, kw, sy, sx, py, px, count_include_pad):
    """gx (N, C, h, w): each pixel sums gy / divisor over the windows that contain it."""
    gy = _inputs("avg_pool2d_backward", gy)
    n, c, oh, ow = gy.shape
    gx = _empty((n, c, h, w), gy)
    _launch("avg_pool2d_backward", gx.size, gy, gx, n * c, h, w, kh, kw, sy, sx, py, px, oh, ow,
            bool(count_include_pad))
    return gx


def lrn_forward(x, size, alpha, beta, k):
    """Local response normalisation across channels -> (y, scale)."""
    x = _inputs("lrn_forward", x)
    y = _empty(x.shape, x)
    scale = _empty(x.shape, x)
    _launch("lrn_forward", x.size, x, y, scale, x.shape[0], x.shape[1], _pixels(x.shape), size,
            float(alpha), float(beta), float(k))
    return y, scale


def lrn_backward(x, y, scale, gy, size, alpha, beta):
    """Gradient of lrn_forward with respect to x."""
    x, y, scale, gy = _inputs("lrn_backward", x, y, scale, gy)
    gx = _empty(x.shape, x)
    _launch("lrn_backward", x.size, x, y, scale, gy, gx, x.shape[0], x.shape[1], _pixels(x.shape),
            size, float(alpha), float(beta))
    return gx


def batch_norm_forward_train(x, gamma, beta, eps, relu=False, relu_input=False):
    """x (N, C, L): normalise with the batch mean and biased variance -> (y, mean, var); two
    launches, the statistics in one pass (batch_norm.py)."""
    x = _inputs("batch_norm_forward_train", x)
    mean, var = batch_norm.statistics(x, relu_input)
    return batch_norm.normalize(x, gamma, beta, mean, var, eps, relu, relu_input), mean, var


def batch_norm_forward_eval(x, gamma, beta, mean, var, eps, relu=False, relu_input=False):
    """x (N, C, L): normalise (max(x, 0) if ``relu_input``) with the given per-channel mean and
    variance (then ReLU if ``relu``), in one launch."""
    return batch_norm.normalize(x, gamma, beta, mean, var, eps, relu, relu_input)


def batch_norm_backward(x, gy, gamma, mean, var, eps, y=None, relu_input=False):
    """Training-mode gradient -> (gx, ggamma, gbeta), in two launches. ``y``: the output of a
    fused ReLU, whose gradient (gy where y > 0) reaches BatchNorm. ``relu_input``: BatchNorm of
    max(x, 0), whose gradient passes on where x > 0."""
    return batch_norm.backward(x, gy, gamma, mean, var, eps, y, relu_input)


def batch_norm_update_running(running_mean, running_var, mean, var, momentum, count):
    """The running statistics updated in place from a batch's, in one launch."""
    batch_norm.update_running(running_mean, running_var, mean, var, momentum, count)


def depthwise_conv2d_forward(x, weight, window):
    """x (N, C, H, W), weight (C*M, 1, kh, kw) -> y (N, C*M, oh, ow)."""
    x, weight = _inputs("depthwise_conv2d_forward", x, weight)
    n, c, h, w = x.shape
    out_channels = weight.shape[0]
    (kh, kw), (sy, sx), (py, px), (dil_h, dil_w) = window
    oh, ow = window.output_size(h, w)
    y = _empty((n, out_channels, oh, ow), x)
    _launch("depthwise_conv2d_forward", y.size, x, weight, y,
            n, c, h, w, out_channels // c, kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow)
    return y


def depthwise_conv2d_backward_input(gy, weight, window, size, in_channels=None):
    """gy (N, C*M, oh, ow) -> gx (N, C, h, w) with size = (h, w); in_channels=None means M = 1."""
    gy, weight = _inputs("depthwise_conv2d_backward_input", gy, weight)
    n, out_channels, oh, ow = gy.shape
    h, w = size
    (kh, kw), (sy, sx), (py, px), (dil_h, dil_w) = window
    c = out_channels if in_channels is None else in_channels
    gx = _empty((n, c, h, w), gy)
    _launch("depthwise_conv2d_backward_input", gx.size, gy, weight, gx,
            n, c, h, w, out_channels // c, kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow)
    return gx


def depthwise_conv2d_backward_weight(x, gy, window):
    """x (N, C, H, W), gy (N, C*M, oh, ow) -> gweight (C*M, 1, kh, kw)."""
    x, gy = _inputs("depthwise_conv2d_backward_weight", x, gy)
    n, c, h, w = x.shape
    (kh, kw), (sy, sx), (py, px), (dil_h, dil_w) = window
    out_channels, oh, ow = gy.shape[1:]
    gweight = _empty((out_channels, 1, kh, kw), x)
    _launch("depthwise_conv2d_backward_weight", gweight.size, x, gy, gweight,
            n, c, h, w, out_channels // c, kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow)
    return gweight


def relu_forward(x):
    """max(x, 0), NaN kept: one CuPy elementwise launch (float16 too, under AMP)."""
    return _require_cupy().maximum(x, x.dtype.type(0))


def relu_backward(gy, y):
    """gy where y > 0, else 0: CuPy's comparison and select."""
    return _require_cupy().where(y > 0, gy, gy.dtype.type(0))


def dropout_apply(x, mask, scale):
    """y = x * mask * scale, mask a bool array of x's shape (scale is usually 1 / (1 - p))."""
    x = _inputs("dropout_apply", x)
    if mask.dtype != np.bool_:
        raise TypeError(f"dropout_apply: mask must be a bool array, got {mask.dtype}")
    if mask.shape != x.shape:
        raise ValueError(f"dropout_apply: mask has shape {mask.shape}, x has {x.shape}")
    mask = _cupy.ascontiguousarray(mask)
    y = _empty(x.shape, x)
    _launch("dropout_apply", x.size, x, mask, y, x.size, float(scale))
    return y



from . import batch_norm  # noqa: E402 (it reads this module's launch helpers at call time)
from .optim import adam_step, sgd_step  # noqa: E402,F401
