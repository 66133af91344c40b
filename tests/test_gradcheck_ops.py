"""Every differentiable op passes tinycnn.gradcheck (float64, central differences).

Shapes and hyper-parameters are drawn by hypothesis; tensors stay tiny because a
gradient check runs two forwards per input element. Values are drawn from a
seeded NumPy generator (hypothesis draws the seed), away from kinks where an op
is not differentiable (0 for the ReLU family, ties for max and max pooling).

The strategies ``conv_cases`` and ``pool_cases`` are shared with test_torch_parity.py.
"""
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import tinycnn
import tinycnn.functions as F
from tinycnn import Tensor

seeds = st.integers(0, 2**32 - 1)


def random_tensor(rng, shape, low=-1.0, high=1.0):
    """A float64 leaf that requires grad, uniform in [low, high)."""
    return Tensor(rng.uniform(low, high, shape), requires_grad=True)


def away_from_zero(rng, shape, low=0.1, high=2.0):
    """Values with low <= |x| < high and a random sign: no kink of relu/leaky_relu/elu nearby."""
    magnitude = rng.uniform(low, high, shape)
    return Tensor(magnitude * rng.choice([-1.0, 1.0], size=shape), requires_grad=True)


def distinct_values(rng, shape):
    """A random permutation of 0.1, 0.2, ...: no two elements tie, gaps far above gradcheck's eps."""
    size = int(np.prod(shape))
    return Tensor(0.1 * (rng.permutation(size) - size / 2).reshape(shape), requires_grad=True)


def check(fn, *inputs):
    assert tinycnn.gradcheck(fn, list(inputs))


# ----- configurations shared with the PyTorch parity tests ---------------------------

def _pair_or_int(a, b):
    """An int when both axes agree (the common spelling), else the pair."""
    return a if a == b else (a, b)


@st.composite
def conv_cases(draw, max_size=7, max_batch=2):
    """Keyword arguments for F.conv2d plus the input and weight shapes.

    Covers plain, grouped (groups=2) and depthwise (groups == C, channel multiplier 1
    or 2) convolutions; kernels 1-3 (non-square too); strides below and above the
    kernel; padding 0-2, "same" (odd and even kernels) and "valid"; dilation 1-2;
    sizes where the windows do not tile the input.
    """
    kind = draw(st.sampled_from(["plain", "grouped", "depthwise"]))
    if kind == "plain":
        groups, channels, out_channels = 1, draw(st.integers(1, 4)), draw(st.integers(1, 4))
    elif kind == "grouped":
        groups = 2
        channels, out_channels = 2 * draw(st.integers(1, 2)), 2 * draw(st.integers(1, 2))
    else:
        channels = draw(st.integers(2, 4))
        groups, out_channels = channels, channels * draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dy, dx = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    padding_kind = draw(st.sampled_from(["numbers", "same", "valid"]))
    if padding_kind == "numbers":
        sy, sx = draw(st.integers(1, 4)), draw(st.integers(1, 4))
        py, px = draw(st.integers(0, 2)), draw(st.integers(0, 2))
        padding = _pair_or_int(py, px)
    else:
        sy = sx = 1
        py = px = 0          # "same" pads inside conv2d; the input may be as small as 1
        padding = padding_kind
    if padding_kind == "same":
        h, w = draw(st.integers(1, max_size)), draw(st.integers(1, max_size))
    else:
        smallest_h = max(1, dy * (kh - 1) + 1 - 2 * py)    # the padded input must hold one window
        smallest_w = max(1, dx * (kw - 1) + 1 - 2 * px)
        h = draw(st.integers(smallest_h, max(smallest_h, max_size)))
        w = draw(st.integers(smallest_w, max(smallest_w, max_size)))
    return dict(
        input_shape=(draw(st.integers(1, max_batch)), channels, h, w),
        weight_shape=(out_channels, channels // groups, kh, kw),
        bias=draw(st.booleans()),
        kwargs=dict(stride=_pair_or_int(sy, sx), padding=padding, dilation=_pair_or_int(dy, dx), groups=groups),
    )


@st.composite
def pool_cases(draw, max_size=7, max_batch=2, max_channels=2):
    """Input shape and keyword arguments shared by max_pool2d and avg_pool2d.

    Kernels 1-3, stride None (= kernel), below or above the kernel, padding up to
    half the kernel, ceil_mode on/off (windows hanging over the bottom/right edge).
    """
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 4), st.integers(1, 4))))
    py, px = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    h = draw(st.integers(max(1, kh - 2 * py), max_size))
    w = draw(st.integers(max(1, kw - 2 * px), max_size))
    return dict(
        input_shape=(draw(st.integers(1, max_batch)), draw(st.integers(1, max_channels)), h, w),
        kwargs=dict(kernel_size=_pair_or_int(kh, kw), stride=stride if stride is None else _pair_or_int(*stride),
                    padding=_pair_or_int(py, px), ceil_mode=draw(st.booleans())),
    )


