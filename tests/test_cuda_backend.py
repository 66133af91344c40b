"""tinycnn's CUDA backend end to end: devices, moves, kernels, training steps equal to the CPU's.

The tests marked ``gpu`` need `import cupy` to give a CuPy that sees a CUDA device. They run
1. on the stand-in, everywhere: test_the_gpu_tests_pass_on_the_stand_in runs this file again
   in a subprocess whose PYTHONPATH starts with tests/fake_gpu, so `import cupy` inside tinycnn
   gets the NumPy stand-in (tests/fake_gpu/cupy) and the CUDA C kernels run on the CPU through
   tests/cuda_harness.py. The engine's code is the one a GPU user runs, unchanged;
2. on a real GPU, in the normal session, when there is one (skipped otherwise).
Every device step runs under ``cupyx.allow_synchronize(False)``, so a hidden host sync in the
engine (``float(loss)``, ``.item()``, ``.get()``, a NumPy call on a device array) fails it.
"""
import contextlib
import importlib
import math
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import tinycnn
import tinycnn.functions as F
import tinycnn.nn as nn
from tinycnn import kernels
from tinycnn.kernels import cuda as kcuda
from stand_in import STAND_IN, cp, needs_device

TESTS = Path(__file__).resolve().parent
REPOSITORY = TESTS.parent
FAKE_GPU = TESTS / "fake_gpu"


# Tests that would only repeat themselves (or recurse) in the stand-in subprocess
NOT_IN_THE_STAND_IN_RUN = ("test_the_gpu_tests_pass_on_the_stand_in", "test_without_cupy", "test_real_gpu")


@contextlib.contextmanager
def no_host_sync(device):
    """On "cuda", make every host synchronisation raise cupyx.DeviceSynchronized."""
    if device == "cpu":
        yield
        return
    import cupyx
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)    # CuPy deprecates the detector (it stays)
        with cupyx.allow_synchronize(False):
            yield


def host(array):
    """A NumPy copy of a host or device array (a copy: the optimizer updates arrays in place)."""
    return cp.asnumpy(array) if cp is not None and isinstance(array, cp.ndarray) else np.array(array)


def assert_close(got, want, what, rtol=1e-9):
    """Within rtol of the array's largest magnitude, plus rtol / 100. float64 results of the two
    devices sum in other orders (BatchNorm statistics are CuPy reductions on the device, float64
    accumulators in the Numba kernels; convolutions multiply im2col columns on the device, im2row
    rows or Winograd planes on the host) and differ in the last bits; 1e-9 leaves room for that
    growing through the BatchNorms of a small batch, and the gradient of a conv bias before a
    BatchNorm is 0 in exact arithmetic, round-off in practice. float32 training results are
    judged by `assert_as_accurate` instead."""
    got, want = host(got), host(want)
    assert got.shape == want.shape and got.dtype == want.dtype, what
    tolerance = rtol * (float(np.max(np.abs(want), initial=0.0)) + 1e-2)
    np.testing.assert_allclose(got, want, rtol=0, atol=tolerance, err_msg=what)


# ---------------------------------------------------------------------------------------------
# the stand-in run, and what holds without a device

def test_the_gpu_tests_pass_on_the_stand_in():
    if STAND_IN:
        pytest.skip("this is the stand-in run")
    path = os.pathsep.join(filter(None, [str(FAKE_GPU), os.environ.get("PYTHONPATH")]))
    deselect = " and ".join(f"not {name}" for name in NOT_IN_THE_STAND_IN_RUN)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider", "-k", deselect],
        capture_output=True, text=True, cwd=REPOSITORY, env={**os.environ, "PYTHONPATH": path})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    # every selected test passed: nothing failed and nothing was skipped for want of a device
    assert re.search(r"^\d+ passed, \d+ deselected in ", output, re.MULTILINE), output[-3000:]


