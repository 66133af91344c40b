"""The GPU path's fused work (issue 18) equals the host's: BatchNorm + ReLU in few launches,
and the optimizers' multi-tensor steps.

Like tests/test_cuda_backend.py, the tests run where `import cupy` sees a device: on a real
GPU, and everywhere through test_the_fused_tests_pass_on_the_stand_in, which runs this file
again with tests/fake_gpu first on PYTHONPATH (the CUDA C then runs on the CPU through
tests/cuda_harness.py). Launches are counted on the stand-in only.
"""

import numpy as np
import pytest

import tinycnn
import tinycnn.nn as nn
from stand_in import STAND_IN, assert_passes_on_the_stand_in, cp, needs_device


stand_in_only = pytest.mark.skipif(not STAND_IN, reason="counts launches: only the stand-in can")


def test_the_fused_tests_pass_on_the_stand_in():
    assert_passes_on_the_stand_in(__file__, "-k", "not test_the_fused_tests_pass_on_the_stand_in")


def host(array):
    return cp.asnumpy(array) if cp is not None and isinstance(array, cp.ndarray) else np.array(array)


# ---------------------------------------------------------------------------------------------
# BatchNorm + ReLU

FUSED = {"bn_relu": nn.BatchNormReLU2d, "relu_bn": nn.ReLUBatchNorm2d, "bn": None}


def _batch_norm_step(kind, dtype, device):
    """A training forward and backward of BatchNorm2d (fused as `kind`) -> host copies of the
    output, the three gradients and the running statistics."""
    rng = np.random.default_rng(5)
    layer = nn.BatchNorm2d(3)
    layer = FUSED[kind](layer) if FUSED[kind] else layer
    layer.weight.data[...] = rng.standard_normal(3)
    layer.bias.data[...] = rng.standard_normal(3)
    layer = layer.to(dtype).to(device)
    x = tinycnn.Tensor((rng.standard_normal((4, 3, 5, 5)) + 0.3).astype(dtype)).to(device)
    x.requires_grad = True
    y = layer(x)
    gy = tinycnn.Tensor(rng.standard_normal(y.shape).astype(dtype)).to(device)
    (y * gy).sum().backward()
    return {"y": host(y.data), "gx": host(x.grad), "ggamma": host(layer.weight.grad), "gbeta": host(layer.bias.grad),
            "running_mean": host(layer.running_mean), "running_var": host(layer.running_var)}


@needs_device
@pytest.mark.parametrize("kind", FUSED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_batch_norm_relu_on_the_device_equals_the_host(kind, dtype):
    on_host, on_device = _batch_norm_step(kind, dtype, "cpu"), _batch_norm_step(kind, dtype, "cuda")
    # the device sums in double in another order than the host's Numba kernels: float64 results
    # agree to round-off; float32 ones to a few float32 roundings of values of order 1-10 (gx
    # cancels m * gy against two sums of m = 100 terms)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    for name, want in on_host.items():
        got = on_device[name]
        assert got.dtype == want.dtype, name
        np.testing.assert_allclose(got, want, rtol=0, atol=rtol * (np.abs(want).max() + 1), err_msg=name)


@stand_in_only
@pytest.mark.parametrize("kind", FUSED)
def test_a_fused_batch_norm_trains_in_five_launches(kind):
    from cupy import _launches
    layer = (FUSED[kind](nn.BatchNorm2d(3)) if FUSED[kind] else nn.BatchNorm2d(3)).to("cuda")
    x = tinycnn.Tensor(np.random.default_rng(0).standard_normal((4, 3, 5, 5)).astype(np.float32)).to("cuda")
    x.requires_grad = True
    y = layer(x)
    gy = tinycnn.Tensor(np.ones(y.shape, np.float32)).to("cuda")
    with _launches.counting() as forward:
        y = layer(x)
    with _launches.counting() as backward:
        y.backward(gy)
    # statistics, normalisation (with the ReLU) and running statistics; gradient sums, gx
    assert (forward["raw_kernels"], backward["raw_kernels"]) == (3, 2)
    assert forward["array_ops"] == 0
    assert backward["array_ops"] == 0      # x, weight and bias keep BatchNorm's new arrays as .grad (fresh_grads)


# ---------------------------------------------------------------------------------------------
# multi-tensor optimizer steps

OPTIMIZERS = {
    "sgd": lambda ps: tinycnn.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-2),
    "sgd-nesterov": lambda ps: tinycnn.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    "sgd-plain": lambda ps: tinycnn.optim.SGD(ps, lr=0.1, dampening=0.5),
    "adam-amsgrad": lambda ps: tinycnn.optim.Adam(ps, lr=0.01, weight_decay=1e-2, amsgrad=True),
    "adamw": lambda ps: tinycnn.optim.AdamW(ps, lr=0.01, weight_decay=0.1),
}