# ----- elementwise arithmetic and matmul --------------------------------------------

binary_ops = {"add": F.add, "sub": F.sub, "mul": F.mul, "div": F.div}


@pytest.mark.parametrize("name", sorted(binary_ops))
@settings(max_examples=15, deadline=None)
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3), seed=seeds)
def test_broadcasting_binary_ops(name, shapes, seed):
    rng = np.random.default_rng(seed)
    a_shape, b_shape = shapes.input_shapes
    a = random_tensor(rng, a_shape)
    b = away_from_zero(rng, b_shape, low=0.5) if name == "div" else random_tensor(rng, b_shape)
    check(binary_ops[name], a, b)


@settings(max_examples=15, deadline=None)
@given(shape=st.lists(st.integers(1, 3), max_size=3).map(tuple),
       exponent=st.sampled_from([2, 3, 0.5, -1.5, 1.7, -1]), seed=seeds)
def test_pow(shape, exponent, seed):
    x = random_tensor(np.random.default_rng(seed), shape, 0.5, 2.0)
    check(lambda x: F.pow(x, exponent), x)
    check(lambda x: x ** exponent, x)


@pytest.mark.parametrize("op, low", [(F.exp, -2.0), (F.log, 0.3), (F.sqrt, 0.3), (F.neg, -2.0)])
@settings(max_examples=8, deadline=None)
@given(shape=st.lists(st.integers(1, 3), max_size=3).map(tuple), seed=seeds)
def test_unary_math(op, low, shape, seed):
    check(op, random_tensor(np.random.default_rng(seed), shape, low, 2.0))


@settings(max_examples=25, deadline=None)
@given(shapes=mutually_broadcastable_shapes(signature=np.matmul.signature, max_dims=2, max_side=3), seed=seeds)
def test_matmul_with_broadcast_batch_dims_and_vectors(shapes, seed):
    rng = np.random.default_rng(seed)
    a_shape, b_shape = shapes.input_shapes
    check(F.matmul, random_tensor(rng, a_shape), random_tensor(rng, b_shape))


# ----- activations and softmax ----------------------------------------------------------

small_shapes = st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple)

activations = {
    "relu": F.relu,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.1),
    "elu": lambda x: F.elu(x, 1.3),
    "sigmoid": F.sigmoid,
    "tanh": F.tanh,
}


@pytest.mark.parametrize("name", sorted(activations))
@settings(max_examples=8, deadline=None)
@given(shape=small_shapes, seed=seeds)
def test_activations(name, shape, seed):
    check(activations[name], away_from_zero(np.random.default_rng(seed), shape, 0.1, 3.0))


