"""The CPU's Winograd convolution on inputs its transforms cannot carry: inf, NaN and values near
the dtype's largest. Those take the direct path, so the result equals the direct convolution built
from the NumPy reference (kernels/reference.py): inf exactly in the outputs that read an inf pixel,
forward and both gradients, float32 and float64.
"""
import numpy as np
import pytest

import tinycnn.functions as F
from tinycnn import Tensor, kernels
from tinycnn.functions import conv_winograd
from tinycnn.kernels import reference

N, C, OC, H, W, PAD = 2, 16, 8, 9, 10, 1          # 3x3 stride 1, 16 channels: Winograd's shape
OH, OW = H + 2 * PAD - 2, W + 2 * PAD - 2
TERMS = C * 9                                     # products summed into one output
SUM_TERMS = max(C * 9, OC * 9, N * OH * OW)       # the longest sum: the weight gradient's


def direct(x, w, gy):
    """(y, gx, gw) of the direct convolution: reference im2col, a plain sum over (c, i, j), col2im."""
    window = kernels.Window.of(3, padding=PAD)
    col = reference.im2col(x, window)                                              # (N, C, 3, 3, OH, OW)
    y = np.einsum("ncijyx,ocij->noyx", col, w)
    gx = reference.col2im(np.einsum("noyx,ocij->ncijyx", gy, w), window, (H, W))
    gw = np.einsum("noyx,ncijyx->ocij", gy, col)
    return y, gx, gw


def ours(x, w, gy):
    tensors = [Tensor(a, requires_grad=True) for a in (x, w)]
    y = F.conv2d(*tensors, padding=PAD)
    y.backward(gy)
    return y.data, tensors[0].grad, tensors[1].grad


@pytest.fixture
def winograd_calls(monkeypatch):
    """How many times the Winograd input transform ran (forward, or backward's weight gradient)."""
    calls = []
    original = kernels.winograd_input_transform

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)
    monkeypatch.setattr(kernels, "winograd_input_transform", counting)
    return calls


def arrays(dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.uniform(-1, 1, (OC, C, 3, 3)).astype(dtype)
    gy = rng.standard_normal((N, OC, OH, OW)).astype(dtype)
    return x, w, gy


def assert_matches(got, expected, magnitude, dtype):
    """Equal inf / NaN positions and signs; finite values within the rounding of a sum of at most
    SUM_TERMS products: SUM_TERMS * eps of the sum of their magnitudes (`magnitude`), twice since
    the expected values are rounded too."""
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(expected))
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(expected))
    finite = np.isfinite(expected)
    error = np.abs(got[finite].astype(np.float64) - expected[finite])
    assert (error <= 2 * SUM_TERMS * np.finfo(dtype).eps * magnitude[finite] + 1e-300).all()


