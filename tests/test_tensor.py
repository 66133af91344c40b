"""Autograd core: graph walking, accumulation, broadcasting, dtypes, no_grad."""
import numpy as np
import pytest

import tinycnn
import tinycnn.functions as F
from tinycnn import Tensor


def test_backward_accumulates_over_two_uses_and_two_calls():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * x + x).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data + 1)
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data + 1 + 3)
    x.zero_grad()
    assert x.grad is None


def test_diamond_graph_sums_both_paths():
    x = Tensor(np.array(2.0), requires_grad=True)
    a = x * 3.0
    y = a * a + a        # dy/dx = (2a + 1) * 3
    y.backward()
    assert x.grad == pytest.approx((2 * 6.0 + 1) * 3)


def test_chain_of_5000_ops_has_no_recursion_limit():
    x = Tensor(np.array([1.0]), requires_grad=True)
    y = x
    for _ in range(5000):
        y = y + 1.0
    y.backward()
    assert x.grad[0] == 1.0


def test_broadcasting_reduces_gradient_to_input_shape():
    x = Tensor(np.ones((2, 3, 4)), requires_grad=True)
    b = Tensor(np.ones((3, 1)), requires_grad=True)
    (x * b + b).sum().backward()
    assert b.grad.shape == (3, 1)
    np.testing.assert_allclose(b.grad, np.full((3, 1), 2 * 4 * 2.0))


def test_graph_is_freed_unless_retained():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, 4 * x.data)
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_no_grad_records_nothing():
    x = Tensor(np.ones(2), requires_grad=True)
    with tinycnn.no_grad():
        y = x * 2.0
    assert not y.requires_grad and y.creator is None


def test_python_scalars_do_not_upcast_float32():
    x = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    y = (2.5 * x + 1.0) / 3.0 - 0.5
    y = y ** 2
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_float_lists_become_float32_and_float64_arrays_stay():
    assert Tensor([1.0, 2.0]).dtype == np.float32
    assert Tensor(np.zeros(2)).dtype == np.float64
    x = Tensor(np.ones((2, 2)), requires_grad=True)
    (x @ x).sum().backward()
    assert x.grad.dtype == np.float64


def test_getitem_with_repeated_indices_accumulates():
    x = Tensor(np.arange(4.0), requires_grad=True)
    x[[0, 0, 3]].sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 0.0, 0.0, 1.0])


def test_reductions_follow_numpy_axis_and_keepdims():
    data = np.random.default_rng(0).normal(size=(2, 3, 4))
    x = Tensor(data)
    np.testing.assert_allclose(x.sum(axis=1).data, data.sum(axis=1))
    np.testing.assert_allclose(x.mean(axis=(0, 2), keepdims=True).data, data.mean(axis=(0, 2), keepdims=True))
    np.testing.assert_allclose(x.max(axis=-1).data, data.max(axis=-1))
    assert x.flatten().shape == (24,)
    assert x.transpose(2, 0, 1).shape == (4, 2, 3)
    assert x.reshape(6, 4).shape == (6, 4)


def test_comparisons_have_no_gradient():
    x = Tensor(np.array([1.0, 3.0]), requires_grad=True)
    mask = x > 2.0
    assert mask.dtype == bool and not mask.requires_grad
    np.testing.assert_array_equal(mask.data, [False, True])


def test_numpy_array_on_the_left_defers_to_tensor():
    y = np.ones(2) + Tensor(np.array([1.0, 2.0]))
    assert isinstance(y, Tensor)
    np.testing.assert_array_equal(y.data, [2.0, 3.0])


def test_item_detach_numpy():
    x = Tensor(np.array([[4.0]]), requires_grad=True)
    assert x.item() == 4.0
    d = x.detach()
    assert not d.requires_grad and d.data is x.data
    assert isinstance(x.numpy(), np.ndarray)
    with pytest.raises(ValueError, match="item"):
        Tensor(np.ones(2)).item()


def test_backward_needs_grad_for_non_scalar():
    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="single-element"):
        (x * 2.0).backward()


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match="floating-point"):
        Tensor(np.arange(3), requires_grad=True)


def test_manual_seed_makes_dropout_reproducible():
    x = Tensor(np.ones((4, 5), dtype=np.float32))
    tinycnn.manual_seed(3)
    a = F.dropout(x, 0.5).data
    tinycnn.manual_seed(3)
    b = F.dropout(x, 0.5).data
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) <= {0.0, 2.0}


@pytest.mark.parametrize("channels, out_channels, groups", [(16, 24, 1), (3, 6, 3)],
                         ids=["im2row", "im2col-grouped"])
def test_conv_backward_skips_the_gradients_nobody_needs(monkeypatch, channels, out_channels, groups):
    """No input gradient (no col2im / row2im) for an image that does not require grad, no weight
    gradient for a frozen weight; the gradients that are asked for stay exact. Both layouts:
    im2row (ungrouped with 16+ channels, the CPU's) and im2col (grouped)."""
    from tinycnn.functions import conv as conv_module
    rng = np.random.default_rng(0)
    x, b = rng.standard_normal((2, channels, 7, 6)), rng.standard_normal(out_channels)
    w = rng.standard_normal((out_channels, channels // groups, 3, 3))
    g = rng.standard_normal((2, out_channels, 7, 6))

    def grads(x_grad, w_grad):
        tensors = Tensor(x, requires_grad=x_grad), Tensor(w, requires_grad=w_grad), Tensor(b, requires_grad=True)
        (F.conv2d(*tensors, padding=1, groups=groups) * Tensor(g)).sum().backward()
        return [t.grad for t in tensors]

    gx, gw, gb = grads(True, True)
    with monkeypatch.context() as patch:
        def no_input_gradient(*args, **kwargs):
            raise AssertionError("col2im or row2im ran for an input that needs no gradient")
        patch.setattr(conv_module.kernels, "col2im", no_input_gradient)
        patch.setattr(conv_module.kernels, "row2im", no_input_gradient)
        no_gx, gw_only, gb_only = grads(False, True)
    assert no_gx is None
    np.testing.assert_allclose(gw_only, gw, rtol=1e-12)
    np.testing.assert_allclose(gb_only, gb, rtol=1e-12)
    gx_only, no_gw, _ = grads(True, False)
    assert no_gw is None
    np.testing.assert_allclose(gx_only, gx, rtol=1e-12)
