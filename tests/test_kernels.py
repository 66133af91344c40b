"""tinycnn.kernels: the Numba CPU kernels equal the NumPy reference, the reference equals
PyTorch, and the dispatch functions reject bad arguments before any kernel runs.

Comparisons run in float64 (exact for max pooling, 1e-6 relative otherwise); one test
checks that float32 stays float32. Output sizes come from `out_size`, the caller's rule.
"""
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinycnn import kernels

EXAMPLES = settings(max_examples=25, deadline=None)
TORCH_EXAMPLES = settings(max_examples=10, deadline=None)


def out_size(size, k, s, p, d=1, ceil_mode=False):
    """Output length of a sliding window, as the engine (and PyTorch) computes it."""
    steps = size + 2 * p - d * (k - 1) - 1
    if not ceil_mode:
        return steps // s + 1
    out = -(-steps // s) + 1
    if (out - 1) * s >= size + p:        # the last window must start inside the input or its left padding
        out -= 1
    return out


@dataclass(frozen=True)
class Case:
    """A batch shape and a sliding window."""
    n: int
    c: int
    h: int
    w: int
    kh: int
    kw: int
    sy: int = 1
    sx: int = 1
    py: int = 0
    px: int = 0
    dil_h: int = 1
    dil_w: int = 1
    ceil_mode: bool = False

    @property
    def oh(self):
        return out_size(self.h, self.kh, self.sy, self.py, self.dil_h, self.ceil_mode)

    @property
    def ow(self):
        return out_size(self.w, self.kw, self.sx, self.px, self.dil_w, self.ceil_mode)

    @property
    def size(self):                       # the image's (h, w)
        return self.h, self.w

    @property
    def window(self):                     # the convolution kernels' geometry
        return kernels.Window((self.kh, self.kw), (self.sy, self.sx), (self.py, self.px), (self.dil_h, self.dil_w))

    @property
    def pool(self):                       # kh, kw, sy, sx, py, px
        return self.kh, self.kw, self.sy, self.sx, self.py, self.px


@st.composite
def conv_cases(draw):
    """Convolution windows: stride below and above the kernel, padding, dilation, odd sizes."""
    kh, kw, sy, sx = (draw(st.integers(1, 4)) for _ in range(4))
    py, px = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    dil_h, dil_w = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h = draw(st.integers(max(1, dil_h * (kh - 1) + 1 - 2 * py), 12))   # at least one window fits
    w = draw(st.integers(max(1, dil_w * (kw - 1) + 1 - 2 * px), 12))
    return Case(draw(st.integers(1, 3)), draw(st.integers(1, 4)), h, w, kh, kw, sy, sx, py, px, dil_h, dil_w)


@st.composite
def pool_cases(draw, max_pad=lambda k: k - 1):
    """Pooling windows: padding below the kernel size (so every window holds a pixel), ceil mode."""
    kh, kw, sy, sx = (draw(st.integers(1, 4)) for _ in range(4))
    py, px = draw(st.integers(0, max_pad(kh))), draw(st.integers(0, max_pad(kw)))
    h = draw(st.integers(max(1, kh - 2 * py), 11))
    w = draw(st.integers(max(1, kw - 2 * px), 11))
    return Case(draw(st.integers(1, 3)), draw(st.integers(1, 4)), h, w, kh, kw, sy, sx, py, px,
                ceil_mode=draw(st.booleans()))


@dataclass(frozen=True)
class WinogradCase:
    """A 3x3 stride-1 convolution for the Winograd transforms: k output channels."""
    n: int
    c: int
    k: int
    h: int
    w: int
    py: int
    px: int

    @property
    def oh(self):
        return self.h + 2 * self.py - 2

    @property
    def ow(self):
        return self.w + 2 * self.px - 2

    @property
    def tiles(self):                      # th, tw
        return kernels.winograd_tile_grid(self.oh, self.ow)

    def planes(self, seed, channels):
        """Random (36, S) planes for `channels` channels per tile."""
        th, tw = self.tiles
        return normal(seed, kernels.WINOGRAD_PLANES, kernels.winograd_plane_size(self.n * th * tw * channels))


@st.composite
def winograd_cases(draw):
    """Odd and even sizes, padding 0 to 3 (an image smaller than a tile, windows mostly padding)."""
    py, px = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    h, w = draw(st.integers(max(1, 3 - 2 * py), 11)), draw(st.integers(max(1, 3 - 2 * px), 11))
    return WinogradCase(draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 5)), h, w, py, px)


seeds = st.integers(0, 2**32 - 1)


def normal(seed, *shape, ties=False):
    """float64 N(0, 1) values; ties=True draws from {-2, ..., 2} so maxima repeat."""
    rng = np.random.default_rng(seed)
    if ties:
        return rng.integers(-2, 3, size=shape).astype(np.float64)
    return rng.standard_normal(shape)


def run(implementation, kernel, *args, **kwargs):
    with kernels.use(implementation):
        return getattr(kernels, kernel)(*args, **kwargs)


def as_tuple(result):
    return result if isinstance(result, tuple) else (result,)


def assert_cpu_matches_reference(kernel, *args, exact=False, **kwargs):
    """Run `kernel` through both implementations; same shapes, dtypes and values."""
    expected = run("reference", kernel, *args, **kwargs)
    actual = run("cpu", kernel, *args, **kwargs)
    assert len(as_tuple(actual)) == len(as_tuple(expected))
    for got, want in zip(as_tuple(actual), as_tuple(expected)):
        assert got.shape == want.shape and got.dtype == want.dtype
        if exact:
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-12)
    return expected


# ---------------------------------------------------------------- checks shared by drawn and picked cases


def check_winograd(case, seed):
    (th, tw), geometry = case.tiles, (case.py, case.px) + case.tiles
    x = normal(seed, case.n, case.c, case.h, case.w)
    assert_cpu_matches_reference("winograd_input_transform", x, *geometry)
    assert_cpu_matches_reference("winograd_input_transform_backward", case.planes(seed + 1, case.c),
                                 case.n, case.c, case.h, case.w, *geometry)
    assert_cpu_matches_reference("winograd_output_transform", case.planes(seed + 2, case.k),
                                 case.n, case.k, case.oh, case.ow)
    gy = normal(seed + 3, case.n, case.k, case.oh, case.ow)
    assert_cpu_matches_reference("winograd_output_transform_backward", gy)


def check_im2col(case, seed):
    x = normal(seed, case.n, case.c, case.h, case.w)
    assert_cpu_matches_reference("im2col", x, case.window)


def check_col2im(case, seed):
    col = normal(seed, case.n, case.c, case.kh, case.kw, case.oh, case.ow)
    assert_cpu_matches_reference("col2im", col, case.window, case.size)


def check_im2row_row2im(case, seed):
    x = normal(seed, case.n, case.c, case.h, case.w)
    rows = assert_cpu_matches_reference("im2row", x, case.window, exact=True)
    col = kernels.reference.im2col(x, case.window)
    np.testing.assert_array_equal(rows, col.transpose(0, 4, 5, 2, 3, 1))    # the same windows, one row per pixel
    g = normal(seed + 1, *rows.shape)
    assert_cpu_matches_reference("row2im", g, case.window, case.size)


