"""DistributedDataParallel: one model replica per process, gradients averaged while backward runs.

Every process holds the same weights (rank 0's, broadcast when the wrapper is built) and
trains on its own part of each batch. After backward the gradients must be the same on
every rank: the gradient of the loss over the whole batch. Waiting for backward to finish
and then reducing them all would leave the network idle during backward and the CPU/GPU
idle during the reduction; instead, as PyTorch's DDP, the parameters are grouped in
*buckets* of about ``bucket_cap_mb`` (in reverse order of registration, which is roughly
the order backward completes them), and a bucket's nonblocking all-reduce starts as soon
as the last gradient of that bucket is accumulated (``Tensor.register_post_accumulate_grad_hook``).
Before backward returns, the reductions are waited for (on a GPU the compute stream waits for
NCCL's stream, the host goes on).

    >>> import numpy as np, tinycnn, tinycnn.nn as nn, tinycnn.functions as F
    >>> from tinycnn import distributed as dist
    >>> dist.init()
    >>> model = dist.DistributedDataParallel(nn.Sequential(nn.Linear(4, 3)))
    >>> x, y = np.ones((2, 4), np.float32), np.array([0, 2])
    >>> F.softmax_cross_entropy(model(tinycnn.Tensor(x)), y).backward()   # grads averaged on return
    >>> model.module[0].weight.grad.shape
    (3, 4)

The average weights each rank by its batch size (ranks may get one sample more or less at
the end of an epoch): with a loss that is a mean over the batch (the default cross entropy),
the gradient is exactly the one of the whole batch on one process, up to float round-off.
Buckets start in the same order on every rank, as collectives must.
"""
import numpy as np

from ..autograd import FunctionHook
from ..backend import get_array_module
from ..grad_mode import is_grad_enabled, no_grad
from ..nn.module import Module
from . import comm


class DistributedDataParallel(Module):
    """Wrap ``module`` for data-parallel training (call ``tinycnn.distributed.init()`` first).

    Use it as the model: ``forward`` runs ``module``; after ``loss.backward()`` every
    parameter's ``.grad`` is the average over all ranks. Zero the gradients before each
    backward (``optimizer.zero_grad()``), since what ``.grad`` holds is reduced. ``state_dict``
    and ``load_state_dict`` are the wrapped module's, so checkpoints fit either.
    Buffers (BatchNorm's running statistics) are broadcast once, here; they stay equal across
    ranks only with ``convert_sync_batchnorm``. When a parameter gets no gradient (a branch
    outside the loss), call ``synchronize()`` before the optimizer step. Wrapping the same
    module again (a second training run) unhooks the earlier wrapper.
    """

    def __init__(self, module, bucket_cap_mb=1.0):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected a tinycnn.nn.Module, got {type(module).__name__}")
        if not float(bucket_cap_mb) > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be > 0, got {bucket_cap_mb!r}")
        comm.world_size()       # raises unless init() ran
        self.module = module
        with no_grad():
            for tensor in module.parameters():
                comm.broadcast(tensor, root=0)
            for array in module.buffers():
                comm.broadcast(array, root=0)
        params = [p for p in module.parameters() if p.requires_grad]
        self.buckets = _buckets(params[::-1], int(float(bucket_cap_mb) * 2**20))
        self._bucket_of = {id(p): bucket for bucket in self.buckets for p in bucket.params}
        self._step = None
        for handle in getattr(module, "_data_parallel_hooks", ()):     # a module wrapped again: the last wrapper rules
            handle.remove()
        module._data_parallel_hooks = [p.register_post_accumulate_grad_hook(self._gradient_ready) for p in params]

    def forward(self, *inputs, **kwargs):
        if self._step is not None and not self._step.done:
            raise RuntimeError("DistributedDataParallel: the last backward left gradients unreduced (a "
                               "parameter got no gradient); call model.synchronize() after backward, before "
                               "the optimizer step")
        if not (self.training and is_grad_enabled()):
            return self.module(*inputs, **kwargs)
        with _CountUses(self._bucket_of) as uses:
            output = self.module(*inputs, **kwargs)
        self._step = _Step(self.buckets, uses.count, _batch_size(inputs))
        return output

    def _gradient_ready(self, param):
        if self._step is not None:
            self._step.gradient_ready(param, self._bucket_of[id(param)])

    def synchronize(self):
        """Finish the reduction of this step (starting the buckets of parameters that got no
        gradient, as zeros); a no-op when backward already finished it."""
        if self._step is not None and not self._step.done:
            self._step.finish()

    def state_dict(self):
        return self.module.state_dict()

    def load_state_dict(self, state, strict=True):
        return self.module.load_state_dict(state, strict)

    def extra_repr(self):
        return f"world_size={comm.world_size()}, buckets={len(self.buckets)}"


