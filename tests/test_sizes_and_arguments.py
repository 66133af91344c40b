"""Size and layer arguments, following PyTorch: what it accepts works (NumPy integers are integers,
empty batches give empty outputs and zero gradients), what it refuses gets a clear error naming
the op or layer and the value that came, before any kernel runs."""
import numpy as np
import pytest

import tinycnn
import tinycnn.functions as F
import tinycnn.nn as nn
from tinycnn import Tensor


def zeros(*shape):
    return Tensor(np.zeros(shape, dtype=np.float32))


def conv(**kwargs):
    return lambda: F.conv2d(zeros(1, 4, 8, 8), zeros(4, 4, 3, 3), **kwargs)


def pool(function, x=None, **kwargs):
    return lambda: function(zeros(1, 3, 8, 8) if x is None else x, **kwargs)


def batch_norm(x=None, **kwargs):
    arguments = dict(gamma=None, beta=None, running_mean=np.zeros(3), running_var=np.ones(3), training=True)
    return lambda: F.batch_norm(zeros(2, 3, 4, 4) if x is None else x, **{**arguments, **kwargs})


# (id, call, error type, fragments the message must hold: the op or layer, then the bad value)
BAD_ARGUMENTS = [
    ("conv2d stride 1.5", conv(stride=1.5), TypeError, ["conv2d:", "stride", "1.5"]),
    ("conv2d stride True", conv(stride=True), TypeError, ["conv2d:", "stride", "True"]),
    ("conv2d stride 0", conv(stride=0), ValueError, ["conv2d:", "stride", "0"]),
    ("conv2d stride triple", conv(stride=(1, 1, 1)), TypeError, ["conv2d:", "stride", "(1, 1, 1)"]),
    ("conv2d padding 0.5", conv(padding=0.5), TypeError, ["conv2d:", "padding", "0.5"]),
    ("conv2d padding 'full'", conv(padding="full"), ValueError, ["conv2d:", "padding", "'full'"]),
    ("conv2d dilation 0", conv(dilation=0), ValueError, ["conv2d:", "dilation", "0"]),
    ("conv2d groups True", conv(groups=True), TypeError, ["conv2d:", "groups", "True"]),
    ("conv2d groups 2.0", conv(groups=2.0), TypeError, ["conv2d:", "groups", "2.0"]),
    ("conv2d groups 0", lambda: F.conv2d(zeros(1, 4, 8, 8), zeros(4, 4, 3, 3), groups=0), ValueError,
     ["conv2d:", "groups", "0"]),
    ("conv2d no output channels", lambda: F.conv2d(zeros(1, 3, 8, 8), zeros(0, 3, 3, 3)), ValueError,
     ["conv2d:", "output channel", "(0, 3, 3, 3)"]),
    ("conv2d empty kernel", lambda: F.conv2d(zeros(1, 3, 8, 8), zeros(4, 3, 0, 3)), ValueError,
     ["conv2d:", "kernel", "(4, 3, 0, 3)"]),
    ("conv2d zero height", lambda: F.conv2d(zeros(1, 3, 0, 8), zeros(4, 3, 1, 1), padding=1), ValueError,
     ["conv2d:", "height", "(1, 3, 0, 8)"]),
    ("Conv2d kernel 0", lambda: nn.Conv2d(3, 4, 0), ValueError, ["Conv2d:", "kernel_size", "0"]),
    ("Conv2d kernel 2.0", lambda: nn.Conv2d(3, 4, 2.0), TypeError, ["Conv2d:", "kernel_size", "2.0"]),
    ("Conv2d kernel True", lambda: nn.Conv2d(3, 4, True), TypeError, ["Conv2d:", "kernel_size", "True"]),
    ("Conv2d in_channels True", lambda: nn.Conv2d(True, 4, 3), TypeError, ["Conv2d:", "in_channels", "True"]),
    ("Conv2d in_channels -1", lambda: nn.Conv2d(-1, 4, 3), ValueError, ["Conv2d:", "in_channels", "-1"]),
    ("Conv2d out_channels 0", lambda: nn.Conv2d(3, 0, 3), ValueError, ["Conv2d:", "out_channels", "0"]),
    ("Conv2d stride 1.5", lambda: nn.Conv2d(3, 4, 3, stride=1.5), TypeError, ["Conv2d:", "stride", "1.5"]),
    ("Conv2d groups True", lambda: nn.Conv2d(3, 3, 3, groups=True), TypeError, ["Conv2d:", "groups", "True"]),
    ("Conv2d same and strided", lambda: nn.Conv2d(3, 3, 3, stride=2, padding="same"), ValueError,
     ["Conv2d:", "same", "(2, 2)"]),
    ("depthwise groups 2.5", lambda: nn.Conv2d(4, 4, 3, groups=2.5), TypeError, ["Conv2d:", "groups", "2.5"]),
    ("max_pool2d kernel 1.5", pool(F.max_pool2d, kernel_size=1.5), TypeError, ["max_pool2d:", "kernel_size", "1.5"]),
    ("max_pool2d kernel True", pool(F.max_pool2d, kernel_size=True), TypeError, ["max_pool2d:", "True"]),
    ("max_pool2d stride 0", pool(F.max_pool2d, kernel_size=2, stride=0), ValueError, ["max_pool2d:", "stride", "0"]),
    ("max_pool2d no channels", pool(F.max_pool2d, zeros(2, 0, 4, 4), kernel_size=2), ValueError,
     ["max_pool2d:", "(2, 0, 4, 4)"]),
    ("avg_pool2d padding -1", pool(F.avg_pool2d, kernel_size=3, padding=-1), ValueError,
     ["avg_pool2d:", "padding", "-1"]),
    ("avg_pool2d zero width", pool(F.avg_pool2d, zeros(2, 3, 4, 0), kernel_size=1), ValueError,
     ["avg_pool2d:", "(2, 3, 4, 0)"]),
    ("MaxPool2d kernel 0", lambda: nn.MaxPool2d(0), ValueError, ["MaxPool2d:", "kernel_size", "0"]),
    ("MaxPool2d kernel 1.5", lambda: nn.MaxPool2d(1.5), TypeError, ["MaxPool2d:", "kernel_size", "1.5"]),
    ("AvgPool2d stride 'two'", lambda: nn.AvgPool2d(2, "two"), TypeError, ["AvgPool2d:", "stride", "'two'"]),
    ("batch_norm momentum 2", batch_norm(momentum=2), ValueError, ["batch_norm:", "momentum", "2"]),
    ("batch_norm momentum None", batch_norm(momentum=None), TypeError, ["batch_norm:", "momentum", "None"]),
    ("batch_norm eps -1", batch_norm(eps=-1), ValueError, ["batch_norm:", "eps", "-1"]),
    ("batch_norm no channels", batch_norm(zeros(2, 0, 4, 4), running_mean=None, running_var=None), ValueError,
     ["batch_norm:", "(2, 0, 4, 4)"]),
    ("BatchNorm2d momentum -0.1", lambda: nn.BatchNorm2d(3, momentum=-0.1), ValueError,
     ["BatchNorm2d:", "momentum", "-0.1"]),
    ("BatchNorm2d momentum 'a'", lambda: nn.BatchNorm2d(3, momentum="a"), TypeError, ["BatchNorm2d:", "momentum", "'a'"]),
    ("BatchNorm1d momentum None", lambda: nn.BatchNorm1d(3, momentum=None), TypeError,
     ["BatchNorm1d:", "momentum", "None"]),
    ("BatchNorm2d num_features 0", lambda: nn.BatchNorm2d(0), ValueError, ["BatchNorm2d:", "num_features", "0"]),
    ("BatchNorm2d num_features 2.5", lambda: nn.BatchNorm2d(2.5), TypeError, ["BatchNorm2d:", "num_features", "2.5"]),
    ("BatchNorm1d num_features True", lambda: nn.BatchNorm1d(True), TypeError, ["BatchNorm1d:", "True"]),
    ("Linear in_features 2.5", lambda: nn.Linear(2.5, 4), TypeError, ["Linear:", "in_features", "2.5"]),
    ("Linear out_features -1", lambda: nn.Linear(4, -1), ValueError, ["Linear:", "out_features", "-1"]),
    ("Linear in_features True", lambda: nn.Linear(True, 4), TypeError, ["Linear:", "in_features", "True"]),
    ("Dropout p 1.5", lambda: nn.Dropout(1.5), ValueError, ["Dropout:", "p", "1.5"]),
    ("Dropout p 'a'", lambda: nn.Dropout("a"), TypeError, ["Dropout:", "p", "'a'"]),
    ("Dropout p None", lambda: nn.Dropout(None), TypeError, ["Dropout:", "p", "None"]),
    ("dropout p -0.5", lambda: F.dropout(zeros(2, 3), -0.5), ValueError, ["dropout:", "p", "-0.5"]),
    ("dropout p nan", lambda: F.dropout(zeros(2, 3), float("nan")), ValueError, ["dropout:", "p", "nan"]),
    ("local_response_norm size 2.5", lambda: F.local_response_norm(zeros(1, 3, 4, 4), 2.5), TypeError,
     ["local_response_norm:", "size", "2.5"]),
    ("local_response_norm size True", lambda: F.local_response_norm(zeros(1, 3, 4, 4), True), TypeError,
     ["local_response_norm:", "size", "True"]),
    ("local_response_norm k 0", lambda: F.local_response_norm(zeros(1, 3, 4, 4), 3, k=0), ValueError,
     ["local_response_norm:", "k", "0"]),
    ("LocalResponseNorm size 0", lambda: nn.LocalResponseNorm(0), ValueError, ["LocalResponseNorm:", "size", "0"]),
    ("LocalResponseNorm alpha -1", lambda: nn.LocalResponseNorm(3, alpha=-1), ValueError,
     ["LocalResponseNorm:", "alpha", "-1"]),
]


