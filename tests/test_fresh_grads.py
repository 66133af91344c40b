"""``Function.fresh_grads``: a parameter keeps the new gradient array of a Function that promises
one (convolutions, BatchNorm, Linear) as its ``.grad``, instead of a copy: on a GPU one launch
fewer per parameter (issue #18). The promise is checked here for every Function that makes it:
its gradients share memory with nothing the Function or its caller holds, nor with each other,
nor with the gradients of another call; and the gradients the leaves end up with stay right.
"""
import numpy as np
import pytest

import tinycnn
import tinycnn.functions as F
from tinycnn import Function, Tensor

rng = np.random.default_rng(0)


def _leaf(*shape):
    return Tensor(rng.standard_normal(shape), requires_grad=True)


def _conv(algorithm, c=4, groups=1, n=2, bias=True, size=6):
    x, w = _leaf(n, c, size, size), _leaf(4, c // groups, 3, 3)
    return F.conv2d(x, w, _leaf(4) if bias else None, padding=1, groups=groups, algorithm=algorithm)


def _batch_norm(training, relu=False, relu_input=False, n=3):
    from tinycnn.functions.norm import BatchNorm
    c = 3
    running = (np.zeros(c), np.ones(c))
    function = BatchNorm(training, 1e-5, *running, 0.1, relu=relu, relu_input=relu_input)
    return function(_leaf(n, c, 4, 5), _leaf(c), _leaf(c))


CASES = {
    "conv im2col": lambda: _conv("im2col"),
    "conv im2col grouped, no bias": lambda: _conv("im2col", groups=2, bias=False),
    "conv im2row": lambda: _conv("im2row"),
    "conv winograd": lambda: _conv("winograd", size=8),
    "conv depthwise": lambda: _conv("depthwise", groups=4),
    "conv of an empty batch": lambda: _conv("auto", n=0),
    "batch norm, training": lambda: _batch_norm(True),
    "batch norm + relu, training": lambda: _batch_norm(True, relu=True),
    "relu + batch norm, eval": lambda: _batch_norm(False, relu_input=True),
    "batch norm + relu, eval": lambda: _batch_norm(False, relu=True),
    "batch norm of an empty batch": lambda: _batch_norm(True, n=0),
    "linear": lambda: F.linear(_leaf(5, 3), _leaf(2, 3), _leaf(2)),
    "linear on a 3-D input, no bias": lambda: F.linear(_leaf(2, 5, 3), _leaf(2, 3)),
}


def _arrays(value):
    """Every array inside a Function's attributes (lists, tuples and dicts opened)."""
    if isinstance(value, np.ndarray):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _arrays(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _arrays(item)


@pytest.mark.parametrize("case", CASES)
def test_a_function_that_promises_fresh_gradients_returns_arrays_nothing_else_holds(case):
    y = CASES[case]()
    function = y.creator
    assert function.fresh_grads, f"{type(function).__name__} no longer promises fresh gradients"
    gy = rng.standard_normal(y.shape)
    first = [g for g in function.backward(gy) if g is not None]
    leaves = [edge[0] for edge in function.edges if edge is not None]     # every case's inputs are leaves
    held = [gy, *(leaf.data for leaf in leaves), *_arrays(vars(function))]
    second = [g for g in function.backward(gy.copy()) if g is not None]
    assert len(first) == len(leaves)
    for i, g in enumerate(first):
        for other in held + second + first[i + 1:]:
            assert not np.may_share_memory(g, other), f"{case}: a gradient shares memory with {other.shape}"


def test_every_function_that_promises_fresh_gradients_is_checked_above():
    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)
    # the engine's Functions with a backward of their own (not this file's, nor the abstract Conv2d)
    promised = {cls for cls in subclasses(Function)
                if cls.fresh_grads and "backward" in vars(cls) and cls.__module__.startswith("tinycnn.")}
    checked = {type(build().creator) for build in CASES.values()}
    assert promised <= checked, f"not checked: {sorted(c.__name__ for c in promised - checked)}"


class _Scale(Function):
    """y = 2 w; backward returns `returned` (a test's array) as the gradient."""
    returned = None

    def forward(self, w):
        return 2 * w

    def backward(self, gy):
        return type(self).returned


class _FreshScale(_Scale):
    fresh_grads = True


@pytest.mark.parametrize("function, kept", [(_Scale, False), (_FreshScale, True)])
def test_a_leaf_keeps_a_fresh_gradient_and_copies_any_other(function, kept):
    w = Tensor([1.0, 2.0], requires_grad=True)
    function.returned = np.array([3.0, 4.0])
    function()(w).sum().backward()
    assert (w.grad is function.returned) is kept
    np.testing.assert_array_equal(w.grad, [3.0, 4.0])


def test_a_weight_used_twice_sums_both_gradients_in_the_array_it_kept():
    w, b = _leaf(2, 3), _leaf(2)
    x1, x2 = rng.standard_normal((5, 3)), rng.standard_normal((4, 3))
    (F.linear(Tensor(x1), w, b).sum() + 2 * F.linear(Tensor(x2), w, b).sum()).backward()
    np.testing.assert_allclose(w.grad, np.ones((2, 5)) @ x1 + 2 * np.ones((2, 4)) @ x2, rtol=1e-12)
    np.testing.assert_allclose(b.grad, np.full(2, 5.0 + 2 * 4.0), rtol=1e-12)


def test_two_leaves_given_one_gradient_array_get_arrays_of_their_own():
    """Add passes gy to both inputs (it promises nothing): each leaf copies it."""
    a, b = _leaf(3), _leaf(3)
    (a + b).sum().backward()
    a.grad += 1.0
    np.testing.assert_array_equal(b.grad, np.ones(3))
    assert not np.may_share_memory(a.grad, b.grad)



def test_a_tensor_used_twice_sums_its_gradients_and_leaves_a_shared_array_alone():
    """x and t feed Add, which hands the same gy to both; x also feeds a Linear (fresh). Add runs
    first, so x's first gradient is that shared gy: the Linear's part must not be added into it
    in place, or t (processed later) would see x's sum. A tensor fed to two Linears sums their
    fresh gradients (in place, into the first)."""
    a, c, w = _leaf(4, 3), _leaf(4, 3), _leaf(2, 3)
    x, t = a * 2.0, c * 1.0
    ((x + t).sum() + F.linear(x, w).sum()).backward()
    np.testing.assert_array_equal(c.grad, np.ones((4, 3)))
    np.testing.assert_allclose(a.grad, 2 * (1 + w.data.sum(axis=0)) * np.ones((4, 3)), rtol=1e-12)
    w1, w2 = _leaf(2, 3), _leaf(5, 3)
    a = _leaf(4, 3)
    x = a * 3.0
    (F.linear(x, w1).sum() + F.linear(x, w2).sum()).backward()
    np.testing.assert_allclose(a.grad, 3 * (w1.data.sum(axis=0) + w2.data.sum(axis=0)) * np.ones((4, 3)),
                               rtol=1e-12)
