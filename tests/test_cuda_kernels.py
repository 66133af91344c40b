"""tinycnn's CUDA kernels (kernels/cuda), proven on a machine without a GPU.

1. Compile: the CUDA C compiles through CuPy's own NVRTC path to cubin for sm_75/80/90, and
   nvcc reports no register spills.
2. Execute: the unchanged CUDA C, built with g++ and tests/cuda_shim.h (tests/cuda_harness.py),
   stands in for the GPU behind kernels.cuda, with numpy as its array module; every function
   is compared with kernels/reference.py under three launch shapes (CuPy-like default, a
   single thread, a drawn odd one).
3. Sanitize: the execution tests run again in a subprocess on a build with
   -fsanitize=address,undefined (TINYCNN_SANITIZE=1).
4. GPU: on a machine with a CUDA device, the execution tests also run through real CuPy.
"""
import contextlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cuda_harness
from tinycnn.kernels import Window
from tinycnn.kernels import cuda as kcuda
from tinycnn.kernels import reference

SANITIZE = cuda_harness.sanitize_requested()
EXAMPLES = 10 if SANITIZE else 40
ARCHS = ("75", "80", "90")
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.dirname(os.path.abspath(__file__))
DEFAULT_LAUNCH = (kcuda._BLOCK_SIZE, kcuda._MAX_BLOCKS)   # (threads per block, max blocks)
ONE_THREAD = (1, 1)
ODD_LAUNCHES = [(32, 1), (5, 3), (64, 2), (3, 1000)]
not_when_sanitizing = pytest.mark.skipif(SANITIZE, reason="runs in the outer, unsanitized session")


def examples(count=EXAMPLES):
    return settings(max_examples=count, deadline=None)


# ---------------------------------------------------------------------------------------------
# devices: the g++ harness (always) and real CuPy (only with a GPU)

@dataclass
class Device:
    put: Callable   # numpy array -> a copy on this device
    get: Callable   # array of this device -> numpy array