@pytest.mark.parametrize("call, error, fragments", [case[1:] for case in BAD_ARGUMENTS],
                         ids=[case[0] for case in BAD_ARGUMENTS])
def test_bad_arguments_name_the_op_and_the_value(monkeypatch, call, error, fragments):
    def no_kernel(*args, **kwargs):
        raise AssertionError("a kernel ran before the arguments were checked")
    for name in ("im2col", "im2row", "winograd_input_transform", "max_pool2d_forward", "avg_pool2d_forward",
                 "batch_norm_forward_train", "lrn_forward", "dropout_apply", "depthwise_conv2d_forward"):
        monkeypatch.setattr(tinycnn.kernels, name, no_kernel)
    with pytest.raises(error) as raised:
        call()
    message = str(raised.value)
    assert message.startswith(fragments[0])
    for fragment in fragments[1:]:
        assert fragment in message


@pytest.mark.parametrize("integer", [np.int64, np.int32, np.uint8], ids=lambda t: t.__name__)
def test_numpy_integers_are_integers_everywhere(integer):
    """Every size argument as a NumPy integer gives what the Python int gives."""
    i = integer
    x = Tensor(np.random.default_rng(0).standard_normal((2, 4, 8, 8)).astype(np.float32))
    tinycnn.manual_seed(0)
    conv_np = nn.Conv2d(i(4), i(8), i(3), stride=i(1), padding=(i(1), i(1)), dilation=i(1), groups=i(2))
    tinycnn.manual_seed(0)
    conv_int = nn.Conv2d(4, 8, 3, stride=1, padding=(1, 1), dilation=1, groups=2)
    np.testing.assert_array_equal(conv_np(x).data, conv_int(x).data)
    depthwise = F.conv2d(x, Tensor(np.ones((4, 1, 3, 3), np.float32)), stride=i(2), groups=i(4))
    assert depthwise.shape == (2, 4, 3, 3)
    assert nn.MaxPool2d(i(2), i(2), i(0))(x).shape == F.max_pool2d(x, 2).shape == (2, 4, 4, 4)
    assert nn.AvgPool2d((i(3), i(3)), i(1), i(1))(x).shape == (2, 4, 8, 8)
    np.testing.assert_array_equal(nn.LocalResponseNorm(i(3))(x).data, F.local_response_norm(x, 3).data)
    assert nn.BatchNorm2d(i(4))(x).shape == (2, 4, 8, 8)
    assert nn.Linear(i(4), i(5))(zeros(3, 4)).shape == (3, 5)


