"""The loop-by-loop references of kernels/reference.py (convolution forward and both gradients,
BatchNorm's eval-mode backward) against PyTorch, every convolution algorithm against them on small
float64 shapes (borders, odd sizes, strides larger than the kernel, dilation, groups), and the one
output-size formula, tinycnn.conv_output_size, against PyTorch's."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinycnn
import tinycnn.functions as F
from tinycnn import Tensor
from tinycnn.functions.conv import ALGORITHMS
from tinycnn.kernels import reference

torch = pytest.importorskip("torch")


@st.composite
def convolutions(draw):
    """(x, weight, bias, gy, stride, padding, dilation, groups): small shapes, any geometry whose
    windows fit; a third of them depthwise (one input channel per group)."""
    depthwise = draw(st.booleans()) and draw(st.booleans())
    groups = draw(st.integers(1, 3)) + depthwise
    cg = 1 if depthwise else draw(st.integers(1, 2))
    oc = groups * draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = draw(st.integers(1, 4)), draw(st.integers(1, 4))          # up to larger than the kernel
    dilation = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    padding = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, dilation[0] * (kh - 1) + 1 - 2 * padding[0]), 7))
    w = draw(st.integers(max(1, dilation[1] * (kw - 1) + 1 - 2 * padding[1]), 7))
    n = draw(st.integers(1, 2))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x, weight = rng.standard_normal((n, groups * cg, h, w)), rng.standard_normal((oc, cg, kh, kw))
    oh = tinycnn.conv_output_size(h, kh, stride[0], padding[0], dilation[0])
    ow = tinycnn.conv_output_size(w, kw, stride[1], padding[1], dilation[1])
    return x, weight, rng.standard_normal(oc), rng.standard_normal((n, oc, oh, ow)), stride, padding, dilation, groups


def loops(x, weight, bias, gy, stride, padding, dilation, groups):
    y = reference.conv2d_forward_loops(x, weight, bias, stride, padding, dilation, groups)
    gx, gw = reference.conv2d_backward_loops(x, weight, gy, stride, padding, dilation, groups)
    return y, gx, gw, gy.sum(axis=(0, 2, 3))


@settings(max_examples=30, deadline=None)
@given(case=convolutions())
def test_the_loops_equal_pytorch(case):
    x, weight, bias, gy, stride, padding, dilation, groups = case
    tensors = [torch.tensor(a, requires_grad=True) for a in (x, weight, bias)]
    y = torch.nn.functional.conv2d(*tensors, stride=stride, padding=padding, dilation=dilation, groups=groups)
    y.backward(torch.tensor(gy))
    expected = [y.detach().numpy()] + [t.grad.numpy() for t in tensors]
    for got, want in zip(loops(*case), expected):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)      # float64: rounding only


@settings(max_examples=40, deadline=None)
@given(case=convolutions())
def test_every_algorithm_that_can_run_it_equals_the_loops(case):
    x, weight, bias, gy, stride, padding, dilation, groups = case
    expected = loops(*case)
    ran = []
    for name, algorithm in ALGORITHMS.items():
        if algorithm.refusal(x.shape, weight.shape, stride, padding, dilation, groups, True) is not None:
            continue
        tensors = [Tensor(a, requires_grad=True) for a in (x, weight, bias)]
        y = F.conv2d(*tensors, stride=stride, padding=padding, dilation=dilation, groups=groups, algorithm=name)
        y.backward(gy)
        assert isinstance(y.creator, algorithm)
        for got, want in zip([y.data] + [t.grad for t in tensors], expected):
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, err_msg=name)   # float64 rounding
        ran.append(name)
    assert "im2col" in ran                         # im2col runs every convolution


@pytest.mark.parametrize("relu, relu_input", [(False, False), (True, False), (False, True)])
def test_batch_norm_eval_backward_equals_the_loops(relu, relu_input):
    rng = np.random.default_rng(3)
    x, gy = rng.standard_normal((3, 4, 5, 2)), rng.standard_normal((3, 4, 5, 2))
    gamma, beta = rng.standard_normal(4), rng.standard_normal(4)
    mean, var = rng.standard_normal(4), rng.uniform(0.5, 2, 4)
    op = F.batch_norm_relu if relu else F.relu_batch_norm if relu_input else F.batch_norm
    tensors = [Tensor(a, requires_grad=True) for a in (x, gamma, beta)]
    op(*tensors, mean.copy(), var.copy(), training=False, eps=1e-3).backward(gy)
    x_in = np.maximum(x, 0) if relu_input else x
    pre = (x_in - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-3) * gamma[:, None, None] + beta[:, None, None]
    gy_in = np.where(pre > 0, gy, 0) if relu else gy                       # the fused ReLU's mask
    gx, ggamma, gbeta = reference.batch_norm_eval_backward_loops(x_in.reshape(3, 4, 10), gy_in.reshape(3, 4, 10),
                                                                 gamma, mean, var, 1e-3)
    gx = np.where(x > 0, gx.reshape(x.shape), 0) if relu_input else gx.reshape(x.shape)
    for got, want in zip([t.grad for t in tensors], (gx, ggamma, gbeta)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_conv_output_size_is_alexnets_and_pytorchs():
    assert tinycnn.conv_output_size(227, 11, stride=4) == 55
    assert tinycnn.conv_output_size is tinycnn.kernels.conv_output_size
    for size in range(1, 12):
        for kernel in range(1, 5):
            for stride in range(1, 4):
                for padding in range(0, kernel // 2 + 1):
                    image = torch.zeros(1, 1, size, size)
                    for dilation in (1, 2):
                        if size + 2 * padding >= dilation * (kernel - 1) + 1:
                            out = torch.nn.functional.conv2d(image, torch.zeros(1, 1, kernel, kernel), stride=stride,
                                                             padding=padding, dilation=dilation).shape[-1]
                            assert tinycnn.conv_output_size(size, kernel, stride, padding, dilation) == out
                    if size + 2 * padding >= kernel:
                        for ceil_mode in (False, True):
                            out = torch.nn.functional.max_pool2d(image, kernel, stride, padding,
                                                                 ceil_mode=ceil_mode).shape[-1]
                            assert tinycnn.conv_output_size(size, kernel, stride, padding, ceil_mode=ceil_mode) == out