class PoisonedNumpy:
    """numpy as kernels.cuda's array module, except that empty() fills its array with NaN
    (or -7 for integers), so an output element that no thread writes cannot pass for right."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def empty(shape, dtype):
        return np.full(shape, np.nan if np.dtype(dtype).kind == "f" else -7, dtype=dtype)


def _cupy_with_gpu():
    cupy = pytest.importorskip("cupy")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError:
        count = 0
    if count == 0:
        pytest.skip("no CUDA device")
    return cupy


@pytest.fixture(scope="module", params=["cpu", pytest.param("gpu", marks=pytest.mark.gpu)])
def device(request):
    """kernels.cuda wired either to the g++-built kernels with numpy arrays, or to a GPU."""
    with pytest.MonkeyPatch.context() as patch:
        if request.param == "cpu":
            patch.setattr(kcuda, "_cupy", PoisonedNumpy())
            patch.setattr(kcuda, "_get_kernel", cuda_harness.load_library().get_function)
            yield Device(np.array, np.asarray)
        else:
            cupy = _cupy_with_gpu()
            patch.setattr(kcuda, "_cupy", cupy)
            yield Device(cupy.asarray, cupy.asnumpy)


@contextlib.contextmanager
def launch_shape(block_size, max_blocks):
    saved = kcuda._BLOCK_SIZE, kcuda._MAX_BLOCKS
    kcuda._BLOCK_SIZE, kcuda._MAX_BLOCKS = block_size, max_blocks
    try:
        yield
    finally:
        kcuda._BLOCK_SIZE, kcuda._MAX_BLOCKS = saved


def run_everywhere(device, odd_launch, op, *args):
    """op(*args) on the device under the default, single-thread and `odd_launch` launch shapes
    -> list of results as numpy arrays (a tuple of them for ops with several outputs)."""
    def to_host(out):
        return tuple(device.get(o) for o in out) if isinstance(out, tuple) else device.get(out)

    results = []
    for shape in (DEFAULT_LAUNCH, ONE_THREAD, odd_launch):
        device_args = [device.put(a) if isinstance(a, np.ndarray) else a for a in args]
        with launch_shape(*shape):
            results.append(to_host(op(*device_args)))
    return results


def tolerance(dtype, scale=1.0):
    """Tolerances for comparing with the reference; `scale` grows atol for long sums. float16:
    the kernel sums in float and rounds once, the reference sums in float32 in another order
    and rounds once: they may land on neighbouring float16 values, 2**-10 relative apart."""
    eps = {np.float16: 2.0**-10, np.float32: 1e-5}.get(np.dtype(dtype).type, 1e-11)
    return dict(rtol=eps, atol=eps * scale)


def reference_of(function, *args):
    """The reference kernel on float16 arrays: computed in float32, rounded to float16 at the end."""
    half = any(isinstance(a, np.ndarray) and a.dtype == np.float16 for a in args)
    if not half:
        return function(*args)
    out = function(*[a.astype(np.float32) if isinstance(a, np.ndarray) and a.dtype == np.float16 else a
                     for a in args])
    cast = lambda o: o.astype(np.float16) if o.dtype == np.float32 else o
    return tuple(cast(o) for o in out) if isinstance(out, tuple) else cast(out)


def assert_all_close(results, expected, dtype, scale=1.0):
    expected = expected if isinstance(expected, tuple) else (expected,)
    for result in results:
        result = result if isinstance(result, tuple) else (result,)
        assert len(result) == len(expected)
        for got, want in zip(result, expected):
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_allclose(got, want, equal_nan=True, **tolerance(dtype, scale))


def random_array(seed, shape, dtype, kind="normal"):
    rng = np.random.default_rng(seed)
    if kind == "ties":                      # few distinct values: max pooling ties everywhere
        return rng.integers(-2, 3, size=shape).astype(dtype)
    values = rng.standard_normal(shape).astype(dtype)
    if kind in ("nan", "-inf"):
        values[rng.random(shape) < 0.2] = np.nan if kind == "nan" else -np.inf
    return values


# ---------------------------------------------------------------------------------------------
# drawn configurations

dtypes = st.sampled_from([np.float32, np.float64])
half_dtypes = st.sampled_from([np.float32, np.float64, np.float16])     # kcuda.HALF_KERNELS
seeds = st.integers(0, 2**32 - 1)
odd_launches = st.sampled_from(ODD_LAUNCHES)


@dataclass
class Geometry:
    n: int
    c: int
    h: int
    w: int
    kh: int
    kw: int
    sy: int
    sx: int
    py: int
    px: int
    dil_h: int
    dil_w: int
    oh: int
    ow: int

    @property
    def size(self):                       # the image's (h, w)
        return self.h, self.w

    @property
    def window(self):                     # the convolution kernels' geometry
        return Window((self.kh, self.kw), (self.sy, self.sx), (self.py, self.px), (self.dil_h, self.dil_w))


def _axis(draw, dilated):
    """(size, kernel, stride, pad, dilation, out) of a convolution axis with >= 1 output."""
    kernel, stride = draw(st.integers(1, 4)), draw(st.integers(1, 4))  # stride may exceed kernel
    dilation = draw(st.integers(1, 3)) if dilated else 1
    pad = draw(st.integers(0, 3))
    smallest = max(1, dilation * (kernel - 1) + 1 - 2 * pad)
    size = draw(st.integers(smallest, smallest + 6))
    out = (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1
    return size, kernel, stride, pad, dilation, out


@st.composite
def conv_geometries(draw, max_channels=3):
    h, kh, sy, py, dil_h, oh = _axis(draw, dilated=True)
    w, kw, sx, px, dil_w, ow = _axis(draw, dilated=True)
    return Geometry(draw(st.integers(1, 2)), draw(st.integers(1, max_channels)),
                    h, w, kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow)


def _pool_axis(draw, ceil_mode):
    """A pooling axis as PyTorch sizes it: pad <= kernel / 2, optional ceil mode whose last
    window still starts inside the input or its left padding."""
    kernel, stride = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    pad = draw(st.integers(0, kernel // 2))
    size = draw(st.integers(max(1, kernel - 2 * pad), kernel + 6))
    span = size + 2 * pad - kernel
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return size, kernel, stride, pad, out


@st.composite
def pool_geometries(draw):
    ceil_mode = draw(st.booleans())
    h, kh, sy, py, oh = _pool_axis(draw, ceil_mode)
    w, kw, sx, px, ow = _pool_axis(draw, ceil_mode)
    return Geometry(draw(st.integers(1, 2)), draw(st.integers(1, 3)),
                    h, w, kh, kw, sy, sx, py, px, 1, 1, oh, ow)


# ---------------------------------------------------------------------------------------------
# execution: im2col / col2im

@given(g=conv_geometries(), dtype=half_dtypes, seed=seeds, launch=odd_launches)
@examples()
def test_im2col_matches_reference(device, g, dtype, seed, launch):
    x = random_array(seed, (g.n, g.c, g.h, g.w), dtype)
    results = run_everywhere(device, launch, kcuda.im2col, x, g.window)
    assert_all_close(results, reference_of(reference.im2col, x, g.window), dtype)


@given(g=conv_geometries(), dtype=half_dtypes, seed=seeds, launch=odd_launches)
@examples()
def test_col2im_matches_reference(device, g, dtype, seed, launch):
    col = random_array(seed, (g.n, g.c, g.kh, g.kw, g.oh, g.ow), dtype)
    args = (g.window, g.size)
    results = run_everywhere(device, launch, kcuda.col2im, col, *args)
    assert_all_close(results, reference_of(reference.col2im, col, *args), dtype)


# ---------------------------------------------------------------------------------------------
# execution: pooling

@given(g=pool_geometries(), dtype=half_dtypes, seed=seeds, launch=odd_launches,
       kind=st.sampled_from(["ties", "normal", "nan", "-inf"]))
@examples(2 * EXAMPLES)
def test_max_pool2d_forward_matches_reference(device, g, dtype, seed, launch, kind):
    x = random_array(seed, (g.n, g.c, g.h, g.w), dtype, kind)
    args = (g.kh, g.kw, g.sy, g.sx, g.py, g.px, g.oh, g.ow)
    y, argmax = reference_of(reference.max_pool2d_forward, x, *args)
    for got_y, got_argmax in run_everywhere(device, launch, kcuda.max_pool2d_forward, x, *args):
        np.testing.assert_array_equal(got_y, y)                 # a max is exact; NaN == NaN here
        assert got_argmax.dtype == np.int32
        np.testing.assert_array_equal(got_argmax, argmax)       # first maximum, first NaN


@given(g=pool_geometries(), dtype=half_dtypes, seed=seeds, launch=odd_launches)
@examples()
def test_max_pool2d_backward_matches_reference(device, g, dtype, seed, launch):
    x = random_array(seed, (g.n, g.c, g.h, g.w), dtype, "ties")
    _, argmax = reference.max_pool2d_forward(x, g.kh, g.kw, g.sy, g.sx, g.py, g.px, g.oh, g.ow)
    gy = random_array(seed + 1, (g.n, g.c, g.oh, g.ow), dtype)
    args = (g.h, g.w, g.kh, g.kw, g.sy, g.sx, g.py, g.px)
    results = run_everywhere(device, launch, kcuda.max_pool2d_backward, gy, argmax, *args)
    assert_all_close(results, reference_of(reference.max_pool2d_backward, gy, argmax, *args), dtype)


@given(g=pool_geometries(), dtype=half_dtypes, seed=seeds, launch=odd_launches,
       count_include_pad=st.booleans())
@examples()
def test_avg_pool2d_forward_matches_reference(device, g, dtype, seed, launch, count_include_pad):
    x = random_array(seed, (g.n, g.c, g.h, g.w), dtype)
    args = (g.kh, g.kw, g.sy, g.sx, g.py, g.px, g.oh, g.ow, count_include_pad)
    results = run_everywhere(device, launch, kcuda.avg_pool2d_forward, x, *args)
    assert_all_close(results, reference_of(reference.avg_pool2d_forward, x, *args), dtype)


@given(g=pool_geometries(), dtype=half_dtypes, seed=seeds, launch=odd_launches,
       count_include_pad=st.booleans())
@examples()
def test_avg_pool2d_backward_matches_reference(device, g, dtype, seed, launch, count_include_pad):
    gy = random_array(seed, (g.n, g.c, g.oh, g.ow), dtype)
    args = (g.h, g.w, g.kh, g.kw, g.sy, g.sx, g.py, g.px, count_include_pad)
    results = run_everywhere(device, launch, kcuda.avg_pool2d_backward, gy, *args)
    assert_all_close(results, reference_of(reference.avg_pool2d_backward, gy, *args), dtype)


def test_max_pool2d_keeps_the_first_of_tied_maxima_and_the_first_nan(device):
    x = np.array([[[[1, 3, 3, 0],
                    [3, 2, 3, np.nan],
                    [0, np.nan, 5, np.nan]]]], dtype=np.float32)
    y, argmax = kcuda.max_pool2d_forward(device.put(x), 3, 2, 1, 2, 0, 0, 1, 2)
    np.testing.assert_array_equal(device.get(y), [[[[np.nan, np.nan]]]])
    np.testing.assert_array_equal(device.get(argmax), [[[[9, 7]]]])
    y, argmax = kcuda.max_pool2d_forward(device.put(x[:, :, :2]), 2, 2, 2, 2, 0, 0, 1, 2)
    np.testing.assert_array_equal(device.get(y), [[[[3, np.nan]]]])
    np.testing.assert_array_equal(device.get(argmax), [[[[1, 7]]]])


# ---------------------------------------------------------------------------------------------
# execution: LRN and BatchNorm

@given(n=st.integers(1, 2), c=st.integers(1, 8), hw=st.sampled_from([(1, 1), (2, 3), (4, 4)]),
       size=st.integers(1, 7), alpha=st.sampled_from([1e-4, 0.01, 0.5]),
       beta=st.sampled_from([0.5, 0.75, 1.0]), k=st.sampled_from([1.0, 2.0]),
       dtype=dtypes, seed=seeds, launch=odd_launches)
@examples()
def test_lrn_forward_and_backward_match_reference(device, n, c, hw, size, alpha, beta, k, dtype,
                                                  seed, launch):
    x = random_array(seed, (n, c, *hw), dtype)
    gy = random_array(seed + 1, (n, c, *hw), dtype)
    y, scale = reference.lrn_forward(x, size, alpha, beta, k)
    assert_all_close(run_everywhere(device, launch, kcuda.lrn_forward, x, size, alpha, beta, k),
                     (y, scale), dtype)
    results = run_everywhere(device, launch, kcuda.lrn_backward, x, y, scale, gy, size, alpha, beta)
    assert_all_close(results, reference.lrn_backward(x, y, scale, gy, size, alpha, beta), dtype)


@st.composite
def batch_norm_cases(draw):
    shape = (draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 9)))
    relu, relu_input = draw(st.booleans()), draw(st.booleans())
    return shape, draw(st.sampled_from([1e-5, 1e-3])), relu, relu_input, draw(dtypes), draw(seeds)


def _batch_norm_arrays(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(dtype)
    gamma, beta = rng.standard_normal((2, shape[1])).astype(dtype)
    return x, gamma, beta


@given(case=batch_norm_cases(), launch=odd_launches)
@examples()
def test_batch_norm_forward_train_and_eval_match_reference(device, case, launch):
    shape, eps, relu, relu_input, dtype, seed = case
    x, gamma, beta = _batch_norm_arrays(shape, dtype, seed)
    results = run_everywhere(device, launch, kcuda.batch_norm_forward_train, x, gamma, beta, eps, relu, relu_input)
    assert_all_close(results, reference.batch_norm_forward_train(x, gamma, beta, eps, relu, relu_input), dtype)
    mean = random_array(seed + 1, shape[1:2], dtype)
    var = np.abs(random_array(seed + 2, shape[1:2], dtype))
    results = run_everywhere(device, launch, kcuda.batch_norm_forward_eval, x, gamma, beta, mean,
                             var, eps, relu, relu_input)
    assert_all_close(results, reference.batch_norm_forward_eval(x, gamma, beta, mean, var, eps, relu, relu_input),
                     dtype)


@given(case=batch_norm_cases(), launch=odd_launches)
@examples()
def test_batch_norm_backward_matches_reference(device, case, launch):
    shape, eps, relu, relu_input, dtype, seed = case
    x, gamma, beta = _batch_norm_arrays(shape, dtype, seed)
    gy = random_array(seed + 1, shape, dtype)
    y, mean, var = reference.batch_norm_forward_train(x, gamma, beta, eps, relu, relu_input)
    y = y if relu else None
    results = run_everywhere(device, launch, kcuda.batch_norm_backward, x, gy, gamma, mean, var, eps, y, relu_input)
    expected = reference.batch_norm_backward(x, gy, gamma, mean, var, eps, y, relu_input)
    # gx cancels m * gy against two sums of m terms: scale the absolute tolerance with m
    assert_all_close(results, expected, dtype, scale=shape[0] * shape[2])


# ---------------------------------------------------------------------------------------------
# execution: depthwise convolution

@st.composite
def depthwise_cases(draw):
    g = draw(conv_geometries())
    return g, draw(st.integers(1, 3)), draw(dtypes), draw(seeds)


@given(case=depthwise_cases(), launch=odd_launches)
@examples()
def test_depthwise_conv2d_forward_matches_reference(device, case, launch):
    g, m, dtype, seed = case
    x = random_array(seed, (g.n, g.c, g.h, g.w), dtype)
    weight = random_array(seed + 1, (g.c * m, 1, g.kh, g.kw), dtype)
    results = run_everywhere(device, launch, kcuda.depthwise_conv2d_forward, x, weight, g.window)
    assert_all_close(results, reference.depthwise_conv2d_forward(x, weight, g.window), dtype)


@given(case=depthwise_cases(), launch=odd_launches, name_channels=st.booleans())
@examples()
def test_depthwise_conv2d_backward_input_matches_reference(device, case, launch, name_channels):
    g, m, dtype, seed = case
    gy = random_array(seed, (g.n, g.c * m, g.oh, g.ow), dtype)
    weight = random_array(seed + 1, (g.c * m, 1, g.kh, g.kw), dtype)
    in_channels = g.c if name_channels or m > 1 else None      # None means multiplier 1
    args = (g.window, g.size, in_channels)
    results = run_everywhere(device, launch, kcuda.depthwise_conv2d_backward_input, gy, weight, *args)
    assert_all_close(results, reference.depthwise_conv2d_backward_input(gy, weight, *args), dtype)


@given(case=depthwise_cases(), launch=odd_launches)
@examples()
def test_depthwise_conv2d_backward_weight_matches_reference(device, case, launch):
    g, m, dtype, seed = case
    x = random_array(seed, (g.n, g.c, g.h, g.w), dtype)
    gy = random_array(seed + 1, (g.n, g.c * m, g.oh, g.ow), dtype)
    results = run_everywhere(device, launch, kcuda.depthwise_conv2d_backward_weight, x, gy, g.window)
    assert_all_close(results, reference.depthwise_conv2d_backward_weight(x, gy, g.window), dtype,
                     scale=g.n * g.oh * g.ow)


# ---------------------------------------------------------------------------------------------
# execution: elementwise kernels (their oracle is a one-line numpy expression)

shapes = st.sampled_from([(1, 1), (2, 3), (2, 6, 1, 1), (3, 4, 2, 5), (1, 12, 3, 3)])


@given(shape=shapes, p=st.sampled_from([0.0, 0.3, 0.9]), dtype=half_dtypes, seed=seeds,
       launch=odd_launches)
@examples()
def test_dropout_apply_is_x_times_mask_times_scale(device, shape, p, dtype, seed, launch):
    x = random_array(seed, shape, dtype, "nan")
    mask = np.random.default_rng(seed).random(shape) >= p
    scale = 1 / (1 - p)
    results = run_everywhere(device, launch, kcuda.dropout_apply, x, mask, scale)
    # float16: the kernel multiplies in float (the scale a float32), then rounds once
    expected = (x.astype(np.float32) * mask * np.float32(scale)).astype(dtype) if dtype == np.float16 else \
        x * mask * dtype(scale)
    assert_all_close(results, expected, dtype)


# ---------------------------------------------------------------------------------------------
# the loader's marshalling and errors, and the harness's refusals

def test_loader_passes_sizes_as_int32_and_scalars_in_the_array_dtype():
    array = np.zeros(3, np.float32)
    converted = kcuda._kernel_args("op", np.dtype(np.float32), (array, 7, True, 0.5))
    assert converted[0] is array
    assert [type(a) for a in converted[1:]] == [np.int32, np.int32, np.float32]
    assert converted[1:] == (7, 1, 0.5)
    assert type(kcuda._kernel_args("op", np.dtype(np.float64), (0.5,))[0]) is np.float64
    with pytest.raises(ValueError, match="im2col: size 2147483648 does not fit"):
        kcuda._kernel_args("im2col", np.dtype(np.float32), (2**31,))


def test_loader_passes_float_scalars_of_half_kernels_as_float32():
    converted = kcuda._kernel_args("dropout_apply", np.dtype(np.float16), (np.zeros(2, np.float16), 0.5))
    assert type(converted[1]) is np.float32


def test_loader_refuses_float16_for_kernels_without_a_half_variant(device):
    x = device.put(np.zeros((1, 2, 3), np.float16))
    with pytest.raises(TypeError, match="lrn_forward: has no float16 kernel"):
        kcuda.lrn_forward(x, 3, 1e-4, 0.75, 2.0)
    assert "lrn_forward_f16" not in kernel_names() and "im2col_f16" in kernel_names()


def test_loader_refuses_arrays_of_the_wrong_type_or_shape(device):
    with pytest.raises(TypeError, match="im2col: expected a float32 or float64 array, got int64"):
        kcuda.im2col(device.put(np.zeros((1, 1, 2, 2), np.int64)), Window.of(1))
    with pytest.raises(TypeError, match="depthwise_conv2d_forward: all arrays must be float32, got one of float64"):
        kcuda.depthwise_conv2d_forward(device.put(np.zeros((1, 1, 2, 2), np.float32)),
                                       device.put(np.zeros((1, 1, 1, 1))), Window.of(1))
    x = device.put(np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError, match="dropout_apply: mask must be a bool array, got float32"):
        kcuda.dropout_apply(x, x, 2.0)
    with pytest.raises(ValueError, match=r"dropout_apply: mask has shape \(3,\), x has \(2, 3\)"):
        kcuda.dropout_apply(x, device.put(np.ones(3, bool)), 2.0)


def test_module_imports_without_cupy_and_fails_clearly_when_used():
    script = ("import sys; sys.modules['cupy'] = None\n"
              "import numpy as np\n"
              "from tinycnn.kernels import cuda\n"
              "try:\n"
              "    cuda.dropout_apply(np.zeros((1, 1), np.float32), np.ones((1, 1), bool), 1.0)\n"
              "except RuntimeError as error:\n"
              "    print('RuntimeError:', error)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "RuntimeError: tinycnn.kernels.cuda needs CuPy" in result.stdout


@pytest.fixture(scope="module")
def dropout_kernel():
    return cuda_harness.load_library().get_function("dropout_apply_f32")


def _read_only(array):
    array.flags.writeable = False
    return array


def _dropout_args(**changes):
    args = dict(x=np.zeros(6, np.float32), mask=np.ones(6, bool), y=np.zeros(6, np.float32),
                size=np.int32(6), scale=np.float32(2.0))
    args.update(changes)
    return tuple(args.values())


@pytest.mark.parametrize("changes, message", [
    (dict(size=6), r"parameter size \(int\) needs a numpy int32 scalar, got int"),
    (dict(size=np.int64(6)), r"parameter size \(int\) needs a numpy int32 scalar, got int64"),
    (dict(x=np.zeros(6)), r"parameter x \(const float\*\) needs a float32 array, got float64"),
    (dict(x=np.zeros(12, np.float32)[::2]), r"parameter x .* non-contiguous"),
    (dict(y=_read_only(np.zeros(6, np.float32))), r"parameter y .* read-only"),
    (dict(x=[0.0] * 6), r"parameter x .* needs an array, got list"),
])
def test_harness_refuses_what_cupy_would_marshal_differently(dropout_kernel, changes, message):
    with pytest.raises(TypeError, match=message):
        dropout_kernel((1,), (32,), _dropout_args(**changes))


def test_harness_checks_argument_count_and_launch_shape(dropout_kernel):
    with pytest.raises(TypeError, match="takes 5 arguments, got 4"):
        dropout_kernel((1,), (32,), _dropout_args()[:4])
    with pytest.raises(ValueError, match="more than 1024 threads per block"):
        dropout_kernel((1,), (64, 32), _dropout_args())
    x = np.arange(-3, 3, dtype=np.float32)
    mask, y = x > -2, np.zeros_like(x)
    dropout_kernel(1, (1, 1, 1), _dropout_args(x=x, mask=mask, y=y))        # ints and 3-d shapes, as in CuPy
    np.testing.assert_array_equal(y, x * mask * 2)


# ---------------------------------------------------------------------------------------------
# compile through CuPy's NVRTC path, and ptxas register use

@pytest.fixture(scope="module")
def nvrtc():
    """compile(source, arch) -> cubin bytes, with the options a cupy.RawModule of this package
    would use. CuPy 14.2's compile_using_nvrtc asks the driver for the current device even
    when `arch` is given (to pick cubin vs PTX); with no driver here, that one query is
    replaced by its answer for an explicit arch: cubin."""
    compiler = pytest.importorskip("cupy.cuda.compiler")
    core = pytest.importorskip("cupy._core.core")
    options = core.assemble_cupy_compiler_options(kcuda.NVRTC_OPTIONS) + ("-ftz=true",)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(compiler, "_get_arch_for_options_for_nvrtc",
                      lambda arch=None: (f"-arch=sm_{arch}", "cubin"))

        def compile(source, arch):
            cubin, _ = compiler.compile_using_nvrtc(source, options=options, arch=arch)
            return cubin

        compile.error = compiler.CompileException
        yield compile


def kernel_names():
    return cuda_harness.load_library().names()


@not_when_sanitizing
@pytest.mark.parametrize("arch", ARCHS)
def test_nvrtc_compiles_the_module_to_cubin(nvrtc, arch):
    cubin = nvrtc(kcuda.program_source(), arch)
    assert cubin.startswith(b"\x7fELF")
    for name in kernel_names():
        assert name.encode() + b"\0" in cubin, f"{name} missing from the sm_{arch} cubin"


@not_when_sanitizing
@pytest.mark.parametrize("source", kcuda.source_files(), ids=lambda path: path.name)
def test_nvrtc_compiles_each_source_on_its_own(nvrtc, source):
    assert nvrtc(kcuda.program_source([source]), "80").startswith(b"\x7fELF")


@not_when_sanitizing
def test_nvrtc_path_rejects_what_nvcc_accepts(nvrtc):
    with pytest.raises(nvrtc.error, match="INFINITY"):
        nvrtc('extern "C" __global__ void f(float* x) { x[0] = INFINITY; }', "80")


@not_when_sanitizing
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_nvcc_reports_no_register_spills(tmp_path):
    source = tmp_path / "kernels.cu"
    source.write_text(kcuda.program_source())
    result = subprocess.run(["nvcc", "-Xptxas", "-v", "-arch=sm_80", "-cubin", "-o",
                             str(tmp_path / "kernels.cubin"), str(source)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # "Function properties for NAME\n    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads"
    spills = dict(re.findall(r"Function properties for (\w+)\s+\d+ bytes stack frame, "
                             r"(\d+ bytes spill stores, \d+ bytes spill loads)",
                             result.stdout + result.stderr))
    assert set(kernel_names()) <= set(spills)     # plus non-inlined helpers such as pow's
    assert {name: s for name, s in spills.items()
            if s != "0 bytes spill stores, 0 bytes spill loads"} == {}


# ---------------------------------------------------------------------------------------------
# the same execution tests under AddressSanitizer + UndefinedBehaviorSanitizer

def _sanitizer_env():
    return {**os.environ, "TINYCNN_SANITIZE": "1", "LD_PRELOAD": cuda_harness.asan_runtime(),
            "ASAN_OPTIONS": "detect_leaks=0"}


@not_when_sanitizing
def test_execution_tests_pass_under_address_and_undefined_behavior_sanitizers():
    result = subprocess.run(
        [sys.executable, "-m", "pytest", __file__, "-q", "-x", "-p", "no:cacheprovider",
         "-m", "not gpu"],
        capture_output=True, text=True, env=_sanitizer_env(), cwd=REPOSITORY)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "Sanitizer" not in output
    assert re.search(r"\d+ passed", output)


@pytest.mark.skipif(not SANITIZE, reason="only in the sanitizer subprocess")
def test_the_sanitizer_subprocess_runs_the_sanitized_build():
    assert cuda_harness.load_library().sanitized


@not_when_sanitizing
def test_sanitizer_build_catches_an_out_of_bounds_write():
    script = ("import numpy as np, cuda_harness\n"
              "kernel = cuda_harness.load_library().get_function('dropout_apply_f32')\n"
              "x = np.zeros(6, np.float32)\n"
              "too_small = np.zeros(3, np.float32)\n"
              "kernel((1,), (32,), (x, np.ones(6, bool), too_small, np.int32(6), np.float32(1)))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=_sanitizer_env(), cwd=TESTS)
    assert result.returncode != 0
    assert "AddressSanitizer: heap-buffer-overflow" in result.stderr
    assert "dropout_apply" in result.stderr


# ---------------------------------------------------------------------------------------------
# execution: the kernels of the fused GPU path (issue 18): im2col with the batch in each row,
# BatchNorm's running statistics, one-pass statistics far from zero

@given(g=conv_geometries(), dtype=half_dtypes, seed=seeds, launch=odd_launches)
@examples(EXAMPLES // 2)
def test_im2col_by_channel_is_im2col_with_the_batch_inside_each_row(device, g, dtype, seed, launch):
    x = random_array(seed, (g.n, g.c, g.h, g.w), dtype)
    results = run_everywhere(device, launch, kcuda.im2col_by_channel, x, g.window)
    expected = np.ascontiguousarray(reference.im2col(x, g.window).transpose(1, 2, 3, 0, 4, 5))
    for result in results:      # a copy: every element exactly
        np.testing.assert_array_equal(result, expected)


@given(g=conv_geometries(), dtype=half_dtypes, seed=seeds, launch=odd_launches)
@examples(EXAMPLES // 2)
def test_col2im_by_channel_is_col2im_of_the_transposed_columns(device, g, dtype, seed, launch):
    col = random_array(seed, (g.c, g.kh, g.kw, g.n, g.oh, g.ow), dtype)
    args = (g.window, g.size)
    results = run_everywhere(device, launch, kcuda.col2im_by_channel, col, *args)
    expected = reference_of(reference.col2im, np.ascontiguousarray(col.transpose(3, 0, 1, 2, 4, 5)), *args)
    assert_all_close(results, expected, dtype)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 7), (2, 4, 33, 9)])
def test_channel_rows_and_sums_swaps_batch_and_channels_and_sums_each_channel(device, dtype, shape):
    gy = random_array(len(shape), shape, dtype)
    for launch in (DEFAULT_LAUNCH, ONE_THREAD, ODD_LAUNCHES[1]):
        with launch_shape(*launch):
            rows, sums = kcuda.channel_rows_and_sums(device.put(gy), True)
            rows_only, none = kcuda.channel_rows_and_sums(device.put(gy), False)
        np.testing.assert_array_equal(device.get(rows), gy.swapaxes(0, 1))     # a copy: exact
        np.testing.assert_array_equal(device.get(rows_only), gy.swapaxes(0, 1))
        assert none is None
        # summed in double in a tree order: float16 and float32 within their final rounding of the
        # float64 sum; float64 within m roundings of the values' magnitude (m values, another order)
        values = gy.astype(np.float64).swapaxes(0, 1).reshape(shape[1], -1)
        m = values.shape[1]
        atol = np.finfo(dtype).eps * (m if dtype == np.float64 else 1) * (np.abs(values).sum(axis=1) + 1e-30)
        np.testing.assert_array_less(np.abs(device.get(sums) - values.sum(axis=1)), atol + 1e-300)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm_update_running_is_the_momentum_average(device, dtype):
    rng = np.random.default_rng(3)
    running_mean, running_var, mean, var = rng.random((4, 5)).astype(dtype)
    want_mean = (1 - 0.1) * running_mean + 0.1 * mean
    want_var = (1 - 0.1) * running_var + 0.1 * 8 / 7 * var       # unbiased over 8 values
    on_device = [device.put(a) for a in (running_mean, running_var, mean, var)]
    kcuda.batch_norm_update_running(*on_device, 0.1, 8)
    # three roundings of values below 1 in float32
    np.testing.assert_allclose(device.get(on_device[0]), want_mean, **tolerance(dtype))
    np.testing.assert_allclose(device.get(on_device[1]), want_var, **tolerance(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm_statistics_in_one_pass_stay_accurate_far_from_zero(device, dtype):
    """Values 1e4 +- 1: the one-pass sum of squares would lose every digit of the variance
    without its shift (1e8 against 1 in float32); it keeps float32's rounding and, in float64,
    about 1e-12 relative (the two-pass NumPy result is the oracle)."""
    x = (1e4 + np.random.default_rng(1).standard_normal((3, 2, 50))).astype(dtype)
    ones, zeros = np.ones(2, dtype), np.zeros(2, dtype)
    for _, mean, var in run_everywhere(device, ODD_LAUNCHES[1], kcuda.batch_norm_forward_train, x, ones, zeros,
                                       1e-5):
        exact = x.astype(np.float64)
        np.testing.assert_allclose(mean, exact.mean(axis=(0, 2)), rtol=np.finfo(dtype).eps, atol=0)
        np.testing.assert_allclose(var, exact.var(axis=(0, 2)), rtol=2 * np.finfo(dtype).eps if dtype == np.float32
                                   else 1e-12, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nesterov, first", [(False, True), (False, False), (True, False)])
def test_sgd_step_kernel_is_the_optimizers_update(device, dtype, nesterov, first):
    import tinycnn.optim
    rng = np.random.default_rng(6)
    param, grad, buffer = rng.standard_normal((3, 37)).astype(dtype)
    optimizer = tinycnn.optim.SGD([tinycnn.nn.Parameter(param.copy())], lr=0.1, momentum=0.9, nesterov=nesterov,
                                  weight_decay=0.01)
    want, state = param.copy(), {} if first else {"momentum_buffer": buffer.copy()}
    optimizer.update(want, grad, state, optimizer.param_groups[0])
    got = [device.put(a) for a in (param, grad, buffer)]
    with launch_shape(*ODD_LAUNCHES[1]):
        kcuda.sgd_step(*got, 0.1, 0.9, 0.0, 0.01, nesterov, first)
    # the host's arithmetic in its order, one rounding per operation: a few ulps at most
    np.testing.assert_allclose(device.get(got[0]), want, **tolerance(dtype))
    np.testing.assert_allclose(device.get(got[2]), state["momentum_buffer"], **tolerance(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("decoupled, amsgrad", [(False, False), (False, True), (True, False)])
def test_adam_step_kernel_is_the_optimizers_update(device, dtype, decoupled, amsgrad):
    import tinycnn.optim
    rng = np.random.default_rng(7)
    param, grad, exp_avg = rng.standard_normal((3, 37)).astype(dtype)
    exp_avg_sq, max_sq = rng.random((2, 37)).astype(dtype)
    kind = tinycnn.optim.AdamW if decoupled else tinycnn.optim.Adam
    optimizer = kind([tinycnn.nn.Parameter(param.copy())], lr=0.01, weight_decay=0.1, amsgrad=amsgrad)
    state = {"step": 3, "exp_avg": exp_avg.copy(), "exp_avg_sq": exp_avg_sq.copy(), "max_exp_avg_sq": max_sq.copy()}
    want = param.copy()
    optimizer.update(want, grad, state, optimizer.param_groups[0])
    got = [device.put(a) for a in (param, grad, exp_avg, exp_avg_sq, max_sq)]
    beta1, beta2 = optimizer.param_groups[0]["betas"]
    with launch_shape(*ODD_LAUNCHES[1]):
        kcuda.adam_step(*got, 0.01 / (1 - beta1 ** 3), beta1, beta2, (1 - beta2 ** 3) ** 0.5, 1e-8, 0.1,
                        1 - 0.01 * 0.1, decoupled, amsgrad)
    for index, expected in ((0, want), (2, state["exp_avg"]), (3, state["exp_avg_sq"]), (4, state["max_exp_avg_sq"])):
        np.testing.assert_allclose(device.get(got[index]), expected, **tolerance(dtype))