def test_ordinary_inputs_take_the_winograd_path(winograd_calls):
    """The check below must not turn Winograd off for ordinary data (else the tests prove nothing)."""
    x, w, gy = arrays(np.float32)
    ours(x, w, gy)
    assert len(winograd_calls) >= 2        # forward, and backward for the weight gradient


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("where", ["input", "weight", "output gradient"])
def test_a_non_finite_value_matches_the_direct_convolution(winograd_calls, dtype, value, where):
    x, w, gy = arrays(dtype)
    array, position = {"input": (x, (1, 3, 4, 5)), "weight": (w, (2, 3, 1, 2)), "output gradient": (gy, (1, 3, 4, 5))}[where]
    array[position] = value
    y, gx, gw = ours(x, w, gy)
    exact = [a.astype(np.float64) for a in direct(x, w, gy)]
    magnitude = [np.abs(a) for a in direct(np.abs(x), np.abs(w), np.abs(gy))]
    for got, expected, size in zip((y, gx, gw), exact, magnitude):
        assert got.dtype == dtype
        assert_matches(got, expected, size, dtype)
    if where == "input" and not np.isnan(value):
        assert np.isinf(y).sum() == 9 * OC        # the 3x3 outputs that read the pixel, in every channel
    if where != "output gradient":
        assert winograd_calls == []


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_finite_inputs_match_the_direct_convolution(winograd_calls, dtype):
    """Inputs at a tenth of the dtype's largest value, weights and output gradient scaled so that
    every true result stays below that too: Winograd's transforms would overflow, the direct sums
    do not."""
    x, w, gy = arrays(dtype)
    big = np.finfo(dtype).max / 10
    x = (np.clip(x, -1, 1) * big).astype(dtype)
    w = (w / TERMS).astype(dtype)
    gy = (np.clip(gy, -1, 1) / (N * OH * OW)).astype(dtype)
    y, gx, gw = ours(x, w, gy)
    wide = [a.astype(np.float64) for a in (x, w, gy)]
    exact = direct(*wide)
    magnitude = direct(*[np.abs(a) for a in wide])
    for got, expected, size in zip((y, gx, gw), exact, magnitude):
        assert np.isfinite(got).all()
        assert_matches(got, expected, size, dtype)
    assert np.abs(y).max() > big / 1e3                   # the outputs really are huge
    assert winograd_calls == []


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_inputs_the_check_accepts_stay_on_winograd_and_correct(winograd_calls, dtype):
    """Inputs, weights and output gradient within a factor of 50 of the check's bound, all of one
    sign: Winograd runs and its results are finite and close to the direct ones (its own float32
    error is about 1e-5 of the largest output, so the tolerance is 1e-4 of it)."""
    x, w, gy = [np.abs(a) for a in arrays(dtype)]
    x, w, gy = x / x.max(), w / w.max(), gy / gy.max()
    growth = conv_winograd.WINOGRAD_GROWTH * N * OH * OW       # more terms than any check uses
    x = (x * np.sqrt(np.finfo(dtype).max / growth) / 2).astype(dtype)
    w = (w * np.sqrt(np.finfo(dtype).max / growth) / 2).astype(dtype)
    gy = (gy * np.sqrt(np.finfo(dtype).max / growth) / 2).astype(dtype)
    y, gx, gw = ours(x, w, gy)
    assert len(winograd_calls) >= 2
    wide = [a.astype(np.float64) for a in (x, w, gy)]
    for got, expected in zip((y, gx, gw), direct(*wide)):
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max())


def test_the_growth_constant_bounds_every_transform_with_a_margin():
    """Largest factor by which the transforms grow a magnitude: absolute row sums (a left factor)
    or column sums (a right one) of the matrices, squared for the two sides of each transform."""
    rows = lambda m: np.abs(m).sum(axis=1).max()      # noqa: E731
    columns = lambda m: np.abs(m).sum(axis=0).max()   # noqa: E731
    bt, g, at = reference.WINOGRAD_BT, reference.WINOGRAD_G, reference.WINOGRAD_AT
    forward = rows(bt) ** 2 * rows(g) ** 2 * rows(at) ** 2
    input_gradient = columns(at) ** 2 * rows(g) ** 2 * 4 * columns(bt) ** 2      # a pixel is in up to 4 tiles
    weight_gradient = columns(at) ** 2 * rows(bt) ** 2 * columns(g) ** 2
    assert 4 * max(forward, input_gradient, weight_gradient) <= conv_winograd.WINOGRAD_GROWTH


@pytest.mark.parametrize("dtype, maxima, fits", [
    (np.float32, (1.0, 1.0), True), (np.float32, (0.0, 0.0), True), (np.float32, (1e16, 1e16), False),
    (np.float64, (1e16, 1e16), True), (np.float64, (1e160, 1e160), False),
    (np.float64, (np.inf, 1.0), False), (np.float64, (np.nan, 1.0), False), (np.float64, (0.0, np.inf), False)])
def test_winograd_fits(dtype, maxima, fits):
    assert conv_winograd.winograd_fits(dtype, 16, *maxima) is fits
