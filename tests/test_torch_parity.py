"""tinycnn's ops agree with PyTorch (the oracle), forward and backward.

Every comparison runs in float64 (relative tolerance 1e-10) and float32 (1e-4);
the absolute tolerance is the relative one times the largest magnitude of the
expected array, so elements that cancel to almost zero do not fail on rounding.
Configurations are drawn by hypothesis with the strategies of test_gradcheck_ops.py.
Tests of ops backed by tinycnn.kernels run once per CPU implementation (NumPy
reference and Numba) through the ``kernel_implementation`` fixture.
"""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinycnn
import tinycnn.functions as F
import tinycnn.nn as nn
from tinycnn import Tensor, kernels
from test_gradcheck_ops import conv3x3_cases, conv_cases, pool_cases, seeds

torch = pytest.importorskip("torch")
TF = torch.nn.functional
# torch's note that it copies the input to pad an even kernel for padding="same"
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")

RELATIVE_TOLERANCE = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-4}
TORCH_DTYPE = {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32}
dtypes = pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])


@pytest.fixture(scope="module", params=[name for name in ("reference", "cpu") if name in kernels.available()])
def kernel_implementation(request):
    """Run the requesting tests with the NumPy reference kernels, then with the Numba ones.
    Module scope: hypothesis re-runs a test body many times inside one fixture instance."""
    with kernels.use(request.param):
        yield request.param


def assert_matches(ours, theirs, dtype, what="", scale=0.0):
    """ours (a NumPy array) has dtype ``dtype`` and equals theirs (a torch tensor) within tolerance:
    the relative one, times the larger of ``scale`` and the largest magnitude of theirs (``scale``:
    the size of the terms a result cancels from, where those exceed the result)."""
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
    assert ours is not None, f"{what}: no gradient"
    assert ours.dtype == np.dtype(dtype), f"{what}: dtype {ours.dtype}, expected {np.dtype(dtype)}"
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape}, torch {theirs.shape}"
    rtol = RELATIVE_TOLERANCE[np.dtype(dtype)]
    scale = max(scale, float(np.nanmax(np.abs(theirs), initial=0.0)))
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * scale, err_msg=what)


def check_parity(our_fn, torch_fn, arrays, dtype, rng, gradient_scales=lambda grad_out: ()):
    """Run both functions on copies of ``arrays``, backpropagate the same random
    upstream gradient, and compare the outputs and every input's gradient
    (``gradient_scales(grad_out)``: the ``scale`` of ``assert_matches`` for the first inputs' gradients)."""
    arrays = [np.asarray(a, dtype=dtype) for a in arrays]
    ours = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    y, y_torch = our_fn(*ours), torch_fn(*theirs)
    assert_matches(y.data, y_torch, dtype, "forward")
    grad_out = rng.normal(size=y.shape).astype(dtype)
    y.backward(grad_out)
    y_torch.backward(torch.from_numpy(grad_out))
    scales = list(gradient_scales(grad_out))
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert_matches(a.grad, b.grad, dtype, f"gradient of input {i}", scale=scales[i] if i < len(scales) else 0.0)


# ----- convolution and pooling ------------------------------------------------------------


def conv_term_sizes(arrays):
    """gradient_scales for a convolution's (x, weight, bias): each gradient sums products of gy
    with the weights, with the inputs, or gy itself, so a float32 sum that cancels to near zero
    (one output channel's bias gradient) is judged against the size of its terms."""
    x, weight = (float(np.max(np.abs(a), initial=0.0)) for a in arrays[:2])
    return lambda gy: [float(np.max(np.abs(gy), initial=0.0)) * size for size in (weight, x, 1.0)]

@dtypes
@settings(max_examples=50, deadline=None)
@given(case=conv_cases(max_size=12, max_batch=3), seed=seeds)
def test_conv2d(kernel_implementation, conv_layout, dtype, case, seed):
    rng = np.random.default_rng(seed)
    arrays = [rng.normal(size=case["input_shape"]), rng.normal(size=case["weight_shape"])]
    if case["bias"]:
        arrays.append(rng.normal(size=case["weight_shape"][:1]))
    check_parity(lambda *t: F.conv2d(*t, **case["kwargs"]), lambda *t: TF.conv2d(*t, **case["kwargs"]),
                 arrays, dtype, rng, gradient_scales=conv_term_sizes(arrays))