@pytest.mark.parametrize("op", [F.softmax, F.log_softmax])
@settings(max_examples=10, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=2, max_size=4).map(tuple), data=st.data(), seed=seeds)
def test_softmax_and_log_softmax(op, shape, data, seed):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = random_tensor(np.random.default_rng(seed), shape, -3.0, 3.0)
    check(lambda x: op(x, axis=axis), x)


# ----- linear, convolution -------------------------------------------------------------

@settings(max_examples=15, deadline=None)
@given(batch_shape=st.lists(st.integers(1, 3), min_size=1, max_size=2).map(tuple),
       in_features=st.integers(1, 4), out_features=st.integers(1, 4), bias=st.booleans(), seed=seeds)
def test_linear(batch_shape, in_features, out_features, bias, seed):
    rng = np.random.default_rng(seed)
    x = random_tensor(rng, batch_shape + (in_features,))
    weight = random_tensor(rng, (out_features, in_features))
    if bias:
        check(F.linear, x, weight, random_tensor(rng, (out_features,)))
    else:
        check(F.linear, x, weight)


def conv_inputs(rng, case):
    inputs = [random_tensor(rng, case["input_shape"]), random_tensor(rng, case["weight_shape"])]
    if case["bias"]:
        inputs.append(random_tensor(rng, case["weight_shape"][:1]))
    return inputs


@settings(max_examples=60, deadline=None)
@given(case=conv_cases(), seed=seeds)
def test_conv2d(conv_layout, case, seed):
    check(lambda *t: F.conv2d(*t, **case["kwargs"]), *conv_inputs(np.random.default_rng(seed), case))


@st.composite
def conv3x3_cases(draw, max_size=7):
    """(input shape, weight shape, padding) of a 3x3 stride-1 convolution, the kind Winograd's
    transforms compute (conv_layout "winograd"): odd and even sizes, padding 0-3, images
    smaller than one 4x4 tile."""
    padding = draw(st.integers(0, 3))
    h, w = (draw(st.integers(max(1, 3 - 2 * padding), max_size)) for _ in range(2))
    channels, out_channels = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return (draw(st.integers(1, 2)), channels, h, w), (out_channels, channels, 3, 3), padding


@settings(max_examples=30, deadline=None)
@given(case=conv3x3_cases(), bias=st.booleans(), seed=seeds)
def test_conv2d_3x3_stride_1(conv_layout, case, bias, seed):
    (input_shape, weight_shape, padding), rng = case, np.random.default_rng(seed)
    inputs = [random_tensor(rng, input_shape), random_tensor(rng, weight_shape)]
    inputs += [random_tensor(rng, weight_shape[:1])] if bias else []
    check(lambda *t: F.conv2d(*t, padding=padding), *inputs)