def check_max_pool(case, seed, ties=False):
    x = normal(seed, case.n, case.c, case.h, case.w, ties=ties)
    _, argmax = assert_cpu_matches_reference("max_pool2d_forward", x, *case.pool, case.oh, case.ow,
                                             exact=True)
    gy = normal(seed + 1, case.n, case.c, case.oh, case.ow)
    assert_cpu_matches_reference("max_pool2d_backward", gy, argmax, case.h, case.w, *case.pool)


def check_avg_pool(case, seed, count_include_pad):
    x = normal(seed, case.n, case.c, case.h, case.w)
    assert_cpu_matches_reference("avg_pool2d_forward", x, *case.pool, case.oh, case.ow, count_include_pad)
    gy = normal(seed + 1, case.n, case.c, case.oh, case.ow)
    assert_cpu_matches_reference("avg_pool2d_backward", gy, case.h, case.w, *case.pool, count_include_pad)


def check_depthwise(case, seed, multiplier):
    x = normal(seed, case.n, case.c, case.h, case.w)
    weight = normal(seed + 1, case.c * multiplier, 1, case.kh, case.kw)
    gy = normal(seed + 2, case.n, case.c * multiplier, case.oh, case.ow)
    assert_cpu_matches_reference("depthwise_conv2d_forward", x, weight, case.window)
    assert_cpu_matches_reference("depthwise_conv2d_backward_input", gy, weight, case.window, case.size,
                                 in_channels=case.c)
    assert_cpu_matches_reference("depthwise_conv2d_backward_weight", x, gy, case.window)


def check_lrn(shape, seed, size, alpha, beta, k):
    x = normal(seed, *shape)
    y, scale = assert_cpu_matches_reference("lrn_forward", x, size, alpha, beta, k)
    gy = normal(seed + 1, *shape)
    assert_cpu_matches_reference("lrn_backward", x, y, scale, gy, size, alpha, beta)


def check_batch_norm(shape, seed, eps, relu=False, relu_input=False):
    x = normal(seed, *shape) * 3 + (-0.5 if relu_input else 1)
    gamma, beta = normal(seed + 1, shape[1]), normal(seed + 2, shape[1])
    y, mean, var = assert_cpu_matches_reference("batch_norm_forward_train", x, gamma, beta, eps, relu, relu_input)
    assert_cpu_matches_reference("batch_norm_forward_eval", x, gamma, beta, mean, var, eps, relu, relu_input)
    gy = normal(seed + 3, *shape)
    gx, _, _ = assert_cpu_matches_reference("batch_norm_backward", x, gy, gamma, mean, var, eps,
                                            y if relu else None, relu_input)
    if relu:
        assert (y >= 0).all()
    if relu_input:
        assert (gx[x <= 0] == 0).all()


# ---------------------------------------------------------------- cpu == reference on drawn configurations


@given(case=conv_cases(), seed=seeds)
@EXAMPLES
def test_im2col_cpu_matches_reference(case, seed):
    check_im2col(case, seed)


@given(case=conv_cases(), seed=seeds)
@EXAMPLES
def test_col2im_cpu_matches_reference(case, seed):
    check_col2im(case, seed)


@given(case=conv_cases(), seed=seeds)
@EXAMPLES
def test_im2row_and_row2im_cpu_match_reference(case, seed):
    check_im2row_row2im(case, seed)


@pytest.mark.parametrize("implementation", ["reference", "cpu"])
@given(case=conv_cases(), seed=seeds)
@EXAMPLES
def test_row2im_is_the_adjoint_of_im2row_and_fills_out(implementation, case, seed):
    x = normal(seed, case.n, case.c, case.h, case.w)
    g = normal(seed + 1, case.n, case.oh, case.ow, case.kh, case.kw, case.c)
    rows_out, x_out = np.full_like(g, np.nan), np.full_like(x, np.nan)   # stale contents
    with kernels.use(implementation):
        rows = kernels.im2row(x, case.window, out=rows_out)
        back = kernels.row2im(g, case.window, case.size, out=x_out)
    assert rows is rows_out and back is x_out
    np.testing.assert_allclose(np.vdot(rows, g), np.vdot(x, back), rtol=1e-10)


@given(case=winograd_cases(), seed=seeds)
@EXAMPLES
def test_winograd_transforms_cpu_match_reference(case, seed):
    check_winograd(case, seed)


@pytest.mark.parametrize("implementation", ["reference", "cpu"])
@given(case=winograd_cases(), seed=seeds)
@EXAMPLES
def test_winograd_transforms_compute_the_convolution(implementation, case, seed):
    x, weight = normal(seed, case.n, case.c, case.h, case.w), normal(seed + 1, case.k, case.c, 3, 3)
    (th, tw), tiles = case.tiles, case.n * case.tiles[0] * case.tiles[1]
    with kernels.use(implementation):
        v = kernels.winograd_input_transform(x, case.py, case.px, th, tw)
        u = kernels.winograd_weight_transform(weight)                       # (36, C, K)
        m = np.zeros((36, kernels.winograd_plane_size(tiles * case.k)))
        m[:, :tiles * case.k] = (v[:, :tiles * case.c].reshape(36, tiles, case.c) @ u).reshape(36, -1)
        y = kernels.winograd_output_transform(m, case.n, case.k, case.oh, case.ow)
    col = kernels.reference.im2col(x, kernels.Window.of(3, padding=(case.py, case.px)))
    expected = np.einsum("kcij,ncijyx->nkyx", weight, col)
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("implementation", ["reference", "cpu"])
@given(case=winograd_cases(), seed=seeds)
@EXAMPLES
def test_winograd_backward_transforms_are_the_adjoints_and_fill_out(implementation, case, seed):
    (th, tw), geometry = case.tiles, (case.py, case.px) + case.tiles
    x, gx_out = normal(seed, case.n, case.c, case.h, case.w), np.full((case.n, case.c, case.h, case.w), np.nan)
    gy, y_out = normal(seed + 1, case.n, case.k, case.oh, case.ow), np.full((case.n, case.k, case.oh, case.ow), np.nan)
    gv, m = case.planes(seed + 2, case.c), case.planes(seed + 3, case.k)
    v_out, gm_out = np.full_like(gv, np.nan), np.full_like(m, np.nan)     # stale contents
    weight, gu = normal(seed + 4, case.k, case.c, 3, 3), normal(seed + 5, 36, case.c, case.k)
    with kernels.use(implementation):
        v = kernels.winograd_input_transform(x, *geometry, out=v_out)
        gx = kernels.winograd_input_transform_backward(gv, case.n, case.c, case.h, case.w, *geometry, out=gx_out)
        y = kernels.winograd_output_transform(m, case.n, case.k, case.oh, case.ow, out=y_out)
        gm = kernels.winograd_output_transform_backward(gy, out=gm_out)
        u, gweight = kernels.winograd_weight_transform(weight), kernels.winograd_weight_transform_backward(gu)
    assert v is v_out and gx is gx_out and y is y_out and gm is gm_out
    used_v, used_m = case.n * th * tw * case.c, case.n * th * tw * case.k
    assert not v[:, used_v:].any() and not gm[:, used_m:].any()         # past the tiles: zeros
    np.testing.assert_allclose(np.vdot(v[:, :used_v], gv[:, :used_v]), np.vdot(x, gx), rtol=1e-10)
    np.testing.assert_allclose(np.vdot(y, gy), np.vdot(m[:, :used_m], gm[:, :used_m]), rtol=1e-10)
    np.testing.assert_allclose(np.vdot(u, gu), np.vdot(weight, gweight), rtol=1e-10)


