"""The graph holds edges, not tensors: an input array that backward does not read is freed
after forward, and gradients still reach every output index and leaf."""
import gc
import weakref

import numpy as np
import pytest

import tinycnn
import tinycnn.functions as F
from tinycnn import Tensor, models
from tinycnn.tensor import Function

rng = np.random.default_rng(0)


class _TwoOutputs(Function):
    """(2x, 3x): a Function with two outputs, to follow the output index."""
    saved_inputs, saves_outputs = (), False

    def forward(self, x):
        return 2 * x, 3 * x

    def backward(self, g2, g3):
        return 2 * g2 + 3 * g3


def test_an_input_that_backward_does_not_read_is_freed_after_forward():
    x = Tensor(rng.standard_normal((4, 5)), requires_grad=True)
    h = x * 2.0                     # ReLU saves its output, not its input h
    y = F.relu(h)
    freed = weakref.ref(h.data)
    expected = 2.0 * (h.data > 0)
    del h
    gc.collect()
    assert freed() is None, "the graph kept the ReLU's input"
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, expected)


def test_an_input_that_backward_reads_stays_alive():
    w = Tensor(rng.standard_normal(3), requires_grad=True)
    h = Tensor(rng.standard_normal(3)) * 1.0     # Mul's gradient for w is h: it is saved
    kept = weakref.ref(h.data)
    expected = h.data.copy()
    y = (w * h).sum()
    del h
    gc.collect()
    assert kept() is not None
    y.backward()
    np.testing.assert_array_equal(w.grad, expected)


@pytest.mark.parametrize("used", [(0,), (1,), (0, 1), (1, 0, 1)])
def test_each_output_index_takes_its_own_gradient(used):
    x = Tensor(rng.standard_normal(3), requires_grad=True)
    outputs = _TwoOutputs()(x)
    total = sum((outputs[i] * (k + 1.0) for k, i in enumerate(used)), Tensor(np.zeros(3)))
    total.sum().backward()
    scale = {0: 2.0, 1: 3.0}
    np.testing.assert_allclose(x.grad, np.full(3, sum(scale[i] * (k + 1.0) for k, i in enumerate(used))))


def test_an_intermediate_tensor_dropped_by_the_user_still_passes_its_gradient_on():
    x = Tensor(rng.standard_normal(6), requires_grad=True)
    second = _TwoOutputs()(x)[1]          # the tuple and output 0 are gone at once
    y = (second * second).sum()
    del second
    gc.collect()
    y.backward()
    np.testing.assert_allclose(x.grad, 18.0 * x.data)


def test_a_training_step_frees_each_relu_input_after_forward():
    """MiniVGG (conv -> ReLU -> BatchNorm) at batch 2: each convolution's output, which only the
    ReLU after it took as input, is freed after forward."""
    tinycnn.manual_seed(0)
    model = models.get("minivgg", num_classes=10)
    x = Tensor(rng.random((2, 3, 32, 32), dtype=np.float32))
    relu_inputs = []

    class Inputs(tinycnn.FunctionHook):
        def forward_postprocess(self, function, inputs, outputs):
            if type(function).__name__ == "ReLU":
                relu_inputs.append(weakref.ref(inputs[0].data))

    with Inputs():
        loss = F.softmax_cross_entropy(model(x), np.array([1, 2]))
    gc.collect()
    assert len(relu_inputs) >= 4
    assert all(ref() is None for ref in relu_inputs), "a ReLU's input outlived the forward pass"
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("index", [0, 1])
def test_backward_from_either_output_of_a_function(index):
    x = Tensor(rng.standard_normal(4), requires_grad=True)
    root = _TwoOutputs()(x)[index]
    root.backward(np.ones(4))
    np.testing.assert_allclose(x.grad, np.full(4, 2.0 + index))
