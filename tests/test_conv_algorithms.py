"""The convolution's algorithm switch: the auto rule, conv2d(algorithm=...), the per-thread
conv_algorithm block, refusals of what an algorithm cannot run, and Winograd's numerics fallback."""
import threading

import numpy as np
import pytest

import tinycnn.functions as F
from tinycnn import Tensor
from tinycnn.functions.conv import (Conv2d, Conv2dDepthwise, Conv2dEmpty, Conv2dIm2col, Conv2dIm2row,
                                    Conv2dWinograd)


def conv(channels, out_channels=4, kernel=3, groups=1, n=2, size=6, **kwargs):
    rng = np.random.default_rng(channels + kernel)
    x = Tensor(rng.standard_normal((n, channels, size, size)), requires_grad=True)
    w = Tensor(rng.standard_normal((out_channels, channels // groups, kernel, kernel)), requires_grad=True)
    return F.conv2d(x, w, groups=groups, **kwargs)


@pytest.mark.parametrize("channels, kernel, groups, kwargs, expected", [
    (3, 3, 1, dict(padding=1), Conv2dIm2col),                  # few channels: im2col
    (16, 3, 1, dict(padding=1), Conv2dWinograd),               # 3x3 stride 1, 16+ channels
    (16, 3, 1, dict(stride=2), Conv2dIm2row),                  # strided: im2row
    (16, 3, 1, dict(dilation=2, padding=2), Conv2dIm2row),     # dilated: im2row
    (16, 1, 1, dict(), Conv2dIm2col),                          # pointwise: x is the matrix
    (16, 1, 1, dict(padding=1), Conv2dIm2row),                 # padded 1x1 is not pointwise
    (16, 3, 2, dict(padding=1), Conv2dIm2col),                 # grouped
    (8, 3, 8, dict(padding=1), Conv2dDepthwise),               # one channel per group
])
def test_the_auto_rule(channels, kernel, groups, kwargs, expected):
    function = conv(channels, 8, kernel, groups, **kwargs).creator
    assert type(function) is expected
    assert isinstance(function, Conv2d)
    assert function.groups == groups and len(function.stride) == len(function.padding) == len(function.dilation) == 2


def test_an_empty_batch_runs_no_algorithm_whatever_is_forced():
    assert type(conv(16, n=0, algorithm="winograd").creator) is Conv2dEmpty


@pytest.mark.parametrize("algorithm, channels, kernel, groups, kwargs, message", [
    ("winograd", 4, 5, 1, dict(), r"'winograd' cannot run this convolution: Winograd F\(4x4, 3x3\) needs an "
                                  r"ungrouped 3x3 kernel with stride 1 and dilation 1, got a 5x5 kernel"),
    ("winograd", 4, 3, 1, dict(stride=2), "needs an ungrouped 3x3 kernel with stride 1"),
    ("depthwise", 4, 3, 1, dict(), r"'depthwise' cannot run this convolution: depthwise needs one input channel "
                                   r"per group \(groups == C > 1\), got groups=1 for 4 input channels"),
    ("im2row", 4, 3, 2, dict(), "im2row runs ungrouped convolutions only, got groups=2"),
])
def test_a_forced_algorithm_that_cannot_run_is_refused(algorithm, channels, kernel, groups, kwargs, message):
    with pytest.raises(ValueError, match=message):
        conv(channels, 4, kernel, groups, algorithm=algorithm, **kwargs)
    with F.conv_algorithm(algorithm), pytest.raises(ValueError, match=message):
        conv(channels, 4, kernel, groups, **kwargs)


def test_unknown_algorithms_are_refused_by_name():
    with pytest.raises(ValueError, match=r"conv2d: algorithm must be 'auto' or one of \['depthwise', 'im2col', "
                                         r"'im2row', 'winograd'\], got 'fft'"):
        conv(3, algorithm="fft")
    with pytest.raises(ValueError, match="conv_algorithm: algorithm must be 'auto' or one of"):
        with F.conv_algorithm("gemm"):
            pass


def test_the_block_applies_to_auto_calls_only_and_only_in_its_thread():
    seen = {}
    with F.conv_algorithm("im2col"):
        assert type(conv(16, padding=1).creator) is Conv2dIm2col
        assert type(conv(16, padding=1, algorithm="im2row").creator) is Conv2dIm2row     # the argument wins
        thread = threading.Thread(target=lambda: seen.update(other=type(conv(16, padding=1).creator)))
        thread.start()
        thread.join()
    assert seen["other"] is Conv2dWinograd
    assert type(conv(16, padding=1).creator) is Conv2dWinograd                         # restored


def test_a_non_strict_block_prefers_where_it_can_and_leaves_the_rest_to_the_rule():
    with F.conv_algorithm("winograd", strict=False):
        assert type(conv(3, padding=1).creator) is Conv2dWinograd                        # below the threshold
        assert type(conv(3, kernel=5).creator) is Conv2dIm2row                           # Winograd cannot
        assert type(conv(4, groups=2).creator) is Conv2dIm2col                           # neither can im2row
        assert type(conv(4, groups=4).creator) is Conv2dDepthwise
    with F.conv_algorithm("im2col", strict=False):
        assert type(conv(16, padding=1).creator) is Conv2dIm2col


@pytest.mark.parametrize("algorithm", ["auto", "winograd"])
def test_winograd_falls_back_to_im2row_on_inputs_its_transforms_cannot_carry(algorithm):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 16, 6, 6)), rng.standard_normal((4, 16, 3, 3))
    x[0, 3, 2, 2] = np.inf
    results = {}
    for name in (algorithm, "im2row"):
        tensors = [Tensor(a, requires_grad=True) for a in (x, w)]
        y = F.conv2d(*tensors, padding=1, algorithm=name)
        function, layout = y.creator, y.creator.layout          # before backward frees the Function
        y.backward(np.ones(y.shape))
        results[name] = (function, layout, [y.data] + [t.grad for t in tensors])
    assert type(results[algorithm][0]) is Conv2dWinograd and results[algorithm][1] == "im2row"
    for got, want in zip(results[algorithm][2], results["im2row"][2]):
        np.testing.assert_array_equal(got, want)                        # the same code ran
    y = results[algorithm][2][0]
    assert np.isinf(y[0, :, 1:4, 1:4]).all() and np.isfinite(y[1]).all()   # inf only where a window reads it