@dtypes
@settings(max_examples=30, deadline=None)
@given(case=conv3x3_cases(max_size=12), bias=st.booleans(), seed=seeds)
def test_conv2d_3x3_stride_1(kernel_implementation, conv_layout, dtype, case, bias, seed):
    (input_shape, weight_shape, padding), rng = case, np.random.default_rng(seed)
    arrays = [rng.normal(size=input_shape), rng.normal(size=weight_shape)]
    arrays += [rng.normal(size=weight_shape[:1])] if bias else []
    check_parity(lambda *t: F.conv2d(*t, padding=padding), lambda *t: TF.conv2d(*t, padding=padding),
                 arrays, dtype, rng, gradient_scales=conv_term_sizes(arrays))


@pytest.fixture(params=[None, 1], ids=["default-workspace", "one-image-per-chunk"])
def workspace_limit(request):
    """The default im2col workspace, then a 1-byte limit that makes conv2d take one image at a time
    (every image exceeds it: the WorkspaceWarning that says so is expected here)."""
    previous = tinycnn.get_workspace_limit()
    with warnings.catch_warnings():
        if request.param is not None:
            warnings.simplefilter("ignore", tinycnn.WorkspaceWarning)
            tinycnn.set_workspace_limit(request.param)
        yield request.param
    tinycnn.set_workspace_limit(previous)