def _parameters(dtype):
    rng = np.random.default_rng(1)
    return [nn.Parameter(rng.standard_normal(shape).astype(dtype)) for shape in [(3, 2), (5,), (2, 2, 3)]]


def _steps(make, dtype, device, steps=3):
    """`steps` optimizer steps on fixed gradients -> (parameters, state_dict) on the host."""
    params = _parameters(dtype)
    for p in params:
        p.data = tinycnn.Tensor(p.data).to(device).data
    optimizer = make(params)
    rng = np.random.default_rng(2)
    for _ in range(steps):
        for p in params:
            p.grad = tinycnn.Tensor(rng.standard_normal(p.shape).astype(dtype)).to(device).data
        optimizer.step()
    return [host(p.data) for p in params], optimizer.state_dict(), optimizer


@needs_device
@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_multi_tensor_step_equals_the_per_parameter_loop(name, dtype):
    want, want_state, _ = _steps(OPTIMIZERS[name], dtype, "cpu")
    got, got_state, optimizer = _steps(OPTIMIZERS[name], dtype, "cuda")
    assert optimizer._flat_groups, "the device steps did not take the multi-tensor path"
    # the kernel does the loop's arithmetic in the loop's order: equal on the stand-in (no FMA in
    # its g++ build); a GPU may contract a multiply-add into one rounding: 4 ulps of the values
    ulps = 0 if STAND_IN else 4
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=ulps * np.finfo(dtype).eps, atol=0)
    assert got_state["param_groups"] == want_state["param_groups"]
    for index, state in want_state["state"].items():
        assert set(got_state["state"][index]) == set(state)
        for key, value in state.items():
            np.testing.assert_allclose(got_state["state"][index][key], value, rtol=ulps * np.finfo(dtype).eps,
                                       atol=0, err_msg=key)


@stand_in_only
@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_a_step_is_one_launch_per_group_and_dtype(name):
    from cupy import _launches
    _, _, optimizer = _steps(OPTIMIZERS[name], np.float32, "cuda", steps=1)
    with _launches.counting() as counted:
        optimizer.step()
    assert counted["raw_kernels"] == 1
    assert counted["array_ops"] == 1          # the gathering of the gradients into one buffer


@needs_device
def test_the_packing_follows_what_changes_the_parameters_and_their_state():
    """load_state_dict, a parameter assigned new data, and a parameter without a gradient
    (the per-parameter loop then runs) all give the host's results."""
    def run(device):
        params = _parameters(np.float64)
        for p in params:
            p.data = tinycnn.Tensor(p.data).to(device).data
        optimizer = tinycnn.optim.Adam(params, lr=0.01)
        rng = np.random.default_rng(4)

        def step(skip=None):
            for i, p in enumerate(params):
                p.grad = None if i == skip else tinycnn.Tensor(rng.standard_normal(p.shape)).to(device).data
            optimizer.step()
        step()
        optimizer.load_state_dict(optimizer.state_dict())
        step()
        params[1].data = params[1].data * 2
        step()
        step(skip=0)
        return [host(p.data) for p in params]

    for got, want in zip(run("cuda"), run("cpu")):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=0)


# ---------------------------------------------------------------------------------------------
# the loader's copies: pinned host memory, a copy stream of their own

@needs_device
@pytest.mark.parametrize("prefetch", [False, True])
def test_the_loader_copies_batches_from_pinned_memory_on_its_own_stream(monkeypatch, prefetch):
    import cupyx
    from tinycnn.data import DataLoader
    pinned, waits = [], []
    empty_pinned = cupyx.empty_pinned
    monkeypatch.setattr(cupyx, "empty_pinned", lambda *a, **k: pinned.append(a) or empty_pinned(*a, **k))
    wait_event = type(cp.cuda.get_current_stream()).wait_event
    monkeypatch.setattr(type(cp.cuda.get_current_stream()), "wait_event",
                        lambda self, event: waits.append(self) or wait_event(self, event))
    images, labels = np.random.default_rng(0).integers(0, 256, (10, 3, 4, 4)).astype(np.uint8), np.arange(10)
    on_host = list(DataLoader((images, labels), batch_size=4, seed=1, shuffle=True, prefetch=prefetch))
    on_device = list(DataLoader((images, labels), batch_size=4, seed=1, shuffle=True, device="cuda", prefetch=prefetch))
    assert len(on_device) == 3 and len(pinned) == 6          # images and labels of each batch
    assert len(waits) >= 3                                    # the compute stream waited, on the device
    for (x, y), (dx, dy) in zip(on_host, on_device):
        assert isinstance(dx, cp.ndarray) and isinstance(dy, cp.ndarray)
        np.testing.assert_array_equal(cp.asnumpy(dx), x)
        np.testing.assert_array_equal(cp.asnumpy(dy), y)
