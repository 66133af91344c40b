"""Mixed precision (tinycnn.amp) and tinycnn.cuda.allow_tf32.

On the CPU autocast must change nothing, bit for bit. The tests marked ``gpu`` need a CUDA
device; test_amp_tests_pass_on_the_stand_in runs them in a subprocess on the NumPy stand-in
(tests/fake_gpu, as tests/test_cuda_backend.py explains), where float16 arrays are NumPy's
float16, a float16 GEMM accumulates in float32 and rounds once (as cuBLAS's gemmEx with
CUBLAS_COMPUTE_32F does), and the float16 CUDA kernels run through the g++ harness.
"""
import threading
import warnings

import numpy as np
import pytest

import tinycnn
import tinycnn.functions as F
import tinycnn.nn as nn
from tinycnn import amp, models
from stand_in import STAND_IN, assert_passes_on_the_stand_in, cp, needs_device


def host(array):
    return cp.asnumpy(array) if cp is not None and not isinstance(array, np.ndarray) else np.array(array)


def batch(size, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((size, 3, 32, 32)).astype(np.float32), rng.integers(0, 10, size)


def small_net():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 8, 1), nn.ReLU(), nn.AvgPool2d(2), nn.Dropout(0.3), nn.Flatten(),
                         nn.Linear(8 * 8 * 8, 10))


def train(build, images, labels, device, steps=1, use_amp=False, scaler=None, lr=0.01):
    """Seeded model and SGD with momentum on `device`; `steps` steps, under autocast and
    `scaler` if asked -> (model, optimizer, [loss arrays], last grads as host arrays)."""
    tinycnn.manual_seed(0)
    model = build().to(device)
    optimizer = tinycnn.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    images, labels = tinycnn.Tensor(images).to(device), tinycnn.Tensor(labels).to(device)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        with amp.autocast(use_amp):
            loss = F.softmax_cross_entropy(model(images), labels.data)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        losses.append(loss.data)
    grads = {name: host(p.grad) for name, p in model.named_parameters()}
    return model, optimizer, losses, grads


def parameters(model):
    return {name: host(p.data) for name, p in model.named_parameters()}


# ---------------------------------------------------------------------------------------------
# the CPU: autocast is a no-op, the scaler a pass-through

def test_autocast_on_the_cpu_changes_nothing_bit_for_bit():
    images, labels = batch(4)
    plain, _, plain_losses, plain_grads = train(small_net, images, labels, "cpu", steps=2)
    mixed, _, mixed_losses, mixed_grads = train(small_net, images, labels, "cpu", steps=2, use_amp=True,
                                                scaler=amp.GradScaler())
    assert [float(v) for v in mixed_losses] == [float(v) for v in plain_losses]
    for name, value in parameters(plain).items():
        np.testing.assert_array_equal(parameters(mixed)[name], value, err_msg=name)
        np.testing.assert_array_equal(mixed_grads[name], plain_grads[name], err_msg=name)
        assert mixed_grads[name].dtype == np.float32


def test_autocast_is_per_thread_and_restores_the_previous_mode():
    seen = []
    with amp.autocast():
        worker = threading.Thread(target=lambda: seen.append(amp.is_autocast_enabled()))
        worker.start()
        worker.join()
        with amp.autocast(False):
            assert not amp.is_autocast_enabled()
        assert amp.is_autocast_enabled()
    assert seen == [False] and not amp.is_autocast_enabled()


@pytest.mark.parametrize("arguments, message", [
    (dict(init_scale=0.0), "init_scale must be > 0"),
    (dict(growth_factor=1.0), "growth_factor must be > 1"),
    (dict(backoff_factor=1.0), r"backoff_factor must be in \(0, 1\)"),
    (dict(growth_interval=0), "growth_interval must be a positive int"),
])
def test_grad_scaler_refuses_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=f"GradScaler: {message}"):
        amp.GradScaler(**arguments)


def test_allow_tf32_is_a_checked_process_wide_switch():
    previous = tinycnn.cuda.allow_tf32
    try:
        tinycnn.cuda.allow_tf32 = True
        assert tinycnn.cuda.allow_tf32 is True
        with pytest.raises(TypeError, match="allow_tf32 must be True or False, got 1"):
            tinycnn.cuda.allow_tf32 = 1
        assert tinycnn.cuda.allow_tf32 is True
    finally:
        tinycnn.cuda.allow_tf32 = previous


# ---------------------------------------------------------------------------------------------
# the device: float16 GEMMs, float32 elsewhere, the scaler's paths

def test_amp_tests_pass_on_the_stand_in():
    assert_passes_on_the_stand_in(__file__, "-m", "gpu")


class DtypesSeen(tinycnn.FunctionHook):
    """The dtypes of the inputs of every Function of a forward pass, by Function name."""

    def __init__(self):
        self.seen = {}

    def forward_postprocess(self, function, inputs, outputs):
        self.seen.setdefault(type(function).__name__, set()).update(str(t.dtype) for t in inputs)