@dtypes
@pytest.mark.parametrize("channels, out_channels, groups", [(16, 32, 1), (16, 32, 4), (16, 16, 16), (8, 16, 8)])
def test_conv2d_wider_layers(kernel_implementation, workspace_limit, dtype, channels, out_channels, groups):
    """Channel counts and sizes of a real network layer (longer sums than the drawn cases),
    with the batch of 3 in one column buffer or in three."""
    rng = np.random.default_rng(groups)
    x, bias = rng.normal(size=(3, channels, 15, 13)), rng.normal(size=out_channels)
    for kernel, kwargs in ((3, dict(padding=1)), (3, dict(stride=2)), (3, dict(padding="same", dilation=2)),
                           (1, dict()), (1, dict(stride=2))):    # 1x1 stride 1 skips im2col
        weight = rng.normal(size=(out_channels, channels // groups, kernel, kernel))
        check_parity(lambda *t: F.conv2d(*t, groups=groups, **kwargs),
                     lambda *t: TF.conv2d(*t, groups=groups, **kwargs), [x, weight, bias], dtype, rng)


@dtypes
@pytest.mark.parametrize("groups", [1, 4])
@pytest.mark.parametrize("kernel, dilation", [((2, 2), 1), ((4, 2), 1), ((2, 3), 2), ((4, 4), 2)])
def test_conv2d_same_padding_with_even_kernels(kernel_implementation, conv_layout, dtype, groups, kernel, dilation):
    """An odd total padding d*(k-1): PyTorch puts the extra pixel at the bottom/right."""
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=(2, 4, 6, 5)), rng.normal(size=(8, 4 // groups) + kernel), rng.normal(size=8)]
    kwargs = dict(padding="same", dilation=dilation, groups=groups)
    check_parity(lambda *t: F.conv2d(*t, **kwargs), lambda *t: TF.conv2d(*t, **kwargs), arrays, dtype, rng)


def pool_input(rng, shape, with_ties):
    """Small integers give many ties (both must pick the first maximum); normals give none."""
    return rng.integers(0, 3, size=shape).astype(np.float64) if with_ties else rng.normal(size=shape)


@dtypes
@settings(max_examples=40, deadline=None)
@given(case=pool_cases(max_size=11, max_batch=2, max_channels=3), with_ties=st.booleans(), seed=seeds)
def test_max_pool2d(kernel_implementation, dtype, case, with_ties, seed):
    rng = np.random.default_rng(seed)
    check_parity(lambda x: F.max_pool2d(x, **case["kwargs"]), lambda x: TF.max_pool2d(x, **case["kwargs"]),
                 [pool_input(rng, case["input_shape"], with_ties)], dtype, rng)


@dtypes
def test_max_pool2d_propagates_nan(kernel_implementation, dtype):
    """A NaN in a window is its maximum and receives the window's gradient, as in PyTorch."""
    x = np.random.default_rng(0).normal(size=(1, 2, 5, 5))
    x[0, 0, 1, 3] = x[0, 1, 4, 0] = np.nan
    check_parity(lambda x: F.max_pool2d(x, 3, 2, 1), lambda x: TF.max_pool2d(x, 3, 2, 1), [x], dtype,
                 np.random.default_rng(1))


@dtypes
@settings(max_examples=40, deadline=None)
@given(case=pool_cases(max_size=11, max_batch=2, max_channels=3), count_include_pad=st.booleans(), seed=seeds)
def test_avg_pool2d(kernel_implementation, dtype, case, count_include_pad, seed):
    rng = np.random.default_rng(seed)
    kwargs = dict(case["kwargs"], count_include_pad=count_include_pad)
    check_parity(lambda x: F.avg_pool2d(x, **kwargs), lambda x: TF.avg_pool2d(x, **kwargs),
                 [rng.normal(size=case["input_shape"])], dtype, rng)


@dtypes
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_avg_pool2d(dtype, keepdims):
    rng = np.random.default_rng(0)
    check_parity(lambda x: F.global_avg_pool2d(x, keepdims), lambda x: x.mean(dim=(2, 3), keepdim=keepdims),
                 [rng.normal(size=(3, 4, 5, 6))], dtype, rng)


# ----- normalization ---------------------------------------------------------------------

@dtypes
@settings(max_examples=25, deadline=None)
@given(shape=st.tuples(st.integers(1, 3), st.integers(1, 9), st.integers(1, 5), st.integers(1, 5)),
       size=st.integers(1, 7), alpha=st.floats(1e-4, 1.0), beta=st.floats(0.25, 1.5), k=st.floats(0.5, 2.0),
       seed=seeds)
def test_local_response_norm(kernel_implementation, dtype, shape, size, alpha, beta, k, seed):
    """PyTorch divides alpha by size, so the paper's alpha is passed to it as alpha * size."""
    rng = np.random.default_rng(seed)
    check_parity(lambda x: F.local_response_norm(x, size, alpha, beta, k),
                 lambda x: TF.local_response_norm(x, size, alpha=alpha * size, beta=beta, k=k),
                 [2 * rng.normal(size=shape)], dtype, rng)


@dtypes
@settings(max_examples=20, deadline=None)
@given(shape=st.one_of(st.tuples(st.integers(4, 8), st.integers(1, 5)),
                       st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 5), st.integers(1, 5))
                       ).filter(lambda shape: int(np.prod(shape)) // shape[1] >= 4),
       momentum=st.sampled_from([0.1, 0.5, 0.9]), eps=st.sampled_from([1e-5, 1e-3]),
       relu=st.sampled_from(["none", "after", "before"]), seed=seeds)
def test_batch_norm_training_steps_then_eval(kernel_implementation, dtype, shape, momentum, eps, relu, seed):
    """Three training steps (batch statistics; running mean and UNBIASED running variance
    updated in place with ``momentum``) and one eval step (running statistics); with ``relu``,
    F.batch_norm_relu against a ReLU after PyTorch's batch_norm, or F.relu_batch_norm
    against a ReLU before it.

    At least 4 values per channel: with 2, the input gradient is the upstream gradient
    minus its projection on (1, xhat), which cancels to ~eps (rounding noise in float32).
    The 2-value case is covered by the float64 gradient check. The input gradient,
    gamma / std * (gy - mean(gy) - xhat * mean(gy * xhat)), may still cancel far below its terms
    (a ReLU before leaves as few as one of 4 values non-zero: seen at 2.5e-4 of the result in
    float32), so its tolerance scales with those terms.
    """
    rng = np.random.default_rng(seed)
    channels = shape[1]
    running_mean, running_var = np.zeros(channels, dtype), np.ones(channels, dtype)
    torch_dtype = TORCH_DTYPE[np.dtype(dtype)]
    torch_mean, torch_var = torch.zeros(channels, dtype=torch_dtype), torch.ones(channels, dtype=torch_dtype)
    gamma, beta = rng.uniform(0.5, 1.5, channels), rng.normal(size=channels)
    for training in (True, True, True, False):
        x = rng.normal(loc=rng.normal(size=(1, channels) + (1,) * (len(shape) - 2)), scale=2.0, size=shape)
        ours = {"none": F.batch_norm, "after": F.batch_norm_relu, "before": F.relu_batch_norm}[relu]
        after = TF.relu if relu == "after" else (lambda y: y)
        before = TF.relu if relu == "before" else (lambda x: x)
        axes = (0,) + tuple(range(2, len(shape)))
        normalized = np.maximum(x, 0) if relu == "before" else x
        std = np.sqrt((normalized.var(axis=axes) if training else running_var.astype(np.float64)) + eps)
        term_size = lambda gy: [float(np.max(np.abs(gy)) * np.max(gamma / std))]
        check_parity(lambda x, g, b: ours(x, g, b, running_mean, running_var, training, momentum, eps),
                     lambda x, g, b: after(TF.batch_norm(before(x), torch_mean, torch_var, g, b, training,
                                                         momentum, eps)),
                     [x, gamma, beta], dtype, rng, gradient_scales=term_size)
        assert_matches(running_mean, torch_mean, dtype, "running_mean")
        assert_matches(running_var, torch_var, dtype, "running_var")


# ----- dropout -----------------------------------------------------------------------------

@dtypes
@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 0.9])
def test_dropout_eval_is_the_identity(dtype, p):
    x = np.random.default_rng(0).normal(size=(4, 5)).astype(dtype)
    layer = nn.Dropout(p).eval()
    np.testing.assert_array_equal(F.dropout(Tensor(x), p, training=False).numpy(), x)
    np.testing.assert_array_equal(layer(Tensor(x)).numpy(), TF.dropout(torch.from_numpy(x), p, training=False).numpy())