@pytest.mark.parametrize("implementation", ["reference", "cpu"])
@given(lead=st.lists(st.integers(0, 3), max_size=2), a=st.integers(1, 70), b=st.integers(1, 70),
       seed=seeds, dtype=st.sampled_from([np.float32, np.float64]))
@EXAMPLES
def test_swap_last_axes_transposes_the_last_two_axes(implementation, lead, a, b, seed, dtype):
    x = normal(seed, *lead, a, b).astype(dtype)     # partial 32x32 tiles, either axis the longer
    expected = x.swapaxes(-1, -2)
    out = np.full(expected.shape, np.nan, dtype)
    with kernels.use(implementation):
        assert kernels.swap_last_axes(x, out=out) is out
        got = kernels.swap_last_axes(x)
    assert got.flags.c_contiguous and got.dtype == dtype
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("implementation", ["reference", "cpu"])
@given(case=conv_cases(), seed=seeds)
@EXAMPLES
def test_im2col_and_col2im_fill_the_out_array_they_are_given(implementation, case, seed):
    x = normal(seed, case.n, case.c, case.h, case.w)
    col = normal(seed + 1, case.n, case.c, case.kh, case.kw, case.oh, case.ow)
    col_out, x_out = np.full_like(col, np.nan), np.full_like(x, np.nan)   # stale contents
    with kernels.use(implementation):
        assert kernels.im2col(x, case.window, out=col_out) is col_out
        assert kernels.col2im(col, case.window, case.size, out=x_out) is x_out
        np.testing.assert_array_equal(col_out, kernels.im2col(x, case.window))
        np.testing.assert_array_equal(x_out, kernels.col2im(col, case.window, case.size))


@pytest.mark.parametrize("implementation", ["reference", "cpu"])
@given(case=conv_cases(), seed=seeds)
@EXAMPLES
def test_col2im_is_the_adjoint_of_im2col(implementation, case, seed):
    x = normal(seed, case.n, case.c, case.h, case.w)
    col = normal(seed + 1, case.n, case.c, case.kh, case.kw, case.oh, case.ow)
    with kernels.use(implementation):
        left = np.vdot(kernels.im2col(x, case.window), col)
        right = np.vdot(x, kernels.col2im(col, case.window, case.size))
    assert left == pytest.approx(right, rel=1e-12, abs=1e-12)


@given(case=pool_cases(), seed=seeds, ties=st.booleans())
@EXAMPLES
def test_max_pool_cpu_matches_reference(case, seed, ties):
    check_max_pool(case, seed, ties)


@given(case=pool_cases(), seed=seeds, count_include_pad=st.booleans())
@EXAMPLES
def test_avg_pool_cpu_matches_reference(case, seed, count_include_pad):
    check_avg_pool(case, seed, count_include_pad)


@given(case=conv_cases(), seed=seeds, multiplier=st.sampled_from([1, 2]))
@EXAMPLES
def test_depthwise_cpu_matches_reference(case, seed, multiplier):
    check_depthwise(case, seed, multiplier)


@given(n=st.integers(1, 3), c=st.integers(1, 9), h=st.integers(1, 5), w=st.integers(1, 5),
       size=st.integers(1, 6), alpha=st.sampled_from([1e-4, 0.1, 1.0]), beta=st.sampled_from([0.5, 0.75]),
       k=st.sampled_from([1.0, 2.0]), seed=seeds)
@EXAMPLES
def test_lrn_cpu_matches_reference(n, c, h, w, size, alpha, beta, k, seed):
    check_lrn((n, c, h, w), seed, size, alpha, beta, k)


@given(n=st.integers(1, 4), c=st.integers(1, 5), length=st.integers(1, 20),
       eps=st.sampled_from([1e-5, 1e-3]), relu=st.booleans(), relu_input=st.booleans(), seed=seeds)
@EXAMPLES
def test_batch_norm_cpu_matches_reference(n, c, length, eps, relu, relu_input, seed):
    check_batch_norm((n, c, length), seed, eps, relu, relu_input)


def test_batch_norm_relu_is_relu_of_batch_norm_and_masks_the_gradient():
    x = normal(0, 3, 4, 50)
    gamma, beta, gy = normal(1, 4), normal(2, 4), normal(3, 3, 4, 50)
    plain, mean, var = kernels.batch_norm_forward_train(x, gamma, beta, 1e-5)
    fused, _, _ = kernels.batch_norm_forward_train(x, gamma, beta, 1e-5, relu=True)
    np.testing.assert_array_equal(fused, np.maximum(plain, 0))
    assert 0 < (fused == 0).mean() < 1
    masked = np.where(plain > 0, gy, 0)
    for got, expected in zip(kernels.batch_norm_backward(x, gy, gamma, mean, var, 1e-5, y=fused),
                             kernels.batch_norm_backward(x, masked, gamma, mean, var, 1e-5)):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_relu_batch_norm_is_batch_norm_of_relu_and_masks_the_gradient():
    x = normal(0, 3, 4, 50)
    gamma, beta, gy = normal(1, 4), normal(2, 4), normal(3, 3, 4, 50)
    plain, mean, var = kernels.batch_norm_forward_train(np.maximum(x, 0), gamma, beta, 1e-5)
    fused, fused_mean, fused_var = kernels.batch_norm_forward_train(x, gamma, beta, 1e-5, relu_input=True)
    for got, expected in ((fused, plain), (fused_mean, mean), (fused_var, var)):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    gx, ggamma, gbeta = kernels.batch_norm_backward(np.maximum(x, 0), gy, gamma, mean, var, 1e-5)
    expected = (np.where(x > 0, gx, 0), ggamma, gbeta)
    for got, want in zip(kernels.batch_norm_backward(x, gy, gamma, mean, var, 1e-5, relu_input=True), expected):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert 0 < (expected[0] == 0).mean() < 1


# ---------------------------------------------------------------- borders (also run bounds-checked)