def test_without_cupy_there_is_no_gpu_and_moving_there_says_why():
    script = ("import sys; sys.modules['cupy'] = None\n"
              "import numpy as np, tinycnn\n"
              "print(tinycnn.cuda.is_available(), tinycnn.cuda.device_count(), tinycnn.kernels.available())\n"
              "try:\n"
              "    tinycnn.Tensor(np.zeros(2)).to('cuda')\n"
              "except RuntimeError as error:\n"
              "    print('RuntimeError:', error)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "False 0 ['reference', 'cpu']"
    assert lines[1].startswith("RuntimeError: to_device: 'cuda' needs CuPy")


@pytest.mark.parametrize("implementation", ["reference", "cpu"])
def test_elementwise_dispatch_on_the_host_equals_numpy(implementation):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 3, 2)).astype(np.float32)
    mask = rng.random(x.shape) >= 0.4
    with kernels.use(implementation):
        np.testing.assert_array_equal(kernels.dropout_apply(x, mask, 1 / 0.6), x * mask * np.float32(1 / 0.6))


@pytest.mark.parametrize("call, error, message", [
    (lambda x, m, b: kernels.dropout_apply(x, m.astype(np.float32), 2.0), TypeError,
     "dropout_apply: mask must be a bool array, got float32"),
    (lambda x, m, b: kernels.dropout_apply(x, m[:1], 2.0), ValueError,
     r"dropout_apply: mask must have shape \(2, 4, 3\), got \(1, 4, 3\)"),
    (lambda x, m, b: kernels.dropout_apply(x, m, -1.0), ValueError, "dropout_apply: scale must be >= 0"),
    (lambda x, m, b: kernels.dropout_apply(x.astype(np.int32), m, 2.0), TypeError,
     "dropout_apply: x must be float32 or float64, got int32"),
])
def test_elementwise_dispatch_rejects_bad_arguments(call, error, message):
    x, mask, bias = np.ones((2, 4, 3)), np.ones((2, 4, 3), bool), np.ones(4)
    with pytest.raises(error, match=message):
        call(x, mask, bias)


# ---------------------------------------------------------------------------------------------
# devices

@pytest.mark.gpu
@needs_device
def test_a_device_is_available_and_kernels_can_use_it():
    assert tinycnn.cuda.is_available() and tinycnn.cuda.device_count() >= 1
    assert "cuda" in kernels.available()


@pytest.mark.gpu
@needs_device
def test_a_cupy_that_sees_no_device_means_no_gpu(monkeypatch):
    def no_device():
        raise cp.cuda.runtime.CUDARuntimeError(100)      # cudaErrorNoDevice

    monkeypatch.setattr(cp.cuda.runtime, "getDeviceCount", no_device)
    assert not tinycnn.cuda.is_available() and tinycnn.cuda.device_count() == 0
    assert "cuda" not in kernels.available()


@pytest.mark.gpu
@needs_device
def test_device_arrays_refuse_implicit_conversion_and_mixing_with_host_arrays():
    device_array = cp.asarray(np.arange(3.0))
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        np.asarray(device_array)
    with pytest.raises(TypeError):
        device_array + np.ones(3)
    np.testing.assert_array_equal(host(device_array * 2), [0.0, 2.0, 4.0])


@pytest.mark.gpu
@needs_device
def test_the_sync_detector_catches_reading_a_value_on_the_host():
    loss = tinycnn.Tensor(np.float32(2.5)).to("cuda")
    import cupyx
    for read in (lambda: float(loss.data), lambda: loss.item(), lambda: loss.numpy(), lambda: loss.data.get(),
                 lambda: cp.cuda.Device().synchronize()):
        with pytest.raises(cupyx.DeviceSynchronized):
            with no_host_sync("cuda"):
                read()
    assert loss.item() == 2.5                     # allowed outside the block


@pytest.mark.gpu
@needs_device
def test_tensor_round_trip_carries_gradients_across_the_move():
    values = np.array([1.0, -2.0, 3.0], np.float32)
    x = tinycnn.Tensor(values, requires_grad=True)
    on_device = x.to("cuda")
    assert on_device.device == "cuda" and isinstance(on_device.data, cp.ndarray)
    back = (on_device * on_device).to("cpu")              # computed on the device, read on the host
    assert back.device == "cpu" and isinstance(back.data, np.ndarray)
    back.sum().backward()
    assert isinstance(x.grad, np.ndarray)
    np.testing.assert_array_equal(x.grad, 2 * values)
    np.testing.assert_array_equal(on_device.to("cpu").numpy(), values)

    leaf = tinycnn.Tensor(values).to("cuda").requires_grad_()    # a device leaf used on the host
    (leaf.to("cpu") * 3.0).sum().backward()
    assert isinstance(leaf.grad, cp.ndarray)
    np.testing.assert_array_equal(host(leaf.grad), np.full(3, 3.0, np.float32))


