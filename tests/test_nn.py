"""Modules: registration, buffers, state dicts, modes, init, save/load."""
from collections import OrderedDict

import numpy as np
import pytest

import tinycnn
import tinycnn.nn as nn
from tinycnn import Tensor


def small_net():
    return nn.Sequential(OrderedDict([
        ("conv", nn.Conv2d(3, 4, 3, padding=1)),
        ("bn", nn.BatchNorm2d(4)),
        ("relu", nn.ReLU()),
        ("pool", nn.GlobalAvgPool2d()),
        ("fc", nn.Linear(4, 2)),
    ]))


def test_parameters_and_buffers_are_registered_by_name():
    net = small_net()
    names = [name for name, _ in net.named_parameters()]
    assert names == ["conv.weight", "conv.bias", "bn.weight", "bn.bias", "fc.weight", "fc.bias"]
    assert [name for name, _ in net.named_buffers()] == ["bn.running_mean", "bn.running_var"]
    assert sum(p.numel() for p in net.parameters()) == 3 * 4 * 9 + 4 + 4 + 4 + 4 * 2 + 2
    assert all(not isinstance(b, nn.Parameter) for b in net.buffers())


def test_state_dict_round_trip_through_a_file(tmp_path):
    net, other = small_net(), small_net()
    net(Tensor(np.random.default_rng(0).normal(size=(2, 3, 5, 5)).astype(np.float32)))   # moves running stats
    tinycnn.save(net.state_dict(), tmp_path / "net.npz")
    other.load_state_dict(tinycnn.load(tmp_path / "net.npz"))
    for (name, a), (_, b) in zip(net.state_dict().items(), other.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_load_state_dict_reports_missing_unexpected_and_shapes():
    net = small_net()
    state = dict(net.state_dict())
    state.pop("fc.bias")
    state["extra.weight"] = np.zeros(1)
    with pytest.raises(KeyError, match=r"missing keys \['fc.bias'\].*unexpected keys \['extra.weight'\]"):
        net.load_state_dict(state)
    state = dict(net.state_dict())
    state["fc.weight"] = np.zeros((3, 4), dtype=np.float32)
    with pytest.raises(ValueError, match=r"fc.weight: checkpoint \(3, 4\) vs model \(2, 4\)"):
        net.load_state_dict(state)
    missing, unexpected = net.load_state_dict({"fc.bias": np.ones(2, dtype=np.float32)}, strict=False)
    assert "conv.weight" in missing and not unexpected
    np.testing.assert_array_equal(net.fc.bias.data, [1.0, 1.0])


def test_train_and_eval_switch_every_submodule():
    net = small_net()
    net.eval()
    assert all(not m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


def test_batchnorm_uses_running_statistics_in_eval():
    bn = nn.BatchNorm1d(3)
    x = Tensor(np.random.default_rng(1).normal(3.0, 2.0, size=(64, 3)).astype(np.float32))
    for _ in range(150):   # momentum 0.1: the initial statistics fade as 0.9**150
        bn(x)
    np.testing.assert_allclose(bn.running_mean, x.data.mean(axis=0), rtol=1e-3)
    np.testing.assert_allclose(bn.running_var, x.data.var(axis=0, ddof=1), rtol=1e-3)
    bn.eval()
    y = bn(x).data
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-2)


def test_zero_grad_clears_every_parameter():
    net = small_net()
    loss = net(Tensor(np.ones((2, 3, 4, 4), dtype=np.float32))).sum()
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_repr_is_a_readable_tree():
    text = repr(small_net())
    assert "(conv): Conv2d(3, 4, kernel_size=(3, 3), stride=1, padding=1)" in text
    assert "(fc): Linear(in_features=4, out_features=2, bias=True)" in text


def test_module_list_registers_children():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(list(layers.parameters())) == 6 and len(layers) == 3


def test_to_dtype_casts_parameters_and_buffers():
    net = small_net().to("float64")
    assert all(p.dtype == np.float64 for p in net.parameters())
    assert net.bn.running_mean.dtype == np.float64


@pytest.mark.parametrize("initializer, fan_std", [
    (nn.init.kaiming_normal_, lambda fan_in, fan_out: np.sqrt(2.0 / fan_in)),
    (nn.init.xavier_normal_, lambda fan_in, fan_out: np.sqrt(2.0 / (fan_in + fan_out))),
    (nn.init.kaiming_uniform_, lambda fan_in, fan_out: np.sqrt(2.0 / (1 + 0.0)) / np.sqrt(fan_in)),
    (nn.init.xavier_uniform_, lambda fan_in, fan_out: np.sqrt(2.0 / (fan_in + fan_out))),
])
def test_initialisers_have_the_published_standard_deviation(initializer, fan_std):
    tinycnn.manual_seed(0)
    w = nn.Parameter(np.empty((256, 64, 3, 3), dtype=np.float32))
    initializer(w)
    assert w.dtype == np.float32
    expected = fan_std(64 * 9, 256 * 9)
    assert w.data.std() == pytest.approx(expected, rel=0.02)
    assert abs(w.data.mean()) < 0.02 * expected


def test_default_conv_init_is_pytorch_bound():
    conv = nn.Conv2d(16, 8, 3)
    bound = 1 / np.sqrt(16 * 9)
    assert np.abs(conv.weight.data).max() <= bound and np.abs(conv.bias.data).max() <= bound
    assert np.abs(conv.weight.data).max() > 0.8 * bound


def _runner(net, x):
    """run() -> the output, the gradients of its sum of squares w.r.t. the input and every
    parameter, and the buffers after it; every run starts from the same buffers."""
    start = [b.copy() for b in net.buffers()]

    def run():
        for buffer, value in zip(net.buffers(), start):
            buffer[:] = value
        for p in net.parameters():
            p.grad = None
        inputs = Tensor(x, requires_grad=True)
        y = net(inputs)
        (y * y).sum().backward()
        gradients = [np.asarray(inputs.grad)] + [np.asarray(p.grad) for p in net.parameters()]
        return [y.numpy()] + gradients + [b.copy() for b in net.buffers()]
    return run


def relu_first_net():
    """MiniVGG's order: conv -> ReLU -> BatchNorm."""
    return nn.Sequential(OrderedDict([
        ("conv", nn.Conv2d(3, 4, 3, padding=1)),
        ("relu", nn.ReLU()),
        ("bn", nn.BatchNorm2d(4)),
        ("pool", nn.GlobalAvgPool2d()),
        ("fc", nn.Linear(4, 2)),
    ]))


class FunctionNames(tinycnn.FunctionHook):
    """The type names of the Functions applied inside its with block."""

    def __init__(self):
        self.names = []

    def forward_postprocess(self, function, inputs, outputs):
        self.names.append(type(function).__name__)


def test_sequential_runs_every_layer_as_written():
    net = relu_first_net()
    x = Tensor(np.random.default_rng(1).normal(size=(4, 3, 6, 6)).astype(np.float32))
    with FunctionNames() as seen:
        y = net[:3](x)
    assert seen.names == ["Conv2dIm2col", "ReLU", "BatchNorm"]      # conv2d's algorithm class
    assert not y.creator.relu_input and not y.creator.relu


@pytest.mark.parametrize("training", [True, False])
def test_fuse_turns_relu_then_batch_norm_into_one_op_with_the_same_results(training):
    net = relu_first_net()
    net.train(training)
    x = np.random.default_rng(1).normal(size=(4, 3, 6, 6)).astype(np.float32)
    run = _runner(net, x)
    layer_by_layer = run()
    state = net.state_dict()
    bn = net.bn
    assert nn.fuse(net) is net
    assert [type(m).__name__ for m in net] == ["Conv2d", "Identity", "ReLUBatchNorm2d", "GlobalAvgPool2d", "Linear"]
    assert list(net.state_dict()) == list(state)
    assert all(net.state_dict()[key] is array for key, array in state.items())   # the BatchNorm's own arrays
    assert net.bn.weight is bn.weight and net.bn.training == training
    fused_output = net[:3](Tensor(x))
    assert type(fused_output.creator).__name__ == "BatchNorm" and fused_output.creator.relu_input
    fused = run()
    for got, expected in zip(fused, layer_by_layer):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert 0.2 < (net.conv(Tensor(x)).numpy() < 0).mean() < 0.8     # the ReLU matters


@pytest.mark.parametrize("training", [True, False])
def test_fuse_turns_batch_norm_then_relu_into_one_op_with_the_same_results(training):
    net = small_net()
    net.bn.bias.data[:] = [0.5, -0.5, 0.1, -0.1]      # some channels mostly positive, some mostly zero
    net.train(training)
    x = np.random.default_rng(0).normal(size=(4, 3, 6, 6)).astype(np.float32)
    run = _runner(net, x)
    assert type(net[:3](Tensor(x)).creator).__name__ == "ReLU"
    layer_by_layer = run()
    nn.fuse(net)
    assert [type(m).__name__ for m in net][1:3] == ["BatchNormReLU2d", "Identity"]
    fused_output = net[:3](Tensor(x))
    assert type(fused_output.creator).__name__ == "BatchNorm" and fused_output.creator.relu
    assert 0 < (fused_output.numpy() == 0).mean() < 1
    seen = []
    net.bn.register_forward_hook(lambda module, inputs, output: seen.append(output.numpy().min()))
    fused = run()
    assert seen == [0.0]                                 # the hook on the fused layer sees the fused op
    for got, expected in zip(fused, layer_by_layer):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def test_fuse_keeps_layers_with_forward_hooks_and_sees_batch_norm_1d():
    net = small_net()
    seen = []
    net.bn.register_forward_hook(lambda module, inputs, output: seen.append(output.numpy().min()))
    nn.fuse(net)
    assert [type(m).__name__ for m in net][1:3] == ["BatchNorm2d", "ReLU"]
    x = Tensor(np.random.default_rng(0).normal(size=(4, 3, 6, 6)).astype(np.float32))
    net(x)
    assert seen[-1] < 0                                  # the hook saw BatchNorm's own output

    head = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.BatchNorm1d(6), nn.BatchNorm1d(6), nn.ReLU())
    features = Tensor(np.random.default_rng(2).normal(size=(5, 4)).astype(np.float32))
    expected = head(features).numpy()
    nn.fuse(head)
    assert [type(m).__name__ for m in head] == ["Linear", "Identity", "ReLUBatchNorm1d", "BatchNormReLU1d",
                                                "Identity"]
    np.testing.assert_allclose(head(features).numpy(), expected, rtol=1e-5, atol=1e-6)
    nn.fuse(head)                                        # fusing again changes nothing
    assert [type(m).__name__ for m in head][2:4] == ["ReLUBatchNorm1d", "BatchNormReLU1d"]