HALF_ULP = 2.0**-11          # the unit round-off of float16


@pytest.mark.gpu
@needs_device
@pytest.mark.parametrize("model_name, size", [("minivgg", 8), ("minigooglenet", 2)])
def test_a_mixed_precision_step_matches_float32_within_float16_error(model_name, size):
    """The loss and gradients of one AMP step (autocast + GradScaler) against the float64 step
    (exact, for this purpose).

    Bound: the loss, a float32 sum of float16 GEMM results, within 16 float16 round-offs. The
    gradients at these small batches are badly conditioned: BatchNorm over 8 (MiniVGG's
    BatchNorm1d) or 98 values cancels almost all of each gradient sum, so the float16 rounding
    of the activation gradients (relative 2**-11) comes out amplified. Each AMP gradient tensor
    is within 2**-1 of its norm (measured: up to 0.36 for MiniVGG's fc1 bias, 0.17 in
    MiniGoogLeNet; PyTorch's own float16 autocast on the CPU gives 0.03 to 0.07 on the same
    MiniVGG batch) and the mean over the tensors within 2**-2. Gradients left scaled, lost
    or cast wrong are off by factors."""
    images, labels = batch(size)
    build = lambda: models.get(model_name, num_classes=10)
    _, _, exact_losses, exact = train(lambda: build().to(np.float64), images.astype(np.float64), labels, "cuda")
    with DtypesSeen() as dtypes:
        # 2**12, not the default 2**16: at 2**16 the first step overflows (and is skipped, as in PyTorch)
        _, _, mixed_losses, mixed = train(build, images, labels, "cuda", use_amp=True,
                                          scaler=amp.GradScaler(init_scale=2.0**12))
    conv = {name: kinds for name, kinds in dtypes.seen.items() if name.startswith("Conv2d")}
    assert conv and all(kinds == {"float16"} for kinds in conv.values()), dtypes.seen
    assert dtypes.seen["Linear"] == {"float16"} and dtypes.seen["BatchNorm"] == {"float32"}
    assert dtypes.seen["SoftmaxCrossEntropy"] == {"float32"}
    loss, want = float(host(mixed_losses[0])), float(host(exact_losses[0]))
    assert abs(loss - want) <= 16 * HALF_ULP * abs(want), (loss, want)
    errors = {}
    largest = max(np.linalg.norm(g) for g in exact.values())
    for name, exact_grad in exact.items():
        assert mixed[name].dtype == np.float32, name     # float32 master weights get float32 gradients
        norm = np.linalg.norm(exact_grad)
        if norm < 1e-9 * largest:    # a convolution's bias before a BatchNorm: 0 but for round-off
            continue
        errors[name] = np.linalg.norm(mixed[name] - exact_grad) / norm
    assert max(errors.values()) <= 2.0**-1 and np.mean(list(errors.values())) <= 2.0**-2, errors


def _no_host_sync():
    import cupyx
    warnings.simplefilter("ignore", UserWarning)     # CuPy deprecates the detector (it stays)
    return cupyx.allow_synchronize(False)


def scaled_step(model, optimizer, scaler, images, labels):
    optimizer.zero_grad()
    with amp.autocast():
        loss = F.softmax_cross_entropy(model(images), labels.data)
    scaler.scale(loss).backward()
    with _no_host_sync():                    # the inf check, the skip and the new scale: no host sync
        scaler.step(optimizer)
        scaler.update()


def setup(seed=0):
    tinycnn.manual_seed(seed)
    model = small_net().to("cuda")
    optimizer = tinycnn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    images, labels = batch(4, seed)
    return model, optimizer, tinycnn.Tensor(images).to("cuda"), tinycnn.Tensor(labels).to("cuda")


def state(model, optimizer):
    buffers = {f"momentum {i}": host(s["momentum_buffer"]) for i, s in enumerate(optimizer.state.values())
               if "momentum_buffer" in s}
    return {**parameters(model), **buffers}


@pytest.mark.gpu
@needs_device
def test_an_overflowing_step_is_skipped_and_halves_the_scale():
    model, optimizer, images, labels = setup()
    scaler = amp.GradScaler(init_scale=2.0**10)
    scaled_step(model, optimizer, scaler, images, labels)            # a clean step: momentum buffers exist
    assert scaler.get_scale() == 2.0**10
    before = state(model, optimizer)
    scaler.load_state_dict({**scaler.state_dict(), "scale": 2.0**40})   # 2**40 overflows float16 gradients
    scaled_step(model, optimizer, scaler, images, labels)
    assert scaler.get_scale() == 2.0**39
    after = state(model, optimizer)
    assert after.keys() == before.keys() and len(after) == 2 * len(parameters(model))
    for name, value in before.items():
        np.testing.assert_array_equal(after[name], value, err_msg=name)