@pytest.mark.parametrize("kernel", [1, 2, 3, 4])
@pytest.mark.parametrize("groups", [1, 2])
def test_conv2d_padding_half_the_kernel(conv_layout, kernel, groups):
    """Border pixels: padding k//2 (the 'same' amount for odd k), stride 1 and 2, non-square input."""
    rng = np.random.default_rng(kernel)
    x = random_tensor(rng, (2, 2, 5, 4))
    w, b = random_tensor(rng, (4, 2 // groups, kernel, kernel)), random_tensor(rng, (4,))
    for stride in (1, 2):
        check(lambda *t: F.conv2d(*t, stride=stride, padding=kernel // 2, groups=groups), x, w, b)


# ----- pooling -------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(case=pool_cases(), seed=seeds)
def test_max_pool2d_without_ties(case, seed):
    x = distinct_values(np.random.default_rng(seed), case["input_shape"])
    check(lambda x: F.max_pool2d(x, **case["kwargs"]), x)


@settings(max_examples=40, deadline=None)
@given(case=pool_cases(), count_include_pad=st.booleans(), seed=seeds)
def test_avg_pool2d(case, count_include_pad, seed):
    x = random_tensor(np.random.default_rng(seed), case["input_shape"])
    check(lambda x: F.avg_pool2d(x, **case["kwargs"], count_include_pad=count_include_pad), x)


@pytest.mark.parametrize("kernel", [2, 3])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_pooling_with_padding_half_the_kernel(kernel, ceil_mode):
    """The largest padding allowed: corner windows hold a single real pixel for k=2, four for k=3."""
    rng = np.random.default_rng(kernel)
    x = distinct_values(rng, (1, 2, 5, 6))
    check(lambda x: F.max_pool2d(x, kernel, stride=2, padding=kernel // 2, ceil_mode=ceil_mode), x)
    for count_include_pad in (False, True):
        check(lambda x: F.avg_pool2d(x, kernel, 2, kernel // 2, ceil_mode, count_include_pad), x)


def first_in_window_gradient(h, w, k, stride, padding, out_h, out_w, grad_out):
    """What max pooling of a constant image must return: each window's whole gradient
    goes to its first real pixel in scan order (rows outer, columns inner)."""
    expected = np.zeros((h, w))
    for oy in range(out_h):
        for ox in range(out_w):
            first_row = max(oy * stride - padding, 0)
            first_col = max(ox * stride - padding, 0)
            expected[first_row, first_col] += grad_out[oy, ox]
    return expected


@pytest.mark.parametrize("h, w, k, stride, padding, ceil_mode", [
    (4, 4, 2, 2, 0, False),     # windows tile the image
    (5, 5, 3, 1, 0, False),     # overlapping windows: a pixel wins several windows
    (5, 6, 3, 2, 1, False),     # padded border: the first REAL pixel wins, not a padding cell
    (5, 5, 2, 2, 0, True),      # ceil_mode: the last windows hang over the bottom/right edge
    (6, 7, 3, 3, 1, True),
])
def test_max_pool2d_ties_go_to_the_first_element(h, w, k, stride, padding, ceil_mode):
    x = Tensor(np.full((1, 1, h, w), 0.7), requires_grad=True)
    y = F.max_pool2d(x, k, stride, padding, ceil_mode)
    out_h, out_w = y.shape[2:]
    grad_out = np.arange(1.0, 1.0 + out_h * out_w).reshape(out_h, out_w)
    y.backward(grad_out[None, None])
    np.testing.assert_array_equal(y.numpy(), np.full(y.shape, 0.7))
    np.testing.assert_array_equal(x.grad[0, 0], first_in_window_gradient(h, w, k, stride, padding,
                                                                         out_h, out_w, grad_out))


def test_avg_pool2d_ceil_mode_window_over_the_edge():
    """5x5 input, k=2, s=2, ceil_mode: the last row/column of windows sees one row/column only.
    Without padding PyTorch divides by the cells inside the image, with or without count_include_pad."""
    x = Tensor(np.arange(25.0).reshape(1, 1, 5, 5), requires_grad=True)
    for count_include_pad in (False, True):
        y = F.avg_pool2d(x, 2, 2, 0, ceil_mode=True, count_include_pad=count_include_pad).numpy()[0, 0]
        image = x.numpy()[0, 0]
        expected = np.array([[image[r:r + 2, c:c + 2].mean() for c in range(0, 5, 2)] for r in range(0, 5, 2)])
        np.testing.assert_allclose(y, expected, rtol=1e-12)
        check(lambda x: F.avg_pool2d(x, 2, 2, 0, True, count_include_pad), x)


@settings(max_examples=10, deadline=None)
@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4)),
       keepdims=st.booleans(), seed=seeds)
def test_global_avg_pool2d(shape, keepdims, seed):
    check(lambda x: F.global_avg_pool2d(x, keepdims=keepdims), random_tensor(np.random.default_rng(seed), shape))


# ----- normalization and dropout ---------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 6), st.integers(1, 3), st.integers(1, 3)),
       size=st.integers(1, 6), alpha=st.floats(1e-4, 1.0), beta=st.floats(0.25, 1.5), k=st.floats(0.5, 2.0),
       seed=seeds)
def test_local_response_norm(shape, size, alpha, beta, k, seed):
    x = random_tensor(np.random.default_rng(seed), shape, -2.0, 2.0)
    check(lambda x: F.local_response_norm(x, size, alpha, beta, k), x)


batch_norm_shapes = st.one_of(
    st.tuples(st.integers(2, 5), st.integers(1, 4)),
    st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)),
).filter(lambda shape: int(np.prod(shape)) // shape[1] > 1)   # training needs > 1 value per channel


@settings(max_examples=25, deadline=None)
@given(shape=batch_norm_shapes, training=st.booleans(), relu=st.sampled_from(["none", "after", "before"]),
       seed=seeds)
def test_batch_norm(shape, training, relu, seed):
    """Gradients w.r.t. x, gamma and beta; training uses batch statistics, eval the running ones;
    ``relu``: the fused F.batch_norm_relu (its outputs kept away from the ReLU's kink) or
    F.relu_batch_norm (its inputs away from 0, and at least two positive per channel)."""
    rng = np.random.default_rng(seed)
    channels = shape[1]
    x = away_from_zero(rng, shape) if relu == "before" else random_tensor(rng, shape, -2.0, 2.0)
    if relu == "before" and training:
        positive = (x.numpy() > 0).reshape(shape[0], channels, -1).sum(axis=(0, 2))
        assume(positive.min() >= 2)              # else the variance of max(x, 0) is ~0
    gamma, beta = random_tensor(rng, (channels,), 0.5, 1.5), random_tensor(rng, (channels,))
    running_mean, running_var = rng.normal(size=channels), rng.uniform(0.5, 2.0, channels)
    function = {"none": F.batch_norm, "after": F.batch_norm_relu, "before": F.relu_batch_norm}[relu]
    if relu == "after":
        before_relu = F.batch_norm(x, gamma, beta, running_mean.copy(), running_var.copy(), training=training)
        assume(np.abs(before_relu.numpy()).min() > 1e-3)
    check(lambda x, g, b: function(x, g, b, running_mean, running_var, training=training), x, gamma, beta)


@settings(max_examples=10, deadline=None)
@given(shape=small_shapes, p=st.floats(0.1, 0.9), seed=seeds)
def test_dropout_with_a_fixed_mask(shape, p, seed):
    def dropout_fn(x):
        tinycnn.manual_seed(seed)   # every evaluation draws the same mask
        return F.dropout(x, p, training=True)

    check(dropout_fn, random_tensor(np.random.default_rng(seed), shape))


# ----- joining, splitting and reshaping -------------------------------------------------

@settings(max_examples=15, deadline=None)
@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=3).map(tuple),
       extra_sizes=st.lists(st.integers(1, 3), min_size=1, max_size=3), data=st.data(), seed=seeds)
def test_concat(shape, extra_sizes, data, seed):
    rng = np.random.default_rng(seed)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    tensors = [random_tensor(rng, shape[:axis % len(shape)] + (n,) + shape[axis % len(shape) + 1:])
               for n in [shape[axis]] + extra_sizes]
    check(lambda *xs: F.concat(xs, axis=axis), *tensors)


@settings(max_examples=15, deadline=None)
@given(sizes=st.lists(st.integers(1, 3), min_size=1, max_size=4), equal=st.booleans(), seed=seeds)
def test_split(sizes, equal, seed):
    """Each part is scaled by its own factor and the parts are re-joined in reverse order,
    so a gradient routed to the wrong part fails the check."""
    rng = np.random.default_rng(seed)
    sections = len(sizes) if equal else sizes
    length = sizes[0] * len(sizes) if equal else sum(sizes)
    x = random_tensor(rng, (2, length, 2))

    def split_fn(x):
        parts = F.split(x, sections, axis=1)
        return F.concat([part * (i + 1.0) for i, part in enumerate(parts)][::-1], axis=1)

    check(split_fn, x)


@settings(max_examples=15, deadline=None)
@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=3).map(tuple), data=st.data(),
       value=st.floats(-2, 2), seed=seeds)