@pytest.mark.gpu
@needs_device
def test_module_to_moves_parameters_gradients_and_buffers_both_ways():
    model = SmallNet()
    for p in model.parameters():
        p.grad = np.ones_like(p.data)
    state = {name: array.copy() for name, array in model.state_dict().items()}
    assert model.to("cuda") is model and model.device == "cuda"
    for name, array in model.state_dict().items():             # parameters and BatchNorm buffers
        assert isinstance(array, cp.ndarray), name
        np.testing.assert_array_equal(host(array), state[name])
    assert {name for name, _ in model.named_buffers()} == {"bn.running_mean", "bn.running_var"}
    assert all(isinstance(p.grad, cp.ndarray) for p in model.parameters())
    model.to("cpu")
    for name, array in model.state_dict().items():
        assert isinstance(array, np.ndarray), name
        np.testing.assert_array_equal(array, state[name])


@pytest.mark.gpu
@needs_device
@pytest.mark.parametrize("make_optimizer", [
    lambda params: tinycnn.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2),
    lambda params: tinycnn.optim.Adam(params, lr=0.01, amsgrad=True),
], ids=["sgd-momentum", "adam"])
def test_optimizer_state_follows_its_parameters_to_the_device(make_optimizer):
    """Two steps on the host, against one on the host then one after model.to("cuda")."""
    rng = np.random.default_rng(0)
    build = lambda: nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Linear(4, 3))
    grads = [[rng.standard_normal(p.shape).astype(np.float32) for p in build().parameters()]
             for _ in range(2)]

    def two_steps(move_after_first_step):
        tinycnn.manual_seed(0)
        model = build()
        optimizer = make_optimizer(list(model.parameters()))
        for step, step_grads in enumerate(grads):
            if step == 1 and move_after_first_step:
                model.to("cuda")
            for p, g in zip(model.parameters(), step_grads):
                p.grad = tinycnn.Tensor(g).to(model.device).data
            with no_host_sync(model.device):
                optimizer.step()
        return model, optimizer

    expected, _ = two_steps(move_after_first_step=False)
    moved, optimizer = two_steps(move_after_first_step=True)
    buffers = [value for state in optimizer.state.values() for value in state.values() if hasattr(value, "shape")]
    assert buffers and all(isinstance(b, cp.ndarray) for b in buffers)
    for (name, want), got in zip(expected.named_parameters(), moved.parameters()):
        assert_close(got.data, want.data, name, rtol=1e-6)


@pytest.mark.gpu
@needs_device
def test_an_op_with_inputs_on_two_devices_is_a_runtime_error():
    on_host, on_device = tinycnn.Tensor(np.ones(3)), tinycnn.Tensor(np.ones(3)).to("cuda")
    with pytest.raises(RuntimeError, match=r"Add: inputs live on different devices \(cpu, cuda\); move them"):
        on_host + on_device
    with pytest.raises(RuntimeError, match=r"Conv2d: inputs live on different devices \(cuda, cpu"):
        nn.Conv2d(3, 4, 3)(tinycnn.Tensor(np.ones((1, 3, 5, 5), np.float32)).to("cuda"))


@pytest.mark.gpu
@needs_device
def test_elementwise_dispatch_runs_the_cuda_kernels_on_device_arrays():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 6, 2, 5)).astype(np.float32)
    mask = rng.random(x.shape) >= 0.3
    cases = [("dropout_apply", (x, mask, 1 / 0.7))]
    for name, args in cases:
        on_device = [cp.asarray(a) if isinstance(a, np.ndarray) else a for a in args]
        got = getattr(kernels, name)(*on_device)
        assert isinstance(got, cp.ndarray), name
        np.testing.assert_array_equal(host(got), getattr(kernels.reference, name)(*args), err_msg=name)


