"""The column buffer stays under the workspace limit, float32 networks stay float32, and
freed memory is kept for the next step."""
import resource
import tracemalloc

import numpy as np

import tinycnn
import tinycnn.functions as F
from tinycnn import models
from tinycnn.tensor import Function


def test_vgg16_first_block_convolution_stays_within_workspace_plus_output():
    """block1_conv2 of VGG-16 at 224x224, batch 32: the whole-batch im2col would take 3.7 GB."""
    limit = 256 * 2**20
    rng = np.random.default_rng(0)
    x = tinycnn.Tensor(rng.random((32, 64, 224, 224), dtype=np.float32))
    weight = tinycnn.Tensor(rng.random((64, 64, 3, 3), dtype=np.float32))
    output_bytes = x.data.nbytes                       # same shape as the input
    whole_batch_columns = 32 * 64 * 9 * 224 * 224 * 4
    assert whole_batch_columns > 10 * limit
    previous = tinycnn.get_workspace_limit()
    tinycnn.set_workspace_limit(limit)
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        with tinycnn.no_grad():
            y = F.conv2d(x, weight, padding=1)
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
        tinycnn.set_workspace_limit(previous)
    assert y.shape == (32, 64, 224, 224)
    assert peak <= limit + output_bytes, f"peak extra memory {peak / 2**20:.0f} MiB"


def test_a_float32_training_step_computes_nothing_in_float64(monkeypatch):
    seen = set()
    original_call = Function.__call__

    def recording_call(self, *inputs):
        outputs = original_call(self, *inputs)
        for output in outputs if isinstance(outputs, tuple) else (outputs,):
            seen.add((type(self).__name__, output.dtype))
        return outputs

    monkeypatch.setattr(Function, "__call__", recording_call)
    tinycnn.manual_seed(0)
    model = models.get("minigooglenet", num_classes=10)
    optimizer = tinycnn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = tinycnn.Tensor(np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32))
    loss = F.softmax_cross_entropy(model(x), np.array([1, 2]))
    loss.backward()
    optimizer.step()
    assert {dtype for _, dtype in seen} == {np.dtype(np.float32)}, sorted(seen, key=str)
    assert all(p.grad.dtype == np.float32 and p.dtype == np.float32 for p in model.parameters())
    assert all(b.dtype == np.float32 for b in model.buffers())


def test_scratch_buffers_are_reused_per_name_grown_on_demand_and_per_thread():
    import threading
    from tinycnn.scratch import release_scratch, scratch
    release_scratch()
    a = scratch("test", (4, 5), np.float32)
    b = scratch("test", (2, 3), np.float64)          # fits in a's 80 bytes: same memory
    assert np.shares_memory(a, b) and b.shape == (2, 3) and b.dtype == np.float64 and b.flags.c_contiguous
    c = scratch("test", (100,), np.float64)          # larger: a new buffer
    assert not np.shares_memory(a, c)
    assert not np.shares_memory(c, scratch("other", (100,), np.float64))
    in_thread = []
    thread = threading.Thread(target=lambda: in_thread.append(scratch("test", (100,), np.float64)))
    thread.start()
    thread.join()
    assert not np.shares_memory(c, in_thread[0])
    release_scratch()
    assert not np.shares_memory(c, scratch("test", (100,), np.float64))


def test_keep_freed_memory_gives_a_freed_block_back_without_page_faults():
    """40 MiB is above glibc's largest automatic mmap threshold (32 MiB): by default such a
    block goes back to the OS when freed and the next one faults in again (21 huge pages here)."""
    def faults_of_a_fresh_block():
        size = 40 * 2**20 // 4
        np.ones(size, np.float32)                          # allocated, written, freed
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        block = np.ones(size, np.float32)
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, block

    assert tinycnn.keep_freed_memory()                     # glibc on the machines that run this
    try:
        faults, block = faults_of_a_fresh_block()
        assert block.sum() == block.size
        assert faults <= 2
    finally:
        tinycnn.release_scratch()                          # gives the kept memory back
