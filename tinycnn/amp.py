"""Mixed precision on the GPU: ``autocast`` and ``GradScaler``, with PyTorch's meaning.

Inside ``with autocast():`` (this thread only, like grad mode) the convolution and linear
GEMMs of GPU tensors run in float16: conv2d, linear and matmul cast their float32 operands
to float16 through ``F.cast``, which is recorded in the graph, so gradients flow back to the
float32 parameters as float32 (the optimizer keeps float32 master weights). What the GEMM
gives stays float16 through ReLU, pooling, concat and dropout (their CUDA kernels have
float16 variants); BatchNorm (statistics and normalisation) and the softmax cross entropy
run in float32 on a float32 copy of their input. On CuPy a float16 ``matmul`` of two 2-D
arrays is one cuBLAS ``gemmEx`` with float16 inputs and outputs, float32 compute
(``CUBLAS_COMPUTE_32F``) on tensor cores; a batched (3-D and up) one is upcast to float32
by CuPy 14 and runs as a float32 GEMM. On the CPU autocast changes nothing: NumPy
arrays are never cast, results are bit-identical to a run without it.

Float16 gradients underflow: ``GradScaler`` multiplies the loss by a scale (2**16 at first)
before backward, divides the gradients by it before the step, and skips the step when a
gradient holds inf or NaN, halving the scale; after ``growth_interval`` clean steps in a row
it doubles the scale. The inf check, the skip and the scale stay on the device: no host sync.

    >>> import numpy as np, tinycnn, tinycnn.functions as F
    >>> from tinycnn import amp
    >>> model = tinycnn.nn.Linear(4, 2)
    >>> optimizer = tinycnn.optim.SGD(model.parameters(), lr=0.1)
    >>> scaler = amp.GradScaler()
    >>> with amp.autocast():                   # a no-op here: the model is on the CPU
    ...     loss = F.softmax_cross_entropy(model(tinycnn.Tensor(np.ones((3, 4), np.float32))), np.array([0, 1, 0]))
    >>> scaler.scale(loss).backward()
    >>> scaler.step(optimizer)
    >>> scaler.update()
"""
import contextlib
import threading

import numpy as np

from .backend import get_array_module, is_cupy_array

HALF = np.dtype(np.float16)
SINGLE = np.dtype(np.float32)


class _AutocastMode(threading.local):
    enabled = False   # every new thread starts without autocast


_mode = _AutocastMode()


def is_autocast_enabled():
    """Whether ops called in this thread run their GEMMs in float16 on the GPU."""
    return _mode.enabled


@contextlib.contextmanager
def autocast(enabled=True):
    """Run the block's GPU convolutions and linear layers in float16 (this thread only).

        >>> from tinycnn import amp
        >>> with amp.autocast():
        ...     amp.is_autocast_enabled()
        True
    """
    previous = _mode.enabled
    _mode.enabled = bool(enabled)
    try:
        yield
    finally:
        _mode.enabled = previous


def _on_gpu(tensor):
    return tensor is not None and is_cupy_array(tensor.data)


def gemm_operands(*tensors):
    """The operands of a GEMM as autocast wants them: float32 GPU tensors cast to float16 (a
    recorded cast) inside ``autocast``, everything else (None, CPU tensors) unchanged."""
    if not _mode.enabled or not any(_on_gpu(t) for t in tensors):
        return tensors
    from .functions.math import cast
    return tuple(cast(t, HALF) if t is not None and t.dtype == SINGLE else t for t in tensors)


def float32_operands(*tensors):
    """float16 tensors cast to float32 (recorded), for ops without a float16 path; None passes."""
    return tuple(None if t is None else float32_input(t) for t in tensors)


def float32_input(tensor):
    """A float16 tensor as float32 (recorded), for the ops autocast keeps in float32."""
    if tensor.dtype != HALF:
        return tensor
    from .functions.math import cast
    return cast(tensor, SINGLE)


def restore_half(result, like):
    """``result`` cast back to float16 (recorded) if ``like`` was float16, else unchanged."""
    if like.dtype != HALF or result.dtype == HALF:
        return result
    from .functions.math import cast
    return cast(result, HALF)