def test_linear_without_inputs_outputs_zeros_like_pytorch():
    """PyTorch's Linear(0, 4) draws no weights and bounds its bias by 1/sqrt(fan_in) := 0."""
    layer = nn.Linear(0, 4)
    x = Tensor(np.zeros((3, 0), np.float32), requires_grad=True)
    y = layer(x)
    y.backward(np.ones((3, 4), np.float32))
    np.testing.assert_array_equal(y.data, np.zeros((3, 4)))
    assert x.grad.shape == (3, 0) and layer.weight.grad.shape == (4, 0)
    np.testing.assert_array_equal(layer.bias.grad, np.full(4, 3.0))


def test_convolution_without_input_channels_outputs_its_bias():
    """C = 0: every output is a sum of no products, so it is the bias (PyTorch returns a tensor of
    0 output channels instead, which no next layer can take)."""
    layer = nn.Conv2d(0, 4, 3, padding=1)
    x = Tensor(np.zeros((2, 0, 5, 5), np.float32), requires_grad=True)
    y = layer(x)
    y.backward(np.ones(y.shape, np.float32))
    np.testing.assert_array_equal(y.data, np.broadcast_to(layer.bias.data.reshape(1, 4, 1, 1), (2, 4, 5, 5)))
    np.testing.assert_array_equal(layer.bias.data, np.zeros(4))      # PyTorch's bound for fan_in 0
    assert x.grad.shape == (2, 0, 5, 5) and layer.weight.grad.shape == (4, 0, 3, 3)
    np.testing.assert_array_equal(layer.bias.grad, np.full(4, 50.0))