@dtypes
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_training_statistics(dtype, p):
    """As torch: each element is kept with probability 1 - p and scaled by 1 / (1 - p);
    the gradient goes through the same mask and scale."""
    tinycnn.manual_seed(123)
    size = 200_000
    x = Tensor(np.random.default_rng(1).uniform(0.5, 1.5, size).astype(dtype), requires_grad=True)
    y = F.dropout(x, p, training=True)
    kept = y.numpy() != 0
    torch_kept = TF.dropout(torch.ones(size, dtype=torch.float64), p, training=True).numpy() != 0
    five_sigma = 5 * np.sqrt(p * (1 - p) / size)
    assert abs(kept.mean() - (1 - p)) < five_sigma
    assert abs(kept.mean() - torch_kept.mean()) < 2 * five_sigma
    scaled = x.numpy() / dtype(1 - p)
    assert_matches(y.numpy()[kept], scaled[kept], dtype, "kept values")
    y.backward(np.ones(size, dtype))
    assert_matches(x.grad, np.where(kept, dtype(1 / (1 - p)), 0).astype(dtype), dtype, "gradient")


# ----- losses, linear and activations -----------------------------------------------------

@dtypes
@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 6), k=st.integers(2, 7), target_kind=st.sampled_from(["labels", "one-hot", "probabilities"]),
       label_smoothing=st.sampled_from([0.0, 0.1, 0.3]), reduction=st.sampled_from(["mean", "sum", "none"]),
       magnitude=st.sampled_from([1.0, 30.0, 1e4]), seed=seeds)