def test_pad(shape, data, value, seed):
    pad_width = [data.draw(st.tuples(st.integers(0, 2), st.integers(0, 2))) for _ in shape]
    check(lambda x: F.pad(x, pad_width, value), random_tensor(np.random.default_rng(seed), shape))


@settings(max_examples=15, deadline=None)
@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=4).map(tuple), data=st.data(), seed=seeds)
def test_flatten_reshape_transpose(shape, data, seed):
    x = random_tensor(np.random.default_rng(seed), shape)
    start_dim = data.draw(st.integers(0, len(shape) - 1))
    axes = data.draw(st.permutations(range(len(shape))))
    check(lambda x: F.flatten(x, start_dim), x)
    check(lambda x: F.reshape(x, (-1,) + shape[:1]), x)
    check(lambda x: F.transpose(x, axes), x)
    check(lambda x: x.T, x)


@settings(max_examples=20, deadline=None)
@given(rows=st.integers(1, 4), cols=st.integers(1, 4), seed=seeds)
def test_getitem_with_repeated_fancy_indices(rows, cols, seed):
    """Repeated indices must accumulate (np.add.at), not overwrite."""
    rng = np.random.default_rng(seed)
    x = random_tensor(rng, (rows, cols, 2))
    row_index = rng.integers(0, rows, size=5)          # 5 > rows: repeats guaranteed
    col_index = rng.integers(0, cols, size=5)
    for index in (row_index, (slice(None), col_index), (row_index, col_index), (row_index[:, None], col_index),
                  (slice(None, None, 2), -1), (Ellipsis, 1), (x.data[..., 0] > 0,)):
        check(lambda x: x[index], x)