def test_fused_model_moves_casts_and_loads_its_batch_norm_state():
    net = nn.fuse(small_net())
    net.to(np.float64)
    assert net.bn.running_mean.dtype == np.float64 and net.bn.weight.dtype == np.float64
    state = {key: np.full(np.shape(value), 0.5) for key, value in small_net().state_dict().items()}
    net.load_state_dict(state)
    np.testing.assert_array_equal(net.bn.running_var, 0.5)
    with pytest.raises(TypeError, match="fuse: expected a tinycnn.nn.Module, got list"):
        nn.fuse([net])


def test_fuse_leaves_layers_with_a_forward_of_their_own():
    class ShiftedReLU(nn.ReLU):
        def forward(self, x):
            return super().forward(x - 1.0)

    net = nn.fuse(nn.Sequential(nn.BatchNorm2d(2), ShiftedReLU()))
    assert [type(m).__name__ for m in net] == ["BatchNorm2d", "ShiftedReLU"]
    x = Tensor(np.random.default_rng(0).normal(size=(3, 2, 4, 4)).astype(np.float32))
    expected = np.maximum(net[0](x).numpy() - 1.0, 0)
    np.testing.assert_allclose(net(x).numpy(), expected, rtol=1e-6)


def test_forward_hook_sees_every_call_and_can_be_removed():
    net, calls = small_net(), []
    handle = net.fc.register_forward_hook(lambda module, inputs, output: calls.append(output.shape))
    net(Tensor(np.ones((2, 3, 4, 4), dtype=np.float32)))
    handle.remove()
    net(Tensor(np.ones((2, 3, 4, 4), dtype=np.float32)))
    assert calls == [(2, 2)]