# ---------------------------------------------------------------------------------------------
# training steps: the device equals the host

class SmallNet(nn.Module):
    """One of every layer kind the CUDA kernels serve: conv 3x3 pad 1, 1x1, grouped, depthwise,
    stride-2 valid; BatchNorm, ReLU, LRN, max and average pooling, dropout, concat, linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.lrn = nn.LocalResponseNorm(3, alpha=0.5, k=1.0)       # strong enough to see its window
        self.pointwise = nn.Conv2d(8, 8, 1)
        self.grouped = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.depthwise = nn.Conv2d(8, 16, 3, padding=1, groups=8)
        self.down = nn.Conv2d(16, 8, 3, stride=2)
        self.maxpool = nn.MaxPool2d(3, 2)
        self.avgpool = nn.AvgPool2d(2)
        self.dropout = nn.Dropout(0.3)
        self.fc = nn.Linear(24 * 2 * 2, 10)

    def forward(self, x):                                    # x (N, 3, 9, 9)
        x = self.lrn(F.relu(self.bn(self.conv(x))))
        x = self.depthwise(F.relu(self.pointwise(x)) + self.grouped(x))               # (N, 16, 9, 9)
        x = self.avgpool(F.concat([self.down(x), self.maxpool(x)], axis=1))            # (N, 24, 2, 2)
        return self.fc(self.dropout(x).flatten(1))


SMALL_NET_KERNELS = {f"{name}_f32" for name in (
    "im2col", "im2col_by_channel", "col2im_by_channel", "channel_rows_and_sums", "batch_norm_statistics",
    "batch_norm_relu_normalize", "batch_norm_update_running", "batch_norm_backward_sums", "batch_norm_relu_backward",
    "lrn_forward", "lrn_backward",
    "depthwise_conv2d_forward", "depthwise_conv2d_backward_input", "depthwise_conv2d_backward_weight",
    "max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
    "dropout_apply", "sgd_step")}


class _HostStream:
    """Random numbers drawn on the host from one NumPy stream, then put on the array's device."""

    def __init__(self, rng, xp):
        self.rng, self.xp = rng, xp

    def random(self, shape):
        return self.xp.asarray(self.rng.random(shape))


@pytest.fixture
def same_dropout_masks(monkeypatch):
    """Make dropout draw its masks from a NumPy stream reseeded by ``reseed()``: a CPU run and a
    CUDA run then drop the same units (CuPy's own generator draws other numbers than NumPy's)."""
    stream = {}
    dropout_module = importlib.import_module("tinycnn.functions.dropout")
    monkeypatch.setattr(dropout_module, "get_rng", lambda xp: _HostStream(stream["rng"], xp))
    return lambda: stream.update(rng=np.random.default_rng(7))


def train(build, images, labels, device, steps, reseed_dropout=lambda: None):
    """Build a seeded model on the host in the dtype of `images`, move it and the batch to
    `device`, take `steps` steps of SGD with momentum (no host sync allowed on the device)
    -> host copies of the losses, the last gradients, the parameter updates and the final state."""
    tinycnn.manual_seed(0)
    model = build().to(images.dtype).to(device)
    start = {name: host(p.data) for name, p in model.named_parameters()}
    optimizer = tinycnn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images, labels = tinycnn.Tensor(images).to(device), tinycnn.Tensor(labels).to(device)
    reseed_dropout()
    losses = []
    for _ in range(steps):
        with no_host_sync(device):
            optimizer.zero_grad()
            loss = F.softmax_cross_entropy(model(images), labels.data)
            loss.backward()
            optimizer.step()
        losses.append(loss.item())
    return dict(losses=np.array(losses, images.dtype),
                grads={name: host(p.grad) for name, p in model.named_parameters()},
                updates={name: host(p.data) - start[name] for name, p in model.named_parameters()},
                state={name: host(array) for name, array in model.state_dict().items()})