@pytest.mark.gpu
@needs_device
def test_a_skipped_first_step_leaves_the_optimizer_as_if_it_never_ran():
    """The momentum buffers a skipped step creates are zero: the next step equals a first step."""
    model, optimizer, images, labels = setup()
    scaled_step(model, optimizer, amp.GradScaler(init_scale=2.0**40), images, labels)
    tinycnn.manual_seed(1)                   # the same dropout masks in both clean steps
    scaled_step(model, optimizer, amp.GradScaler(init_scale=2.0**10), images, labels)
    fresh, fresh_optimizer, images, labels = setup()
    tinycnn.manual_seed(1)
    scaled_step(fresh, fresh_optimizer, amp.GradScaler(init_scale=2.0**10), images, labels)
    want = state(fresh, fresh_optimizer)
    for name, value in state(model, optimizer).items():
        np.testing.assert_array_equal(value, want[name], err_msg=name)


@pytest.mark.gpu
@needs_device
def test_the_scale_doubles_after_growth_interval_clean_steps_and_the_count_restarts_after_a_skip():
    model, optimizer, images, labels = setup()
    scaler = amp.GradScaler(init_scale=2.0**8, growth_interval=3)
    scales = []
    for _ in range(4):
        scaled_step(model, optimizer, scaler, images, labels)
        scales.append(scaler.get_scale())
    assert scales == [2.0**8, 2.0**8, 2.0**9, 2.0**9]
    assert scaler.state_dict()["_growth_tracker"] == 1
    scaler.load_state_dict({**scaler.state_dict(), "scale": 2.0**40})
    scaled_step(model, optimizer, scaler, images, labels)
    assert scaler.get_scale() == 2.0**39 and scaler.state_dict()["_growth_tracker"] == 0


@pytest.mark.gpu
@needs_device
def test_the_default_scaler_follows_pytorch():
    scaler = amp.GradScaler()
    assert scaler.state_dict() == {"scale": 2.0**16, "growth_factor": 2.0, "backoff_factor": 0.5,
                                   "growth_interval": 2000, "_growth_tracker": 0}


@pytest.mark.gpu
@needs_device
def test_grad_scaler_state_dict_round_trip_continues_the_same_run():
    model, optimizer, images, labels = setup()
    scaler = amp.GradScaler(init_scale=2.0**12, growth_interval=2)
    scaled_step(model, optimizer, scaler, images, labels)
    saved = scaler.state_dict()
    assert saved == {"scale": 2.0**12, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2,
                     "_growth_tracker": 1}
    restored = amp.GradScaler()
    restored.load_state_dict(saved)
    assert restored.state_dict() == saved
    scaled_step(model, optimizer, scaler, images, labels)     # the next clean step reaches growth_interval in both
    scaled_step(model, optimizer, restored, images, labels)
    assert scaler.state_dict() == restored.state_dict() == {**saved, "scale": 2.0**13, "_growth_tracker": 0}
    with pytest.raises(KeyError, match=r"GradScaler.load_state_dict: missing \['scale'\]"):
        amp.GradScaler().load_state_dict({k: v for k, v in saved.items() if k != "scale"})


@pytest.mark.gpu
@pytest.mark.skipif(not STAND_IN, reason="reads the stand-in's record of CuPy's compute type")
def test_allow_tf32_sets_cupys_float32_compute_type():
    from cupy._core import _routines_linalg as linalg
    previous = tinycnn.cuda.allow_tf32
    try:
        tinycnn.cuda.allow_tf32 = True
        assert linalg.get_compute_type(np.float32) == linalg.COMPUTE_TYPE_TF32
        tinycnn.cuda.allow_tf32 = False
        assert linalg.get_compute_type(np.float32) == linalg.COMPUTE_TYPE_DEFAULT
    finally:
        tinycnn.cuda.allow_tf32 = previous


# ---------------------------------------------------------------------------------------------
# fit(..., amp=True)

def _fit(device, use_amp):
    from tinycnn.data import DataLoader
    from tinycnn.train import fit
    tinycnn.manual_seed(0)
    model = small_net().to(device)
    images = np.random.default_rng(0).integers(0, 255, (8, 3, 32, 32), dtype=np.uint8)
    loader = DataLoader((images, np.arange(8) % 10), batch_size=4, device=device, prefetch=False)
    history = fit(model, loader, optimizer=tinycnn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9),
                  epochs=1, verbose=0, amp=use_amp)
    return history, parameters(model)


def test_fit_with_amp_on_the_cpu_is_the_same_run():
    (plain, plain_parameters), (mixed, mixed_parameters) = _fit("cpu", False), _fit("cpu", True)
    assert mixed["loss"] == plain["loss"]
    for name, value in plain_parameters.items():
        np.testing.assert_array_equal(mixed_parameters[name], value, err_msg=name)


@pytest.mark.gpu
@needs_device
def test_fit_with_amp_trains_under_autocast_on_the_device():
    with DtypesSeen() as dtypes:
        history, trained = _fit("cuda", True)
    assert {"float16"} == dtypes.seen["Linear"] and np.isfinite(history["loss"][0])
    tinycnn.manual_seed(0)
    start = parameters(small_net())
    assert all(not np.array_equal(trained[name], start[name]) for name in start)     # every step was taken