class _Bucket:
    """Parameters whose gradients travel together in one flat buffer."""

    def __init__(self, index, params):
        self.index, self.params = index, params
        self.offsets = np.cumsum([0] + [p.data.size for p in params])
        self.buffer = None      # [grad * batch size ..., batch size] on the parameters' device, made once

    def pack(self, batch_size, with_count, unused):
        """Copy each gradient times ``batch_size`` into the buffer (zeros for ``unused`` parameters)."""
        first = self.params[0].data
        xp = get_array_module(first)
        size = int(self.offsets[-1]) + (1 if with_count else 0)
        if self.buffer is None or self.buffer.size != size:
            self.buffer = xp.empty(size, dtype=first.dtype)
        for p, start, stop in zip(self.params, self.offsets[:-1], self.offsets[1:]):
            if id(p) in unused or p.grad is None:
                self.buffer[start:stop] = 0
            else:
                xp.multiply(p.grad.reshape(-1), batch_size, out=self.buffer[start:stop])
        if with_count:
            self.buffer[-1] = batch_size
        return self.buffer

    def unpack(self, total):
        """Each gradient becomes its slice of the summed buffer over the total batch size."""
        for p, start, stop in zip(self.params, self.offsets[:-1], self.offsets[1:]):
            p.grad = self.buffer[start:stop].reshape(p.shape) / total


def _buckets(params, cap_bytes):
    """Consecutive parameters of one dtype and device, about ``cap_bytes`` per bucket."""
    groups, current, size = [], [], 0
    for p in params:
        if current and (size + p.data.nbytes > cap_bytes or p.data.dtype != current[0].data.dtype
                        or type(p.data) is not type(current[0].data)):
            groups.append(current)
            current, size = [], 0
        current.append(p)
        size += p.data.nbytes
    if current:
        groups.append(current)
    return [_Bucket(index, group) for index, group in enumerate(groups)]


class _Step:
    """One backward's reductions: buckets start in index order, each once all its gradients are in."""

    def __init__(self, buckets, uses, batch_size):
        self.buckets, self.batch_size = buckets, batch_size
        self.uses = dict(uses)          # accumulations each parameter still expects
        self.unused = {id(p) for b in buckets for p in b.params if self.uses.get(id(p), 0) == 0}
        self.missing = [sum(1 for p in b.params if id(p) not in self.unused) for b in buckets]
        self.started, self.handles, self.done = 0, [], not buckets

    def gradient_ready(self, param, bucket):
        left = self.uses.get(id(param), 0) - 1
        self.uses[id(param)] = left
        if left < 0 or self.done:
            raise RuntimeError(f"DistributedDataParallel: a parameter of shape {tuple(param.shape)} got a gradient "
                               "from an op outside the wrapped module's forward (after its bucket was reduced); "
                               "compute such terms (e.g. weight decay) inside forward or in the optimizer")
        if left == 0:
            self.missing[bucket.index] -= 1
        self._start_ready()             # (at the first gradient, also buckets the forward never used)
        comm.test_all(self.handles)     # Open MPI moves a nonblocking reduction only inside MPI calls
        if self.started == len(self.buckets):
            self.finish()

    def _start_ready(self):
        while self.started < len(self.buckets) and self.missing[self.started] == 0:
            self._start(self.buckets[self.started])

    def _start(self, bucket):
        # bucket 0 carries this rank's batch size: the sum is the total batch, at no extra message
        buffer = bucket.pack(self.batch_size, bucket.index == 0, self.unused)
        self.handles.append(comm.all_reduce(buffer, "sum", async_op=True))
        self.started += 1

    def finish(self):
        while self.started < len(self.buckets):
            self._start(self.buckets[self.started])
        for handle in self.handles:
            handle.wait()
        if self.buckets:
            total = self.buckets[0].buffer[-1:]     # stays on the device: no host sync
            for bucket in self.buckets:
                bucket.unpack(total)
        self.done = True


class _CountUses(FunctionHook):
    """How many recorded ops take each parameter as input: the gradients its leaf will accumulate."""

    def __init__(self, tracked):
        self.tracked, self.count = tracked, {}

    def forward_postprocess(self, function, inputs, outputs):
        if any(y.requires_grad for y in outputs):
            for tensor in inputs:
                if id(tensor) in self.tracked:
                    self.count[id(tensor)] = self.count.get(id(tensor), 0) + 1


def _batch_size(inputs):
    if not inputs or not getattr(inputs[0], "shape", ()):
        raise ValueError("DistributedDataParallel: the first input must be a batch (a Tensor or array with a "
                         "leading batch axis); its size weights this rank's gradient")
    return int(inputs[0].shape[0])