CONV_EDGE_CASES = [
    Case(1, 1, 1, 1, 1, 1),                                  # a single pixel
    Case(2, 2, 1, 1, 3, 3, py=2, px=2),                      # windows mostly padding
    Case(1, 2, 2, 3, 1, 1, 2, 3, 2, 2),                      # 1x1 kernel, padding larger than needed
    Case(2, 3, 7, 5, 2, 2, 3, 3, 1, 1),                      # stride larger than the kernel
    Case(1, 2, 5, 4, 3, 3, py=3, px=3, dil_h=3, dil_w=2),          # dilation, padding = dilated extent
    Case(2, 1, 6, 9, 4, 1, 1, 2, 3, 0),                      # asymmetric window
    Case(1, 3, 9, 9, 3, 3, 2, 2, 1, 1, 2, 2),                # stride and dilation together
]

POOL_EDGE_CASES = [
    Case(1, 1, 1, 1, 1, 1),
    Case(2, 2, 1, 1, 3, 3, py=2, px=2),                      # one real pixel per window
    Case(2, 2, 6, 6, 3, 3, 2, 2, 1, 1, ceil_mode=True),      # last window hangs past the padding
    Case(1, 2, 7, 5, 2, 2, 3, 3, ceil_mode=True),            # stride larger than the kernel
    Case(2, 1, 5, 8, 4, 1, 1, 3, 3, 0, ceil_mode=True),      # asymmetric window, pad = k - 1
    Case(1, 3, 32, 32, 3, 3, 2, 2, 1, 1),                    # GoogLeNet-style 3x3/2 pool
]


@pytest.mark.parametrize("case", CONV_EDGE_CASES, ids=str)
def test_conv_edge_cases(case):
    check_im2col(case, 0)
    check_col2im(case, 1)
    check_depthwise(case, 2, multiplier=2)
    check_im2row_row2im(case, 3)


WINOGRAD_EDGE_CASES = [
    WinogradCase(1, 1, 1, 1, 1, 1, 1),                       # one pixel, one output
    WinogradCase(2, 2, 3, 1, 2, 3, 2),                       # tiles almost all padding
    WinogradCase(1, 3, 2, 3, 3, 0, 0),                       # one output of a 4x4 tile
    WinogradCase(2, 3, 2, 4, 7, 0, 1),                       # even rows, odd columns
    WinogradCase(1, 2, 4, 9, 2, 1, 3),                       # padding wider than the image
    WinogradCase(3, 17, 5, 8, 8, 1, 1),                      # CIFAR-like, odd channel count
    WinogradCase(2, 5, 3, 13, 11, 1, 0),                     # a last tile of 1 row, of 1 column
]


@pytest.mark.parametrize("case", WINOGRAD_EDGE_CASES, ids=str)
def test_winograd_edge_cases(case):
    check_winograd(case, 0)


@pytest.mark.parametrize("shape", [(1, 1), (1, 33), (33, 1), (2, 32, 64), (3, 65, 31), (0, 4, 5)])
def test_swap_last_axes_edge_cases(shape):
    assert_cpu_matches_reference("swap_last_axes", normal(0, *shape), exact=True)


@pytest.mark.parametrize("case", POOL_EDGE_CASES, ids=str)
def test_pool_edge_cases(case):
    check_max_pool(case, 0)
    check_max_pool(case, 1, ties=True)
    check_avg_pool(case, 2, count_include_pad=True)
    check_avg_pool(case, 3, count_include_pad=False)


@pytest.mark.parametrize("channels, size", [(1, 1), (1, 5), (3, 8), (5, 2), (7, 4), (8, 3)])
def test_lrn_edge_cases(channels, size):
    check_lrn((2, channels, 3, 2), 0, size, 0.5, 0.75, 2.0)


@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 3, 1), (5, 1, 1), (2, 2, 7)])
@pytest.mark.parametrize("relu, relu_input", [(False, False), (True, False), (False, True), (True, True)])
def test_batch_norm_edge_cases(shape, relu, relu_input):
    check_batch_norm(shape, 0, 1e-5, relu, relu_input)


# ---------------------------------------------------------------- max pooling: ties, padding, NaN


@pytest.mark.parametrize("implementation", ["reference", "cpu"])
def test_max_pool_ties_pick_the_first_pixel_of_the_window(implementation):
    h, w, k, s, p = 5, 6, 3, 2, 1
    x = np.full((1, 1, h, w), 7.0)
    oh, ow = out_size(h, k, s, p), out_size(w, k, s, p)
    y, argmax = run(implementation, "max_pool2d_forward", x, k, k, s, s, p, p, oh, ow)
    first_row = np.maximum(np.arange(oh) * s - p, 0)          # the first real pixel in scan order
    first_col = np.maximum(np.arange(ow) * s - p, 0)
    np.testing.assert_array_equal(argmax[0, 0], first_row[:, None] * w + first_col[None, :])
    np.testing.assert_array_equal(y, 7.0)


@pytest.mark.parametrize("implementation", ["reference", "cpu"])
def test_max_pool_never_selects_padding_even_below_minus_infinity(implementation):
    x = np.full((1, 2, 3, 3), -np.inf)
    y, argmax = run(implementation, "max_pool2d_forward", x, 2, 2, 2, 2, 1, 1, 2, 2)
    np.testing.assert_array_equal(y, -np.inf)
    np.testing.assert_array_equal(argmax[0, 0], [[0, 1], [3, 4]])   # first real pixel of each window
    assert argmax.dtype == np.int32