def assert_same_training(on_device, on_host, exact=None):
    """Every loss, gradient, update and state entry: in float64 the device equals the host within
    `assert_close`'s 1e-9; in float32 it is as accurate as the host, judged against `exact` (the
    same steps in float64 on the host) by `assert_as_accurate`."""
    device, on_cpu = _entries(on_device), _entries(on_host)
    exact = _entries(exact) if exact is not None else None
    assert device.keys() == on_cpu.keys()
    for what in on_cpu:
        if exact is None:
            assert_close(device[what], on_cpu[what], what)
        else:
            assert_as_accurate(device[what], on_cpu[what], exact[what], what)


def assert_as_accurate(got, want, exact, what):
    """`got` is at most 4 times as far from `exact` as `want` is, plus 16 float32 ulps of the
    largest value. A fixed float32 tolerance fails somewhere: the host's round-off depends on
    which GEMM kernel OpenBLAS picks (with OPENBLAS_CORETYPE=Haswell, MiniVGG's fc1 bias gradient
    left a bound of 3e-4 of its largest entry by 1.2x), so the bound is the host's own error,
    measured; 4 covers two float32 results each about that far from the exact one, in other
    directions. Integer entries (counters) are equal."""
    got, want, exact = host(got), host(want), host(exact)
    assert got.shape == want.shape and got.dtype == want.dtype, what
    if want.dtype.kind != "f":
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    exact = exact.astype(np.float64)
    host_error = float(np.max(np.abs(want - exact), initial=0.0))
    device_error = float(np.max(np.abs(got - exact), initial=0.0))
    largest = float(np.max(np.abs(exact), initial=0.0))
    allowed = 4 * host_error + 16 * float(np.finfo(want.dtype).eps) * largest
    assert device_error <= allowed, (f"{what}: the device is {device_error:.3g} from the float64 "
                                     f"result, the host {host_error:.3g} (largest value {largest:.3g})")


def _entries(result):
    """A training result as one flat dict: "losses", "grads: conv.weight", ..."""
    entries = {"losses": result["losses"]}
    for part in ("grads", "updates", "state"):
        entries.update({f"{part}: {name}": array for name, array in result[part].items()})
    return entries


def batch(size, height):
    rng = np.random.default_rng(size)
    return rng.standard_normal((size, 3, height, height)).astype(np.float32), rng.integers(0, 10, size)


@pytest.mark.gpu
@needs_device
def test_small_net_trains_on_the_device_as_on_the_host_through_the_cuda_kernels(monkeypatch, same_dropout_masks):
    images, labels = batch(4, 9)
    on_host = train(SmallNet, images, labels, "cpu", steps=2, reseed_dropout=same_dropout_masks)
    launched = set()
    get_kernel = kcuda._get_kernel

    def recording_get_kernel(name):          # kernels.cuda looks up its kernel at every launch
        launched.add(name)
        return get_kernel(name)

    monkeypatch.setattr(kcuda, "_get_kernel", recording_get_kernel)
    on_device = train(SmallNet, images, labels, "cuda", steps=2, reseed_dropout=same_dropout_masks)
    assert launched == SMALL_NET_KERNELS
    exact = train(SmallNet, images.astype(np.float64), labels, "cpu", steps=2, reseed_dropout=same_dropout_masks)
    assert_same_training(on_device, on_host, exact)
    assert on_host["losses"][1] != on_host["losses"][0]          # the first step changed the model


@pytest.mark.gpu
@needs_device
@pytest.mark.parametrize("model_name, size, dtype", [
    ("minivgg", 8, np.float32), ("minivgg", 8, np.float64), ("minigooglenet", 2, np.float64)])
def test_zoo_model_training_step_on_the_device_equals_the_host(model_name, size, dtype, same_dropout_masks):
    """float32 is judged against a float64 run (a ReLU input within round-off of 0 may flip sign
    between the devices and move one gradient element by a whole term: MiniGoogLeNet at batch 4
    has one, so it runs in float64 only). float64 agrees to 1e-9, both zoo models."""
    from tinycnn import models
    images, labels = batch(size, 32)
    build = lambda: models.get(model_name, num_classes=10)
    on_host = train(build, images.astype(dtype), labels, "cpu", steps=1, reseed_dropout=same_dropout_masks)
    on_device = train(build, images.astype(dtype), labels, "cuda", steps=1, reseed_dropout=same_dropout_masks)
    exact = (None if dtype == np.float64 else
             train(build, images.astype(np.float64), labels, "cpu", steps=1, reseed_dropout=same_dropout_masks))
    assert_same_training(on_device, on_host, exact)