class GradScaler:
    """Loss scaling for float16 training, as ``torch.amp.GradScaler``::

        scaler = GradScaler()
        for images, labels in loader:
            optimizer.zero_grad()
            with autocast():
                loss = F.softmax_cross_entropy(model(images), labels)
            scaler.scale(loss).backward()
            scaler.step(optimizer)      # unscales, skips the step if a gradient is inf or NaN
            scaler.update()             # halves the scale after a skip, doubles it after
                                        # growth_interval clean steps in a row

    On the GPU the scale, the growth tracker and the found-inf flag are device arrays and
    the skip is decided there: ``step`` runs the optimizer, then puts back every parameter
    and every optimizer buffer where the flag is set (buffers the step created are zeroed).
    Python numbers in the optimizer's state (the ``"step"`` counters) count a skipped step
    too. With CPU tensors (where autocast does nothing) the scaler is a pass-through:
    ``scale`` returns the loss, ``step`` calls ``optimizer.step()``.
    """

    def __init__(self, init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000,
                 enabled=True):
        if not init_scale > 0:
            raise ValueError(f"GradScaler: init_scale must be > 0, got {init_scale!r}")
        if not growth_factor > 1:
            raise ValueError(f"GradScaler: growth_factor must be > 1, got {growth_factor!r}")
        if not 0 < backoff_factor < 1:
            raise ValueError(f"GradScaler: backoff_factor must be in (0, 1), got {backoff_factor!r}")
        if isinstance(growth_interval, bool) or not isinstance(growth_interval, int) or growth_interval < 1:
            raise ValueError(f"GradScaler: growth_interval must be a positive int, got {growth_interval!r}")
        self.enabled = bool(enabled)
        self.growth_factor, self.backoff_factor = float(growth_factor), float(backoff_factor)
        self.growth_interval = growth_interval
        self._initial = (float(init_scale), 0)      # (scale, growth tracker) until the first GPU loss
        self._scale = self._tracker = self._found_inf = None    # device arrays, made by scale()
        self._unscaled = False

    # ----- the four calls of a training step --------------------------------------
    def scale(self, loss):
        """loss * scale on the GPU (a recorded multiplication); the loss itself elsewhere."""
        if not self.enabled or not _on_gpu(loss):
            return loss
        xp = get_array_module(loss.data)
        if self._scale is None:
            self._scale = xp.asarray(np.float32(self._initial[0]))
            self._tracker = xp.asarray(np.int32(self._initial[1]))
        from .tensor import Tensor
        return loss * Tensor(self._scale.astype(loss.dtype))

    def unscale_(self, optimizer):
        """Divide every gradient by the scale in place and note whether one holds inf or NaN
        (call it before clipping gradients; ``step`` calls it if you did not)."""
        if not self._active() or self._unscaled:
            return
        xp = get_array_module(self._scale)
        inverse = (1 / self._scale.astype(np.float64)).astype(np.float32)
        grads = [param.grad for param in optimizer.parameters() if param.grad is not None]
        for grad in grads:
            grad *= inverse.astype(grad.dtype)
        # one check over all gradients (3 launches), not one per gradient
        everything = xp.concatenate([grad.reshape(-1) for grad in grads]) if grads else xp.zeros(0, np.float32)
        self._found_inf, self._unscaled = ~xp.isfinite(everything).all(), True

    def step(self, optimizer):
        """``optimizer.step()`` unless a gradient is inf or NaN, decided on the device."""
        if not self._active():
            optimizer.step()
            return
        self.unscale_(optimizer)
        _step_unless(optimizer, self._found_inf)

    def update(self):
        """Halve the scale after a skipped step; double it after growth_interval clean ones."""
        if not self._active() or self._found_inf is None:
            return
        xp = get_array_module(self._scale)
        found = self._found_inf
        tracker = xp.where(found, 0, self._tracker + 1).astype(np.int32)
        grow = tracker >= self.growth_interval
        scale = xp.where(found, self._scale * np.float32(self.backoff_factor), self._scale)
        self._scale = xp.where(grow, scale * np.float32(self.growth_factor), scale).astype(np.float32)
        self._tracker = xp.where(grow, 0, tracker).astype(np.int32)
        self._found_inf, self._unscaled = None, False

    # ----- inspection and checkpoints -----------------------------------------------
    def get_scale(self):
        """The current scale as a Python float (reads the device: a host sync)."""
        return float(self._scale) if self._scale is not None else self._initial[0]

    def state_dict(self):
        """{"scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker"}
        as Python numbers (reads the device: call it when saving, not every step)."""
        tracker = int(self._tracker) if self._tracker is not None else self._initial[1]
        return {"scale": self.get_scale(), "growth_factor": self.growth_factor,
                "backoff_factor": self.backoff_factor, "growth_interval": self.growth_interval,
                "_growth_tracker": tracker}

    def load_state_dict(self, state):
        """Restore what ``state_dict`` saved (on the GPU at the next ``scale``)."""
        missing = {"scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker"} - set(state)
        if missing:
            raise KeyError(f"GradScaler.load_state_dict: missing {sorted(missing)}")
        self.growth_factor, self.backoff_factor = float(state["growth_factor"]), float(state["backoff_factor"])
        self.growth_interval = int(state["growth_interval"])
        self._initial = (float(state["scale"]), int(state["_growth_tracker"]))
        self._scale = self._tracker = self._found_inf = None
        self._unscaled = False

    def _active(self):
        return self.enabled and self._scale is not None


def _step_unless(optimizer, found_inf):
    """optimizer.step(), then every parameter and array buffer of its state put back where the
    device flag `found_inf` is set (buffers created by this step set to zero there). The values
    are restored into the arrays the step leaves (a step may rebind them, e.g. to views of one
    flat buffer)."""
    xp = get_array_module(found_inf)
    params = [p for p in optimizer.parameters() if p.grad is not None]
    saved = {}
    for param in params:
        saved[id(param), None] = param.data.copy()
        for name, value in optimizer.state.get(id(param), {}).items():
            if hasattr(value, "shape"):
                saved[id(param), name] = value.copy()
    optimizer.step()
    for param in params:
        xp.copyto(param.data, saved[id(param), None], where=found_inf)
        for name, value in optimizer.state.get(id(param), {}).items():
            if hasattr(value, "shape"):
                old = saved.get((id(param), name))
                xp.copyto(value, xp.zeros((), value.dtype) if old is None else old, where=found_inf)