@pytest.mark.parametrize("implementation", ["reference", "cpu"])
def test_max_pool_propagates_nan_and_points_at_it(implementation):
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = np.nan
    x[0, 0, 1, 0] = np.nan
    y, argmax = run(implementation, "max_pool2d_forward", x, 2, 2, 2, 2, 0, 0, 2, 2)
    assert np.isnan(y[0, 0, 0, 0]) and argmax[0, 0, 0, 0] == 1     # the first NaN in scan order
    np.testing.assert_array_equal(y[0, 0].ravel()[1:], [7.0, 13.0, 15.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_keeps_nan_and_passes_gradient_only_where_the_output_is_positive(dtype):
    x = np.array([-np.inf, -1.0, -0.0, 0.0, 1e-30, 2.0, np.inf, np.nan] * 5, dtype)   # 40: past one vector
    y = assert_cpu_matches_reference("relu_forward", x, exact=True)
    np.testing.assert_array_equal(y[:8], np.array([0, 0, 0, 0, 1e-30, 2, np.inf, np.nan], dtype))
    gx = assert_cpu_matches_reference("relu_backward", np.arange(40, dtype=dtype) + 1, y, exact=True)
    np.testing.assert_array_equal(gx[:8], [0, 0, 0, 0, 5, 6, 7, 0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("values, expected", [
    ([-3.0, 2.0, -0.0], 3.0), ([-np.inf, 1.0], np.inf), ([1.0, np.nan, np.inf], np.nan), ([-np.nan], np.nan),
    ([-0.0, 0.0], 0.0), ([], 0.0), ([7e-45, -1e-45], 7e-45)])     # subnormals (float32's smallest)
def test_max_abs_is_the_largest_magnitude_and_nan_or_inf_when_present(dtype, values, expected):
    x = np.resize(np.array(values, dtype), 37 * len(values))                    # 37 copies: past one vector
    got = assert_cpu_matches_reference("max_abs", x, exact=True)
    assert got.shape == () and got.dtype == dtype
    np.testing.assert_array_equal(got, np.asarray(expected, dtype))


@pytest.mark.parametrize("h, w, ceil_mode", [(4, 6, False), (5, 7, False), (5, 7, True), (3, 3, False), (8, 9, True)])
@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_stride_2_fast_paths_match_the_reference(h, w, ceil_mode, k, dtype):
    """The CPU's 2x2 and 3x3 stride-2 paths (planes without NaN; a ceil-mode partial window takes
    the general one): ties, -inf, and a NaN in one plane of the batch beside clean ones."""
    x = normal(3, 2, 3, h, w, ties=True).astype(dtype)
    x[0, 1, 0, :] = -np.inf
    x[1, 2, h - 1, w - 1] = np.nan
    oh, ow = out_size(h, k, 2, 0, ceil_mode=ceil_mode), out_size(w, k, 2, 0, ceil_mode=ceil_mode)
    y, argmax = assert_cpu_matches_reference("max_pool2d_forward", x, k, k, 2, 2, 0, 0, oh, ow, exact=True)
    nan_in_a_window = (h - k) % 2 == 0 or ceil_mode, (w - k) % 2 == 0 or ceil_mode
    assert np.isnan(y[1, 2]).sum() == all(nan_in_a_window)


@pytest.mark.parametrize("implementation", ["reference", "cpu"])
def test_max_pool_backward_sums_overlapping_windows(implementation):
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 1.0                                       # the centre wins all four 2x2 windows
    y, argmax = run(implementation, "max_pool2d_forward", x, 2, 2, 1, 1, 0, 0, 2, 2)
    gy = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    gx = run(implementation, "max_pool2d_backward", gy, argmax, 3, 3, 2, 2, 1, 1, 0, 0)
    expected = np.zeros((1, 1, 3, 3))
    expected[0, 0, 1, 1] = 10.0
    np.testing.assert_array_equal(gx, expected)


@pytest.mark.parametrize("window", [(2, 2, 2, 2, 0, 0), (3, 3, 2, 2, 1, 1), (3, 2, 1, 3, 1, 0)])
def test_max_pool_backward_edge_cases_ignore_argmax_outside_the_window(window):
    """argmax comes from the caller: negative, past the image or outside its window, it wins nothing."""
    kh, kw, sy, sx, py, px = window
    h, w = 7, 5
    oh, ow = out_size(h, kh, sy, py), out_size(w, kw, sx, px)
    rng = np.random.default_rng(kh * 10 + sx)
    argmax = rng.integers(-h * w, 2 * h * w, size=(2, 3, oh, ow)).astype(np.int32)
    argmax[0, 0, 0, 0] = -1
    argmax[0, 0, 0, -1] = h * w
    gy = normal(1, 2, 3, oh, ow)
    gx = assert_cpu_matches_reference("max_pool2d_backward", gy, argmax, h, w, *window, exact=True)
    assert np.count_nonzero(gx) < gy.size                  # most drawn indices lie outside their window


# ---------------------------------------------------------------- dtypes and layouts


def example_calls(dtype):
    """One call of every kernel on a small padded, strided configuration: {name: (args, kwargs)}."""
    rng = np.random.default_rng(0)

    def data(*shape):
        return rng.standard_normal(shape).astype(dtype)

    x = data(2, 4, 9, 7)
    k, s, p = 3, 2, 1
    oh, ow = out_size(9, k, s, p), out_size(7, k, s, p)
    window = (k, k, s, s, p, p)
    conv = kernels.Window.of(k, stride=s, padding=p)
    gy = data(2, 4, oh, ow)
    argmax = kernels.reference.max_pool2d_forward(x, *window, oh, ow)[1]
    weight = data(8, 1, k, k)
    gy_depthwise = data(2, 8, oh, ow)
    lrn_y, lrn_scale = kernels.reference.lrn_forward(x, 5, 1e-2, 0.75, 2.0)
    xb = data(4, 3, 10) * 2 + 1
    gamma, beta, mean, var = data(3), data(3), data(3), data(3) ** 2 + 0.5
    return {
        "im2col": ((x, conv), {}),
        "col2im": ((data(2, 4, k, k, oh, ow), conv, (9, 7)), {}),
        "im2row": ((x, conv), {}),
        "row2im": ((data(2, oh, ow, k, k, 4), conv, (9, 7)), {}),
        "swap_last_axes": ((x,), {}),
        "max_pool2d_forward": ((x, *window, oh, ow), {}),
        "max_pool2d_backward": ((gy, argmax, 9, 7, *window), {}),
        "avg_pool2d_forward": ((x, *window, oh, ow, False), {}),
        "avg_pool2d_backward": ((gy, 9, 7, *window, True), {}),
        "relu_forward": ((x,), {}),
        "relu_backward": ((data(*x.shape), kernels.reference.relu_forward(x)), {}),
        "lrn_forward": ((x, 5, 1e-2, 0.75, 2.0), {}),
        "lrn_backward": ((x, lrn_y, lrn_scale, data(*x.shape), 5, 1e-2, 0.75), {}),
        "batch_norm_forward_train": ((xb, gamma, beta, 1e-5), {}),
        "batch_norm_forward_eval": ((xb, gamma, beta, mean, var, 1e-5), {}),
        "batch_norm_backward": ((xb, data(4, 3, 10), gamma, mean, var, 1e-5), {}),
        "depthwise_conv2d_forward": ((x, weight, conv), {}),
        "depthwise_conv2d_backward_input": ((gy_depthwise, weight, conv, (9, 7)), {"in_channels": 4}),
        "depthwise_conv2d_backward_weight": ((x, gy_depthwise, conv), {}),
        "winograd_input_transform": ((x, 1, 1, 5, 4), {}),
        "winograd_input_transform_backward": ((data(36, 2 * 5 * 4 * 4), 2, 4, 9, 7, 1, 1, 5, 4), {}),
        "winograd_output_transform": ((data(36, 2 * 3 * 2 * 3 + 5), 2, 3, 9, 7), {}),
        "winograd_output_transform_backward": ((data(2, 3, 9, 7),), {}),
        "max_abs": ((x - 0.5,), {}),
        "winograd_weight_transform": ((data(5, 4, 3, 3),), {}),
        "winograd_weight_transform_backward": ((data(36, 4, 5),), {}),
    }


KERNEL_NAMES = list(example_calls(np.float64))


@pytest.mark.parametrize("implementation", ["reference", "cpu"])
def test_float32_stays_float32_and_close_to_float64(implementation):
    calls32, calls64 = example_calls(np.float32), example_calls(np.float64)
    for kernel in KERNEL_NAMES:
        args, kwargs = calls32[kernel]
        single = as_tuple(run(implementation, kernel, *args, **kwargs))
        # the same inputs, widened: float32 results must be float32 and agree to float32 precision
        wide_args = [a.astype(np.float64) if isinstance(a, np.ndarray) and a.dtype == np.float32 else a
                     for a in args]
        double = as_tuple(run(implementation, kernel, *wide_args, **kwargs))
        for got, want in zip(single, double):
            assert got.dtype == (np.int32 if want.dtype == np.int32 else np.float32), kernel
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=kernel)
    assert set(KERNEL_NAMES) == set(kernels.cpu.__all__)


def test_cpu_accepts_non_contiguous_inputs():
    for kernel, (args, kwargs) in example_calls(np.float64).items():
        # same values, but every array is a strided view into a larger buffer
        views = [np.repeat(a, 2, axis=-1)[..., ::2] if isinstance(a, np.ndarray) else a for a in args]
        assert any(isinstance(v, np.ndarray) and not v.flags.c_contiguous for v in views)
        expected = as_tuple(run("reference", kernel, *args, **kwargs))
        for got, want in zip(as_tuple(run("cpu", kernel, *views, **kwargs)), expected):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-12, err_msg=kernel)


# ---------------------------------------------------------------- argument checks name the kernel


def bad_calls():
    """(kernel, exception, message fragment, call) for one broken argument at a time."""
    calls = example_calls(np.float64)

    def swap(kernel, index, value, **kwargs):
        args, base_kwargs = calls[kernel]
        args = list(args)
        args[index] = value
        return lambda: getattr(kernels, kernel)(*args, **{**base_kwargs, **kwargs})

    x, conv = calls["im2col"][0]                  # x (2, 4, 9, 7), a 3x3 window with stride 2, padding 1
    col = kernels.reference.im2col(x, conv)
    smaller = kernels.Window.of(2, stride=2, padding=1)
    col_in = calls["col2im"][0][0]
    shared = np.zeros((16, 200))
    return [
        ("im2col", ValueError, "4-D", swap("im2col", 0, x[0])),
        ("im2col", TypeError, "float32 or float64", swap("im2col", 0, x.astype(np.int64))),
        ("im2col", TypeError, "NumPy or CuPy array", swap("im2col", 0, x.tolist())),
        ("im2col", ValueError, "window stride must be positive, got (0, 2)",
         swap("im2col", 1, conv._replace(stride=(0, 2)))),
        ("im2col", ValueError, "window padding must be non-negative, got (1, -1)",
         swap("im2col", 1, conv._replace(padding=(1, -1)))),
        ("im2col", ValueError, "window dilation must be positive", swap("im2col", 1, conv._replace(dilation=(0, 1)))),
        ("im2col", TypeError, "window kernel must be an (h, w) pair of ints",
         swap("im2col", 1, conv._replace(kernel=(3.0, 3)))),
        ("im2col", TypeError, "window stride must be an (h, w) pair of ints",
         swap("im2col", 1, conv._replace(stride=(True, 2)))),
        ("im2col", ValueError, "no window fits an image of 9x7", swap("im2col", 1, kernels.Window.of(11))),
        ("im2col", TypeError, "expected a kernels.Window as the window, got tuple",
         swap("im2col", 1, (3, 3, 2, 2, 1, 1))),
        ("im2col", ValueError, "out must have shape", swap("im2col", 0, x, out=np.empty(col.shape[1:]))),
        ("im2col", TypeError, "out must have dtype float64", swap("im2col", 0, x, out=col.astype(np.float32))),
        ("im2col", TypeError, "out must be a ndarray", swap("im2col", 0, x, out=col.tolist())),
        ("col2im", ValueError, "out must be C-contiguous",
         swap("col2im", 0, col_in, out=np.empty(x.shape[::-1]).T)),
        ("col2im", ValueError, "out must not overlap the input",
         swap("col2im", 0, col_in, out=col_in.reshape(-1)[:x.size].reshape(x.shape))),
        ("col2im", ValueError, "6-D", swap("col2im", 0, x)),
        ("col2im", ValueError, "on an image of 3x7 gives an output of 2x4, but col has 5x4",
         swap("col2im", 2, (3, 7))),
        ("col2im", ValueError, "the window's kernel (2, 2) does not match the kernel axes (3, 3) of col",
         swap("col2im", 1, smaller)),
        ("col2im", TypeError, "size must be the image's (h, w), got 9", swap("col2im", 2, 9)),
        ("col2im", TypeError, "expected a kernels.Window", swap("col2im", 1, None)),
        ("im2row", ValueError, "4-D", swap("im2row", 0, x[0])),
        ("im2row", ValueError, "no window fits", swap("im2row", 1, kernels.Window.of(3, dilation=5))),
        ("im2row", ValueError, "out must have shape", swap("im2row", 0, x, out=col)),
        ("row2im", ValueError, "6-D", swap("row2im", 0, x)),
        ("row2im", ValueError, "on an image of 9x2 gives an output of 5x1, but rows has 5x4",
         swap("row2im", 2, (9, 2))),
        ("row2im", ValueError, "the window's kernel (2, 2) does not match the kernel axes (3, 3) of rows",
         swap("row2im", 1, smaller)),
        ("row2im", TypeError, "out must have dtype float64",
         swap("row2im", 0, calls["row2im"][0][0], out=np.empty(x.shape, np.float32))),
        ("swap_last_axes", ValueError, "at least 2 dimensions", swap("swap_last_axes", 0, x[0, 0, 0])),
        ("swap_last_axes", ValueError, "out must have shape", swap("swap_last_axes", 0, x, out=np.empty(x.shape))),
        ("swap_last_axes", TypeError, "float32 or float64", swap("swap_last_axes", 0, x.astype(np.int32))),
        ("max_pool2d_forward", ValueError, "padding 3 must be smaller than the kernel size 3",
         swap("max_pool2d_forward", 5, 3)),
        ("max_pool2d_forward", ValueError, "ow=9 does not fit", swap("max_pool2d_forward", 8, 9)),
        ("max_pool2d_forward", ValueError, "the input h must be positive",
         swap("max_pool2d_forward", 0, x[:, :, :0])),
        ("max_pool2d_backward", TypeError, "argmax must be an int32 array",
         swap("max_pool2d_backward", 1, calls["max_pool2d_backward"][0][1].astype(np.int64))),
        ("max_pool2d_backward", ValueError, "argmax must have shape",
         swap("max_pool2d_backward", 1, calls["max_pool2d_backward"][0][1][:1])),
        ("avg_pool2d_forward", ValueError, "kw must be positive", swap("avg_pool2d_forward", 2, 0)),
        ("avg_pool2d_backward", ValueError, "does not fit an input h=2", swap("avg_pool2d_backward", 1, 2)),
        ("relu_forward", TypeError, "float32 or float64", swap("relu_forward", 0, x.astype(np.int32))),
        ("max_abs", TypeError, "float32 or float64", swap("max_abs", 0, x.astype(np.int32))),
        ("relu_backward", ValueError, "y must have shape", swap("relu_backward", 1, x[:1])),
        ("relu_backward", TypeError, "y has dtype float32 but gy has float64",
         swap("relu_backward", 1, x.astype(np.float32))),
        ("lrn_forward", ValueError, "size must be positive", swap("lrn_forward", 1, 0)),
        ("lrn_forward", TypeError, "alpha must be a real number", swap("lrn_forward", 2, "0.1")),
        ("lrn_backward", TypeError, "scale has dtype float32",
         swap("lrn_backward", 2, calls["lrn_backward"][0][2].astype(np.float32))),
        ("lrn_backward", ValueError, "gy must have shape", swap("lrn_backward", 3, x[:1])),
        ("batch_norm_forward_train", ValueError, "3-D", swap("batch_norm_forward_train", 0, x)),
        ("batch_norm_forward_train", ValueError, "gamma must have shape (3,)",
         swap("batch_norm_forward_train", 1, np.ones(4))),
        ("batch_norm_forward_train", TypeError, "gamma has dtype float32",
         swap("batch_norm_forward_train", 1, np.ones(3, np.float32))),
        ("batch_norm_forward_train", ValueError, "at least one value per channel",
         swap("batch_norm_forward_train", 0, np.ones((4, 3, 0)))),
        ("batch_norm_forward_eval", ValueError, "eps must be >= 0", swap("batch_norm_forward_eval", 5, -1.0)),
        ("batch_norm_backward", ValueError, "gy must have shape",
         swap("batch_norm_backward", 1, np.ones((4, 3, 9)))),
        ("depthwise_conv2d_forward", ValueError, "C=4 input channels",
         swap("depthwise_conv2d_forward", 1, np.ones((6, 1, 3, 3)))),
        ("depthwise_conv2d_forward", TypeError, "weight has dtype float32",
         swap("depthwise_conv2d_forward", 1, np.ones((8, 1, 3, 3), np.float32))),
        ("depthwise_conv2d_forward", ValueError, "window dilation must be positive",
         swap("depthwise_conv2d_forward", 2, conv._replace(dilation=(1, 0)))),
        ("depthwise_conv2d_forward", ValueError,
         "the window's kernel (2, 2) does not match the kernel axes (3, 3) of weight",
         swap("depthwise_conv2d_forward", 2, smaller)),
        ("depthwise_conv2d_backward_input", ValueError, "C=3 input channels",
         swap("depthwise_conv2d_backward_input", 0, calls["depthwise_conv2d_backward_input"][0][0],
              in_channels=3)),
        ("depthwise_conv2d_backward_input", ValueError, "gy has 4 channels, weight has 8 filters",
         swap("depthwise_conv2d_backward_input", 0, np.ones((2, 4, 5, 4)))),
        ("depthwise_conv2d_backward_input", ValueError, "gives an output of 4x4, but gy has 5x4",
         swap("depthwise_conv2d_backward_input", 3, (8, 7))),
        ("depthwise_conv2d_backward_input", ValueError,
         "the window's kernel (2, 2) does not match the kernel axes (3, 3) of weight",
         swap("depthwise_conv2d_backward_input", 2, smaller)),
        ("depthwise_conv2d_backward_weight", ValueError, "C=4 input channels",
         swap("depthwise_conv2d_backward_weight", 1, np.ones((2, 6, 5, 4)))),
        ("depthwise_conv2d_backward_weight", ValueError, "gives an output of 2x1, but gy has 5x4",
         swap("depthwise_conv2d_backward_weight", 2, kernels.Window.of(9, stride=2, padding=1))),
        ("depthwise_conv2d_backward_weight", TypeError, "expected a kernels.Window",
         swap("depthwise_conv2d_backward_weight", 2, 3)),
        ("winograd_input_transform", ValueError, "th must be positive", swap("winograd_input_transform", 3, 0)),
        ("winograd_input_transform", ValueError, "py must be non-negative",
         swap("winograd_input_transform", 1, -1)),
        ("winograd_input_transform", ValueError, "out must have shape (36, S) with S >= 160",
         swap("winograd_input_transform", 0, x, out=np.empty((36, 159)))),
        ("winograd_input_transform", TypeError, "out must have dtype float64",
         swap("winograd_input_transform", 0, x, out=np.empty((36, 160), np.float32))),
        ("winograd_input_transform", ValueError, "out must be C-contiguous",
         swap("winograd_input_transform", 0, x, out=np.empty((160, 36)).T)),
        ("winograd_input_transform", ValueError, "out must not overlap the input",
         swap("winograd_input_transform", 0, shared.reshape(-1)[:504].reshape(2, 4, 9, 7), out=shared)),
        ("winograd_input_transform_backward", ValueError, "v must have shape (36, S) with S >= 160",
         swap("winograd_input_transform_backward", 0, np.ones((16, 200)))),
        ("winograd_input_transform_backward", ValueError, "v must be 2-D",
         swap("winograd_input_transform_backward", 0, np.ones((36, 10, 16)))),
        ("winograd_input_transform_backward", ValueError, "out must have shape (2, 4, 9, 7)",
         swap("winograd_input_transform_backward", 1, 2, out=np.empty((2, 4, 9, 6)))),
        ("winograd_output_transform", ValueError, "m must have shape (36, S) with S >= 36",
         swap("winograd_output_transform", 0, np.ones((36, 35)))),
        ("winograd_output_transform", ValueError, "ow must be positive", swap("winograd_output_transform", 4, 0)),
        ("winograd_output_transform_backward", ValueError, "gy must be 4-D",
         swap("winograd_output_transform_backward", 0, np.ones((2, 3, 9)))),
        ("winograd_weight_transform", ValueError, "weight must be (K, C, 3, 3)",
         lambda: kernels.winograd_weight_transform(np.ones((2, 3, 5, 5)))),
        ("winograd_weight_transform_backward", ValueError, "gu must be (36, C, K)",
         lambda: kernels.winograd_weight_transform_backward(np.ones((9, 3, 2)))),
    ]


BAD_CALLS = bad_calls()


@pytest.mark.parametrize("implementation", ["reference", "cpu"])
@pytest.mark.parametrize("kernel, error, fragment, call", BAD_CALLS,
                         ids=[f"{kernel}-{fragment}" for kernel, _, fragment, _ in BAD_CALLS])
def test_bad_arguments_raise_before_any_kernel_runs(implementation, kernel, error, fragment, call):
    with kernels.use(implementation):
        with pytest.raises(error) as info:
            call()
    message = str(info.value)
    assert message.startswith(f"{kernel}: ") and fragment in message, message


def test_every_kernel_has_a_bad_argument_test():
    assert {kernel for kernel, *_ in BAD_CALLS} == set(KERNEL_NAMES)


def test_choosing_an_implementation():
    assert {"reference", "cpu"} <= set(kernels.available())
    with pytest.raises(ValueError, match="kernels.set_default: expected one of"):
        kernels.set_default("gpu")
    x = np.ones((1, 1, 2, 2))
    with pytest.raises(RuntimeError, match="inside"):
        with kernels.use("reference"):
            raise RuntimeError("inside")
    with kernels.use("cpu"):       # the reference default did not stick after the error
        assert kernels.im2col(x, kernels.Window.of(1)).shape == (1, 1, 1, 1, 2, 2)


def test_window_of_takes_an_int_or_a_pair_per_field_and_refuses_bad_ones():
    window = kernels.Window.of((3, 1), stride=2, dilation=(1, 2))
    assert window == ((3, 1), (2, 2), (0, 0), (1, 2))
    assert window.output_size(9, 5) == (4, 3)
    assert type(kernels.Window.of(np.int64(3)).kernel[0]) is int
    for fields, error, message in [
        (dict(kernel=0), ValueError, "Window.of: window kernel must be positive, got (0, 0)"),
        (dict(kernel=3, padding=(0, -1)), ValueError, "Window.of: window padding must be non-negative, got (0, -1)"),
        (dict(kernel=3, stride=False), TypeError, "Window.of: window stride must be an (h, w) pair of ints"),
        (dict(kernel=(3, 3, 3)), TypeError, "Window.of: window kernel must be an (h, w) pair of ints, got (3, 3, 3)"),
    ]:
        with pytest.raises(error) as info:
            kernels.Window.of(**fields)
        assert str(info.value).startswith(message), info.value


# ---------------------------------------------------------------- the reference equals PyTorch


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def tensor(torch, array, grad=False):
    return torch.tensor(array, dtype=torch.float64, requires_grad=grad)


@given(case=conv_cases(), seed=seeds)
@TORCH_EXAMPLES
def test_reference_im2col_col2im_match_torch_unfold_fold(torch, case, seed):
    F = torch.nn.functional
    x = normal(seed, case.n, case.c, case.h, case.w)
    options = dict(kernel_size=(case.kh, case.kw), dilation=(case.dil_h, case.dil_w),
                   padding=(case.py, case.px), stride=(case.sy, case.sx))
    col = kernels.reference.im2col(x, case.window)
    # torch's (N, C*kh*kw, oh*ow) is our (N, C, kh, kw, oh, ow) flattened
    unfolded = F.unfold(tensor(torch, x), **options).numpy()
    np.testing.assert_array_equal(col.reshape(unfolded.shape), unfolded)
    folded = F.fold(tensor(torch, col.reshape(unfolded.shape)), output_size=(case.h, case.w), **options)
    np.testing.assert_allclose(kernels.reference.col2im(col, case.window, case.size), folded.numpy(),
                               rtol=1e-12, atol=1e-12)


@given(case=pool_cases(max_pad=lambda k: k // 2), seed=seeds, count_include_pad=st.booleans())
@TORCH_EXAMPLES
def test_reference_pooling_matches_torch(torch, case, seed, count_include_pad):
    F = torch.nn.functional
    x = normal(seed, case.n, case.c, case.h, case.w)
    gy = normal(seed + 1, case.n, case.c, case.oh, case.ow)
    options = dict(kernel_size=(case.kh, case.kw), stride=(case.sy, case.sx), padding=(case.py, case.px),
                   ceil_mode=case.ceil_mode)

    xt = tensor(torch, x, grad=True)
    yt, indices = F.max_pool2d(xt, return_indices=True, **options)
    yt.backward(tensor(torch, gy))
    y, argmax = kernels.reference.max_pool2d_forward(x, *case.pool, case.oh, case.ow)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(argmax, indices.numpy())
    np.testing.assert_allclose(kernels.reference.max_pool2d_backward(gy, argmax, case.h, case.w, *case.pool),
                               xt.grad.numpy(), rtol=1e-12, atol=1e-12)

    xt = tensor(torch, x, grad=True)
    yt = F.avg_pool2d(xt, count_include_pad=count_include_pad, **options)
    yt.backward(tensor(torch, gy))
    y = kernels.reference.avg_pool2d_forward(x, *case.pool, case.oh, case.ow, count_include_pad)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    gx = kernels.reference.avg_pool2d_backward(gy, case.h, case.w, *case.pool, count_include_pad)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-12, atol=1e-12)


@given(c=st.integers(1, 8), size=st.integers(1, 6), seed=seeds)
@TORCH_EXAMPLES
def test_reference_lrn_matches_torch(torch, c, size, seed):
    alpha, beta, k = 0.3, 0.75, 2.0
    x = normal(seed, 2, c, 3, 4)
    gy = normal(seed + 1, 2, c, 3, 4)
    xt = tensor(torch, x, grad=True)
    # torch divides alpha by size; the AlexNet formula (ours) does not
    yt = torch.nn.functional.local_response_norm(xt, size, alpha=alpha * size, beta=beta, k=k)
    yt.backward(tensor(torch, gy))
    y, scale = kernels.reference.lrn_forward(x, size, alpha, beta, k)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10)
    gx = kernels.reference.lrn_backward(x, y, scale, gy, size, alpha, beta)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-9, atol=1e-12)


@given(n=st.integers(2, 4), c=st.integers(1, 4), length=st.integers(1, 9), seed=seeds)
@TORCH_EXAMPLES
def test_reference_batch_norm_matches_torch(torch, n, c, length, seed):
    eps = 1e-5
    x = normal(seed, n, c, length) * 2 + 0.5
    gamma, beta, gy = normal(seed + 1, c), normal(seed + 2, c), normal(seed + 3, n, c, length)
    xt, gt, bt = tensor(torch, x, True), tensor(torch, gamma, True), tensor(torch, beta, True)
    yt = torch.nn.functional.batch_norm(xt, None, None, gt, bt, training=True, eps=eps)
    yt.backward(tensor(torch, gy))
    y, mean, var = kernels.reference.batch_norm_forward_train(x, gamma, beta, eps)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(var, x.var(axis=(0, 2)), rtol=1e-12)      # biased variance
    np.testing.assert_allclose(kernels.reference.batch_norm_forward_eval(x, gamma, beta, mean, var, eps), y,
                               rtol=1e-12, atol=1e-12)
    gx, ggamma, gbeta = kernels.reference.batch_norm_backward(x, gy, gamma, mean, var, eps)
    for ours, theirs in [(gx, xt), (ggamma, gt), (gbeta, bt)]:
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-8, atol=1e-10)


@given(case=conv_cases(), seed=seeds, multiplier=st.sampled_from([1, 2]))
@TORCH_EXAMPLES
def test_reference_depthwise_matches_torch(torch, case, seed, multiplier):
    x = normal(seed, case.n, case.c, case.h, case.w)
    weight = normal(seed + 1, case.c * multiplier, 1, case.kh, case.kw)
    gy = normal(seed + 2, case.n, case.c * multiplier, case.oh, case.ow)
    xt, wt = tensor(torch, x, True), tensor(torch, weight, True)
    yt = torch.nn.functional.conv2d(xt, wt, stride=(case.sy, case.sx), padding=(case.py, case.px),
                                    dilation=(case.dil_h, case.dil_w), groups=case.c)
    yt.backward(tensor(torch, gy))
    reference = kernels.reference
    y = reference.depthwise_conv2d_forward(x, weight, case.window)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    gx = reference.depthwise_conv2d_backward_input(gy, weight, case.window, case.size, in_channels=case.c)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    gw = reference.depthwise_conv2d_backward_weight(x, gy, case.window)
    np.testing.assert_allclose(gw, wt.grad.numpy(), rtol=1e-10, atol=1e-12)
