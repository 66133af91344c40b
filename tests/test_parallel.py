"""Convolution chunks shared by worker threads (tinycnn.parallel) give the serial results."""
import threading

import numpy as np
import pytest

import tinycnn
import tinycnn.functions as F
from tinycnn import Tensor, parallel
from tinycnn.functions import conv as conv_module


@pytest.fixture
def two_threads():
    tinycnn.set_num_threads(2)
    yield
    tinycnn.set_num_threads(None)


def test_map_parts_runs_every_item_once_in_concurrent_workers(two_threads):
    parts = min(parallel.workers(), 5)        # 2 with OpenBLAS's per-thread setting, else 1
    barrier = threading.Barrier(parts, timeout=30)   # times out unless the parts run at once

    def work(items):
        barrier.wait()
        return threading.current_thread().name, list(items), parallel.workers()

    results = parallel.map_parts(work, list(range(5)))
    assert [items for _, items, _ in results] == [list(range(5))[i::parts] for i in range(parts)]
    assert len({name for name, _, _ in results}) == parts
    assert all(inner == 1 for _, _, inner in results)   # a worker runs nested calls serially


def test_map_parts_raises_a_workers_error(two_threads):
    def work(items):
        if 3 in items:
            raise RuntimeError("chunk 3 failed")
        return items
    with pytest.raises(RuntimeError, match="chunk 3 failed"):
        parallel.map_parts(work, list(range(4)))


@pytest.mark.parametrize("bad", [0, -2, "many", 1.5j])
def test_set_num_threads_rejects_non_positive_counts(bad):
    with pytest.raises(ValueError, match="set_num_threads: expected a positive number of threads"):
        tinycnn.set_num_threads(bad)
    assert tinycnn.get_num_threads() >= 1


def test_release_scratch_frees_every_threads_buffers(two_threads):
    from tinycnn.scratch import release_scratch, scratch
    parts = min(parallel.workers(), 2)
    barrier = threading.Barrier(parts, timeout=30)    # every worker takes a part

    def buffers():
        def work(items):
            barrier.wait()
            return threading.current_thread().name, scratch("test", (64,), np.float64)
        return dict(parallel.map_parts(work, [0, 1]))

    first, again = buffers(), buffers()
    assert len(first) == parts and first.keys() == again.keys()
    assert all(np.shares_memory(first[name], again[name]) for name in first)   # each keeps its own
    release_scratch()
    fresh = buffers()
    assert not any(np.shares_memory(first[name], fresh[name]) for name in first)


@pytest.mark.parametrize("channels, out_channels, groups, kernel, kwargs", [
    (16, 8, 1, 3, dict(padding=1)),          # Winograd's transforms
    (16, 8, 1, 3, dict(padding=2, dilation=2)),  # im2row rows
    (16, 8, 1, 3, dict(stride=2)),
    (3, 8, 1, 3, dict(padding=1)),           # im2col columns (few channels)
    (4, 8, 2, 3, dict(padding=1)),           # grouped
    (16, 8, 1, 1, dict()),                   # pointwise: no columns
])
def test_conv2d_shared_between_threads_equals_one_thread(monkeypatch, channels, out_channels, groups, kernel, kwargs):
    """Chunks of one image each, split between two workers (each summing its own part of the
    weight gradient), against every chunk in the calling thread: equal to rounding."""
    monkeypatch.setattr(conv_module, "CPU_CHUNK_BYTES", 1)
    monkeypatch.setattr(conv_module, "WINOGRAD_CHUNK_BYTES", 1)
    calls = []
    original = parallel.map_parts

    def recording(work, items):
        results = original(work, items)
        calls.append(len(results))
        return results
    monkeypatch.setattr(parallel, "map_parts", recording)
    rng = np.random.default_rng(channels + groups)
    x, b = rng.standard_normal((5, channels, 9, 8)), rng.standard_normal(out_channels)
    w = rng.standard_normal((out_channels, channels // groups, kernel, kernel))

    def run():
        tensors = [Tensor(a, requires_grad=True) for a in (x, w, b)]
        y = F.conv2d(*tensors, groups=groups, **kwargs)
        (y * Tensor(np.cos(np.arange(y.data.size)).reshape(y.shape))).sum().backward()
        return [y.data] + [t.grad for t in tensors]

    try:
        tinycnn.set_num_threads(1)
        serial = run()
        assert calls == []
        tinycnn.set_num_threads(2)
        shared = run()
    finally:
        tinycnn.set_num_threads(None)
    assert calls == [parallel.workers()] * 2        # forward and backward, split when possible
    for a, s in zip(shared, serial):
        np.testing.assert_allclose(a, s, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("axis", [1, 3])
def test_concat_shares_the_images_between_workers_and_returns_contiguous_gradients(monkeypatch, axis):
    calls = []
    original = parallel.map_parts

    def recording(work, items):
        calls.append(len(items))
        return original(work, items)
    monkeypatch.setattr(parallel, "map_parts", recording)
    rng = np.random.default_rng(axis)
    shapes = [(5, 3, 4, 4), (5, 2, 4, 4)] if axis == 1 else [(5, 3, 4, 1), (5, 3, 4, 6)]
    xs = [Tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True) for shape in shapes]
    try:
        tinycnn.set_num_threads(2)
        workers = parallel.workers()                           # 2 where OpenBLAS allows workers
        y = F.concat(xs, axis=axis)
        weights = np.cos(np.arange(y.data.size)).reshape(y.shape).astype(np.float32)
        (y * Tensor(weights)).sum().backward()
    finally:
        tinycnn.set_num_threads(None)
    np.testing.assert_array_equal(y.data, np.concatenate([x.data for x in xs], axis=axis))
    for x, expected in zip(xs, np.split(weights, [shapes[0][axis]], axis=axis)):
        assert x.grad.flags.c_contiguous
        np.testing.assert_array_equal(x.grad, expected)
    assert calls == [workers, workers]                         # forward and backward, split by images
