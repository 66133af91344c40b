"""Whole-step CUDA graphs (tinycnn.cuda_graph): a replayed step gives the weights an eager step
gives, and is one graph launch.

The tests run where `import cupy` sees a device: on a real GPU, and everywhere through
test_the_graph_tests_pass_on_the_stand_in, which runs this file with tests/fake_gpu first on
PYTHONPATH. The stand-in captures as a GPU does (tests/fake_gpu/cupy/_launches.py): work issued
while a stream captures does not run, and each launch replays it into the same arrays, so a
value the host froze into the capture, or an input not copied into the static buffers, shows
as a difference from the eager run. On the stand-in the two runs are equal bit for bit.
"""
import warnings

import numpy as np
import pytest

import tinycnn
import tinycnn.functions as F
import tinycnn.nn as nn
from tinycnn.cuda_graph import GraphedStep
from stand_in import STAND_IN, assert_passes_on_the_stand_in, cp, needs_device


stand_in_only = pytest.mark.skipif(not STAND_IN, reason="counts launches: only the stand-in can")


def test_the_graph_tests_pass_on_the_stand_in():
    assert_passes_on_the_stand_in(__file__, "-k", "not test_the_graph_tests_pass_on_the_stand_in")


def build():
    return nn.fuse(nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 1), nn.ReLU(), nn.BatchNorm2d(6), nn.Flatten(), nn.Dropout(0.3), nn.Linear(6 * 4 * 4, 5)))


def batches(count, size=4):
    rng = np.random.default_rng(11)
    return [(rng.standard_normal((size, 3, 8, 8)).astype(np.float32), rng.integers(0, 5, size)) for _ in range(count)]


def train(data, graphed, lr_change_at=None):
    """SGD with momentum over `data` -> (losses, parameters and buffers, momentum buffers, step)."""
    tinycnn.manual_seed(0)
    model = build().to("cuda")
    optimizer = tinycnn.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)

    def run_step(images, labels):
        outputs = model(tinycnn.Tensor(images))
        loss = F.softmax_cross_entropy(outputs, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.data, outputs.data

    step = GraphedStep(run_step, optimizer) if graphed else run_step
    losses = []
    import cupyx
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)        # CuPy deprecates the detector (it stays)
        with cupyx.allow_synchronize(False):
            for index, (images, labels) in enumerate(data):
                if index == lr_change_at:
                    optimizer.set_lr(0.01)
                loss, _ = step(cp.asarray(images), cp.asarray(labels))
                losses.append(loss.copy())
    state = {name: cp.asnumpy(value) for name, value in model.state_dict().items()}
    buffers = [cp.asnumpy(s["momentum_buffer"]) for s in optimizer.state.values()]
    return [float(loss) for loss in losses], state, buffers, step


def assert_same(got, want):
    # the stand-in replays the very operations: equal bit for bit; a GPU may pick other GEMM
    # algorithms inside a graph, within float32 round-off of the values
    for g, w in zip(got, want):
        if STAND_IN:
            np.testing.assert_array_equal(g, w)
        else:
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


@needs_device
def test_a_replayed_step_gives_the_weights_an_eager_step_gives():
    data = batches(5)
    eager_losses, eager_state, eager_buffers, _ = train(data, graphed=False)
    losses, state, buffers, step = train(data, graphed=True)
    assert step.launches == 4                  # the first batch ran eagerly; the next four were launches
    assert_same(losses, eager_losses)
    assert state.keys() == eager_state.keys()
    assert_same([state[k] for k in state], [eager_state[k] for k in state])
    assert_same(buffers, eager_buffers)
    assert len(set(losses)) == len(losses)     # each replay trained on its own batch


@needs_device
def test_the_partial_last_batch_runs_eagerly_and_a_new_lr_is_captured_again():
    data = batches(4) + batches(1, size=3) + batches(2)
    want = train(data, graphed=False, lr_change_at=5)
    got = train(data, graphed=True, lr_change_at=5)
    assert got[3].launches == 5                # batches 1-3 and 5-6; batch 0 warmed up, batch 4 was partial
    assert_same(got[0], want[0])
    assert_same([got[1][k] for k in want[1]], [want[1][k] for k in want[1]])
    assert_same(got[2], want[2])


@stand_in_only
def test_a_graphed_step_is_one_graph_launch():
    from cupy import _launches
    data = batches(3)
    tinycnn.manual_seed(0)
    model = build().to("cuda")
    optimizer = tinycnn.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    def run_step(images, labels):
        loss = F.softmax_cross_entropy(model(tinycnn.Tensor(images)), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.data, loss.data

    step = GraphedStep(run_step, optimizer)
    device_data = [(cp.asarray(x), cp.asarray(y)) for x, y in data]
    with _launches.counting() as eager:
        step(*device_data[0])
    step(*device_data[1])                      # captured, then launched
    with _launches.counting() as graphed:
        step(*device_data[2])
    assert eager["graph_launches"] == 0 and eager["raw_kernels"] > 10
    assert graphed == {"raw_kernels": 0, "array_ops": 2, "graph_launches": 1}    # two input copies, one launch


@needs_device
def test_an_optimizer_whose_step_depends_on_the_step_count_is_refused():
    model = build().to("cuda")
    with pytest.raises(ValueError, match="cuda_graph: Adam's step depends on the step count"):
        GraphedStep(lambda x, y: None, tinycnn.optim.Adam(model.parameters()))
    step = GraphedStep(lambda x, y: None, tinycnn.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(TypeError, match="cuda_graph: the batch must be on the GPU"):
        step(np.zeros((1, 3, 8, 8), np.float32), np.zeros(1, np.int64))


@needs_device
def test_fit_with_cuda_graph_trains_as_fit_without():
    from tinycnn.data import DataLoader
    from tinycnn.train import fit
    rng = np.random.default_rng(3)
    images, labels = rng.integers(0, 256, (10, 3, 8, 8)).astype(np.uint8), rng.integers(0, 5, 10)

    def run(cuda_graph):
        tinycnn.manual_seed(0)
        model = build().to("cuda")
        loader = DataLoader((images, labels), batch_size=4, device="cuda", prefetch=False)
        optimizer = tinycnn.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        launches = _launch_counter()
        with launches as counted:
            history = fit(model, loader, optimizer=optimizer, epochs=2, verbose=0, cuda_graph=cuda_graph)
        return history["loss"], {k: cp.asnumpy(v) for k, v in model.state_dict().items()}, counted

    want_loss, want, _ = run(False)
    got_loss, got, counted = run(True)
    if STAND_IN:    # batches of 4, 4 and 2 per epoch: the first warms up, the partial ones run eagerly
        assert counted["graph_launches"] == 3
    assert_same(got_loss, want_loss)
    assert_same([got[k] for k in want], [want[k] for k in want])


def _launch_counter():
    if STAND_IN:
        from cupy import _launches
        return _launches.counting()
    import contextlib
    return contextlib.nullcontext({})