@settings(max_examples=8, deadline=None)
@given(groups=st.integers(1, 3), per_group=st.integers(1, 3), seed=seeds)
def test_channel_shuffle(groups, per_group, seed):
    x = random_tensor(np.random.default_rng(seed), (2, groups * per_group, 2, 1))
    check(lambda x: F.channel_shuffle(x, groups), x)


# ----- loss and reductions -----------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 4), k=st.integers(2, 5), one_hot=st.booleans(),
       label_smoothing=st.sampled_from([0.0, 0.1, 0.5]), reduction=st.sampled_from(["mean", "sum", "none"]), seed=seeds)
def test_softmax_cross_entropy(n, k, one_hot, label_smoothing, reduction, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, size=n)
    targets = np.eye(k)[labels] if one_hot else labels
    logits = random_tensor(rng, (n, k), -3.0, 3.0)
    check(lambda z: F.softmax_cross_entropy(z, targets, label_smoothing, reduction), logits)


def test_softmax_cross_entropy_with_soft_targets():
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(4), size=3)
    check(lambda z: F.softmax_cross_entropy(z, probabilities), random_tensor(rng, (3, 4)))


@st.composite
def shapes_and_axes(draw):
    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)))
    axis = draw(st.one_of(
        st.none(),
        st.integers(-len(shape), len(shape) - 1),
        st.lists(st.integers(0, len(shape) - 1), min_size=1, unique=True).map(tuple),
    ))
    return shape, axis


@pytest.mark.parametrize("reduction", ["sum", "mean", "max"])
@settings(max_examples=15, deadline=None)
@given(shape_axis=shapes_and_axes(), keepdims=st.booleans(), seed=seeds)
def test_reductions_over_axes(reduction, shape_axis, keepdims, seed):
    shape, axis = shape_axis
    x = distinct_values(np.random.default_rng(seed), shape)   # max needs a unique winner
    check(lambda x: getattr(F, reduction)(x, axis=axis, keepdims=keepdims), x)