def test_batch_norm_on_an_empty_batch_keeps_its_running_statistics():
    layer = nn.BatchNorm2d(3)
    layer.running_mean[:] = 2.0
    x = Tensor(np.zeros((0, 3, 4, 4), np.float32), requires_grad=True)
    y = layer(x)
    y.backward(np.zeros(y.shape, np.float32))
    assert y.shape == (0, 3, 4, 4) and x.grad.shape == (0, 3, 4, 4)
    np.testing.assert_array_equal(layer.running_mean, np.full(3, 2.0))
    np.testing.assert_array_equal(layer.running_var, np.ones(3))
    np.testing.assert_array_equal(layer.weight.grad, np.zeros(3))


# (id, ours, PyTorch's, input shape): zero-size inputs PyTorch accepts; both get the same input
ZERO_SIZES = [
    ("conv2d N=0", lambda t: t.nn.Conv2d(3, 4, 3, padding=1), (0, 3, 8, 8)),
    ("conv2d N=0 Winograd's shape", lambda t: t.nn.Conv2d(16, 8, 3, padding=1), (0, 16, 8, 8)),
    ("conv2d N=0 im2row's shape", lambda t: t.nn.Conv2d(16, 8, 3, stride=2), (0, 16, 9, 9)),
    ("conv2d N=0 pointwise", lambda t: t.nn.Conv2d(16, 8, 1), (0, 16, 5, 5)),
    ("conv2d N=0 grouped", lambda t: t.nn.Conv2d(4, 8, 3, groups=2), (0, 4, 6, 6)),
    ("conv2d N=0 depthwise", lambda t: t.nn.Conv2d(4, 8, 3, groups=4), (0, 4, 6, 6)),
    ("max_pool2d N=0", lambda t: t.nn.MaxPool2d(2), (0, 3, 4, 4)),
    ("avg_pool2d N=0", lambda t: t.nn.AvgPool2d(3, 2, 1), (0, 3, 5, 5)),
    ("BatchNorm2d train N=0", lambda t: t.nn.BatchNorm2d(3), (0, 3, 4, 4)),
    ("BatchNorm2d train H=0", lambda t: t.nn.BatchNorm2d(3), (2, 3, 0, 4)),
    ("BatchNorm2d eval N=0", lambda t: t.nn.BatchNorm2d(3).eval(), (0, 3, 4, 4)),
    ("BatchNorm1d eval N=0", lambda t: t.nn.BatchNorm1d(3).eval(), (0, 3)),
    ("Linear N=0", lambda t: t.nn.Linear(3, 4), (0, 3)),
    ("Linear(4, 0)", lambda t: t.nn.Linear(4, 0), (2, 4)),
    ("Linear(0, 4)", lambda t: t.nn.Linear(0, 4), (2, 0)),
    ("LocalResponseNorm N=0", lambda t: t.nn.LocalResponseNorm(3), (0, 3, 4, 4)),
    ("LocalResponseNorm C=0", lambda t: t.nn.LocalResponseNorm(3), (2, 0, 4, 4)),
    ("Dropout N=0", lambda t: t.nn.Dropout(0.5), (0, 3)),
]


@pytest.mark.parametrize("make, shape", [case[1:] for case in ZERO_SIZES], ids=[case[0] for case in ZERO_SIZES])
def test_zero_sizes_pytorch_accepts_give_its_shapes_and_gradients(make, shape):
    torch = pytest.importorskip("torch")
    theirs = make(torch)
    x_torch = torch.zeros(shape, requires_grad=True)
    y_torch = theirs(x_torch)
    y_torch.backward(torch.ones_like(y_torch))
    ours = make(tinycnn)
    for name, parameter in theirs.named_parameters():          # same weights where there are any
        dict(ours.named_parameters())[name].data[...] = parameter.detach().numpy()
    x = Tensor(np.zeros(shape, np.float32), requires_grad=True)
    y = ours(x)
    y.backward(np.ones(y.shape, np.float32))
    assert y.shape == tuple(y_torch.shape)
    np.testing.assert_allclose(y.data, y_torch.detach().numpy())
    assert x.grad.shape == shape
    for name, parameter in theirs.named_parameters():
        np.testing.assert_allclose(dict(ours.named_parameters())[name].grad, parameter.grad.numpy())