@pytest.mark.gpu
@pytest.mark.skipif(not STAND_IN, reason="counts transfers: only the stand-in can")
@pytest.mark.parametrize("model_name, steps", [("small_net", 2), ("minigooglenet", 1)])
def test_training_steps_copy_nothing_between_host_and_device(model_name, steps):
    """Dropout draws on the device here (cupy.random), as in a real run; the second step of
    the small net takes SGD's momentum path."""
    from cupy import _transfer
    from tinycnn import models
    build, images, labels = ((SmallNet, *batch(4, 9)) if model_name == "small_net" else
                             (lambda: models.get(model_name, num_classes=10), *batch(2, 32)))
    tinycnn.manual_seed(0)
    model = build().to("cuda")
    optimizer = tinycnn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images, labels = tinycnn.Tensor(images).to("cuda"), tinycnn.Tensor(labels).to("cuda")
    before = dict(_transfer.counts)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.softmax_cross_entropy(model(images), labels.data)
        loss.backward()
        optimizer.step()
    assert _transfer.counts == before
    assert math.isfinite(loss.item())


@pytest.mark.gpu
@needs_device
def test_bench_train_step_moves_the_model_and_waits_for_the_device(monkeypatch):
    monkeypatch.syspath_prepend(str(REPOSITORY))
    from bench import train_step
    synced = []
    sync = train_step._sync

    def recording_sync(result, device):
        synced.append(device)
        return sync(result, device)

    monkeypatch.setattr(train_step, "_sync", recording_sync)
    seconds, _ = train_step.run_tinycnn("minivgg", batch=2, steps=2, warmup=1, device="cuda", train=True)
    assert seconds > 0 and synced == ["cuda"] * 3


# ---------------------------------------------------------------------------------------------
# a real GPU only

@pytest.mark.gpu
@pytest.mark.skipif(cp is None or STAND_IN, reason="needs a real CUDA device")
def test_real_gpu_minivgg_throughput_smoke():
    """MiniVGG at batch 128 on the GPU: the loss falls on a repeated batch; prints images/s."""
    import time
    from tinycnn import models
    images, labels = batch(128, 32)
    tinycnn.manual_seed(0)
    model = models.get("minivgg", num_classes=10).to("cuda")
    optimizer = tinycnn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images, labels = tinycnn.Tensor(images).to("cuda"), tinycnn.Tensor(labels).to("cuda")
    losses, seconds = [], []
    for _ in range(12):
        start = time.perf_counter()
        optimizer.zero_grad()
        loss = F.softmax_cross_entropy(model(images), labels.data)
        loss.backward()
        optimizer.step()
        cp.cuda.Device().synchronize()
        seconds.append(time.perf_counter() - start)
        losses.append(loss.item())
    print(f"MiniVGG train step, batch 128: {128 / np.median(seconds[2:]):.0f} images/s on the GPU")
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]


@pytest.mark.gpu
@needs_device
def test_fit_and_metrics_run_on_device_arrays():
    """A CuPy array's ``.data`` is its memory pointer: the loop and metrics must not unwrap it."""
    import cupy
    import tinycnn.models
    from tinycnn.data import DataLoader
    from tinycnn.train import fit, rank_k_accuracy
    model = tinycnn.models.get("minivgg", num_classes=10).to("cuda")
    images, labels = np.zeros((8, 3, 32, 32), np.uint8), np.arange(8) % 10
    loader = DataLoader((images, labels), batch_size=8, device="cuda", prefetch=False)
    history = fit(model, loader, optimizer=tinycnn.optim.SGD(model.parameters(), lr=0.01), epochs=1, verbose=0)
    assert np.isfinite(history["loss"][0])
    assert rank_k_accuracy(cupy.asarray(np.eye(3)), cupy.asarray(np.arange(3)), k=(1,)) == (1.0,)
