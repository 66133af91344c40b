"""F.relu6, nn.ReLU6 and nn.ZeroPad2d: values, gradients (gradcheck, float64) and PyTorch parity."""
import numpy as np
import pytest

import tinycnn
import tinycnn.functions as F
import tinycnn.nn as nn
from tinycnn import Tensor

torch = pytest.importorskip("torch")


def away_from_kinks(rng, shape):
    """Values in (-3, 9) at least 0.1 from relu6's kinks at 0 and 6 (a finite difference would straddle one)."""
    x = rng.uniform(-3, 9, size=shape)
    for kink in (0.0, 6.0):
        near = np.abs(x - kink) < 0.1
        x[near] = kink + np.where(x[near] < kink, -0.5, 0.5)
    return x


def test_relu6_passes_gradcheck_in_float64():
    rng = np.random.default_rng(0)
    for shape in ((7,), (2, 3, 4, 4)):
        x = Tensor(away_from_kinks(rng, shape), requires_grad=True)
        assert tinycnn.gradcheck(F.relu6, [x])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_relu6_matches_pytorch_forward_and_backward(dtype):
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(-4, 10, size=60), [0.0, 6.0, -0.0, 6.5, np.inf, -np.inf]]).astype(dtype)
    gy = rng.normal(size=x.shape).astype(dtype)
    ours = Tensor(x, requires_grad=True)
    y = F.relu6(ours)
    y.backward(gy)
    theirs = torch.tensor(x, requires_grad=True)
    expected = torch.nn.functional.relu6(theirs)
    expected.backward(torch.tensor(gy))
    assert y.dtype == dtype and ours.grad.dtype == dtype
    # clipping and masking are exact in any precision: equal, bit for bit
    np.testing.assert_array_equal(y.numpy(), expected.detach().numpy())
    np.testing.assert_array_equal(ours.grad, theirs.grad.numpy())
    np.testing.assert_array_equal(nn.ReLU6()(Tensor(x)).numpy(), torch.nn.ReLU6()(torch.tensor(x)).numpy())


def test_relu6_refuses_integer_input():
    with pytest.raises(TypeError, match="relu6: expected a floating-point input, got dtype int64"):
        F.relu6(Tensor(np.arange(3)))


@pytest.mark.parametrize("padding", [2, (0, 1, 0, 1), (3, 0, 1, 2)])
def test_zero_pad2d_matches_pytorch(padding):
    x = np.random.default_rng(2).normal(size=(2, 3, 4, 5))
    gy = np.random.default_rng(3).normal(size=torch.nn.ZeroPad2d(padding)(torch.tensor(x)).shape)
    ours = Tensor(x, requires_grad=True)
    y = nn.ZeroPad2d(padding)(ours)
    y.backward(gy)
    theirs = torch.tensor(x, requires_grad=True)
    expected = torch.nn.ZeroPad2d(padding)(theirs)
    expected.backward(torch.tensor(gy))
    np.testing.assert_array_equal(y.numpy(), expected.detach().numpy())
    np.testing.assert_array_equal(ours.grad, theirs.grad.numpy())
    one_image = nn.ZeroPad2d(padding)(Tensor(x[0]))                # (C, H, W) too, as PyTorch
    np.testing.assert_array_equal(one_image.numpy(), torch.nn.ZeroPad2d(padding)(torch.tensor(x[0])).numpy())


def test_zero_pad2d_checks_its_arguments_and_input():
    with pytest.raises(TypeError, match=r"ZeroPad2d: expected padding to be a non-negative int or four of them "
                                        r"\(left, right, top, bottom\), got \(1, 2\)"):
        nn.ZeroPad2d((1, 2))
    with pytest.raises(ValueError, match="ZeroPad2d: padding must be non-negative, got -1"):
        nn.ZeroPad2d((0, -1, 0, 0))
    with pytest.raises(TypeError, match=r"ZeroPad2d: expected padding to be a non-negative int or four .*, got 1.5"):
        nn.ZeroPad2d(1.5)
    with pytest.raises(TypeError, match="ZeroPad2d: expected padding to be a non-negative int, got 2.5"):
        nn.ZeroPad2d((1, 2.5, 0, 0))
    with pytest.raises(ValueError, match=r"ZeroPad2d: expected a 3-D \(C, H, W\) or 4-D \(N, C, H, W\) input, "
                                         r"got shape \(4, 4\)"):
        nn.ZeroPad2d(1)(Tensor(np.zeros((4, 4))))
    assert repr(nn.ZeroPad2d(1)) == "ZeroPad2d(padding=(1, 1, 1, 1))"