def test_softmax_cross_entropy(dtype, n, k, target_kind, label_smoothing, reduction, magnitude, seed):
    """Logits of magnitude 1e4 must stay finite (the max is subtracted before exp)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, size=n)
    if target_kind == "labels":
        ours, theirs = labels, torch.from_numpy(labels)
    else:
        targets = np.eye(k)[labels] if target_kind == "one-hot" else rng.dirichlet(np.ones(k), size=n)
        ours, theirs = targets.astype(dtype), torch.from_numpy(targets.astype(dtype))
    logits = magnitude * rng.normal(size=(n, k))
    loss = F.softmax_cross_entropy(Tensor(logits.astype(dtype)), ours, label_smoothing, reduction)
    assert np.isfinite(loss.numpy()).all()
    # The gradient softmax * sum(t) - t cancels where a probability is near its target (1 - p of a
    # sure class): judged against its terms, |gy| (over n for the mean) times a target's size, 1.
    per_sample = 1.0 / n if reduction == "mean" else 1.0
    check_parity(lambda z: F.softmax_cross_entropy(z, ours, label_smoothing, reduction),
                 lambda z: TF.cross_entropy(z, theirs, reduction=reduction, label_smoothing=label_smoothing),
                 [logits], dtype, rng,
                 gradient_scales=lambda gy: [float(np.max(np.abs(gy), initial=0.0)) * per_sample])


@dtypes
@settings(max_examples=20, deadline=None)
@given(batch_shape=st.lists(st.integers(1, 4), min_size=1, max_size=2).map(tuple),
       in_features=st.integers(1, 8), out_features=st.integers(1, 8), bias=st.booleans(), seed=seeds)
def test_linear(dtype, batch_shape, in_features, out_features, bias, seed):
    rng = np.random.default_rng(seed)
    arrays = [rng.normal(size=batch_shape + (in_features,)), rng.normal(size=(out_features, in_features))]
    if bias:
        arrays.append(rng.normal(size=out_features))
    check_parity(F.linear, TF.linear, arrays, dtype, rng)


activation_pairs = {
    "relu": (F.relu, TF.relu),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.2), lambda x: TF.leaky_relu(x, 0.2)),
    "elu": (lambda x: F.elu(x, 0.7), lambda x: TF.elu(x, 0.7)),
    "sigmoid": (F.sigmoid, torch.sigmoid),
    "tanh": (F.tanh, torch.tanh),
    "softmax": (lambda x: F.softmax(x, axis=1), lambda x: TF.softmax(x, dim=1)),
    "log_softmax": (lambda x: F.log_softmax(x, axis=-1), lambda x: TF.log_softmax(x, dim=-1)),
}


@dtypes
@pytest.mark.parametrize("name", sorted(activation_pairs))
@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_activations(dtype, name, scale):
    """Scale 30 reaches the saturated tails of sigmoid/tanh/softmax."""
    rng = np.random.default_rng(len(name))
    ours, theirs = activation_pairs[name]
    check_parity(ours, theirs, [scale * rng.normal(size=(3, 5, 2))], dtype, rng)


@dtypes
def test_max_with_ties_shares_the_gradient_like_amax(dtype):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, size=(3, 4, 5)).astype(np.float64)
    for axis in (None, 1, (0, 2)):
        check_parity(lambda t: t.max(axis=axis), lambda t: torch.amax(t, dim=axis if axis is not None else ()),
                     [x], dtype, rng)


# ----- a small network of all of them -----------------------------------------------------

def build_network(layers):
    """The same architecture in tinycnn.nn or torch.nn (``layers`` is either module)."""
    is_torch = layers is torch.nn
    lrn_alpha = 0.05
    return layers.Sequential(
        layers.Conv2d(3, 8, 3, padding=1, bias=False),   # BN cancels a bias: its gradient would be pure rounding
        layers.BatchNorm2d(8),
        layers.ReLU(),
        layers.LocalResponseNorm(3, lrn_alpha * 3 if is_torch else lrn_alpha, 0.75, 2.0),
        layers.MaxPool2d(3, stride=2, ceil_mode=True),          # 10x10 -> 5x5, last window over the edge
        layers.Conv2d(8, 8, 3, padding=1, groups=4),
        layers.AvgPool2d(2, padding=1, count_include_pad=False),  # 5x5 -> 3x3
        layers.Flatten(),
        layers.Linear(8 * 3 * 3, 5),
        layers.Dropout(0.5),
    )


@dtypes
def test_small_network_matches_torch(kernel_implementation, dtype):
    """conv -> BN -> ReLU -> LRN -> maxpool -> grouped conv -> avgpool -> flatten -> linear
    -> dropout (eval) -> cross entropy: loss, every gradient and the running statistics over
    three SGD steps, then one eval forward."""
    ours, theirs = build_network(nn).to(dtype), build_network(torch.nn).to(TORCH_DTYPE[np.dtype(dtype)])
    torch_parameters = dict(theirs.named_parameters())
    torch_buffers = dict(theirs.named_buffers())
    with torch.no_grad():
        for name, parameter in ours.named_parameters():
            torch_parameters[name].copy_(torch.from_numpy(parameter.data))
    ours.train()[9].eval()
    theirs.train()[9].eval()
    rng = np.random.default_rng(0)
    for step in range(3):
        x = rng.normal(size=(4, 3, 10, 10)).astype(dtype)
        labels = rng.integers(0, 5, size=4)
        loss = F.softmax_cross_entropy(ours(Tensor(x)), labels, label_smoothing=0.1)
        torch_loss = TF.cross_entropy(theirs(torch.from_numpy(x)), torch.from_numpy(labels), label_smoothing=0.1)
        assert_matches(loss.data, torch_loss, dtype, f"step {step} loss")
        ours.zero_grad()
        theirs.zero_grad()
        loss.backward()
        torch_loss.backward()
        for name, parameter in ours.named_parameters():
            assert_matches(parameter.grad, torch_parameters[name].grad, dtype, f"step {step} gradient of {name}")
        for name, buffer in ours.named_buffers():
            assert_matches(buffer, torch_buffers[name], dtype, f"step {step} {name}")
        with torch.no_grad():
            for name, parameter in ours.named_parameters():
                parameter.data -= dtype(0.1) * parameter.grad
                torch_parameters[name] -= 0.1 * torch_parameters[name].grad
    ours.eval()
    theirs.eval()
    x = rng.normal(size=(2, 3, 10, 10)).astype(dtype)
    with tinycnn.no_grad(), torch.no_grad():
        assert_matches(ours(Tensor(x)).data, theirs(torch.from_numpy(x)), dtype, "eval forward")
