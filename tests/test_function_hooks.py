"""tinycnn.FunctionHook: every Function applied in the hook's thread, inside its block, and nothing else."""
import threading

import numpy as np
import pytest

import tinycnn
import tinycnn.functions as F
from tinycnn import FunctionHook, Tensor


class Recorder(FunctionHook):
    def __init__(self):
        self.calls = []

    def forward_postprocess(self, function, inputs, outputs):
        self.calls.append((type(function).__name__, [t.shape for t in inputs], [t.shape for t in outputs]))


def test_a_hook_sees_each_function_with_its_input_and_output_tensors():
    x = Tensor(np.ones((2, 3, 6, 6)), requires_grad=True)
    w = Tensor(np.ones((4, 3, 3, 3)), requires_grad=True)
    with Recorder() as recorder:
        y = F.relu(F.conv2d(x, w, padding=1))
        parts = F.split(y, [1, 3], axis=1)
    assert [name for name, _, _ in recorder.calls] == ["Conv2dIm2col", "ReLU", "Split"]     # conv2d's algorithm class
    assert recorder.calls[0][1:] == ([(2, 3, 6, 6), (4, 3, 3, 3)], [(2, 4, 6, 6)])
    assert recorder.calls[2][2] == [(2, 1, 6, 6), (2, 3, 6, 6)] == [p.shape for p in parts]


def test_hooks_see_ops_without_a_graph_and_leave_when_their_block_ends():
    with Recorder() as recorder, tinycnn.no_grad():
        Tensor([1.0]) * 2
    with pytest.raises(ZeroDivisionError):
        with Recorder() as failing:
            1 / 0
    Tensor([1.0]) + 1
    assert [name for name, _, _ in recorder.calls] == ["Mul"] and failing.calls == []


def test_nested_hooks_both_see_the_ops_of_the_inner_block():
    with Recorder() as outer:
        Tensor([1.0]) + 1
        with Recorder() as inner:
            Tensor([1.0]) * 2
        Tensor([1.0]) - 1
    assert [name for name, _, _ in outer.calls] == ["Add", "Mul", "Sub"]
    assert [name for name, _, _ in inner.calls] == ["Mul"]


def test_a_hook_sees_only_its_own_thread():
    started, release = threading.Event(), threading.Event()

    def other_thread():
        started.wait()
        Tensor([1.0]) * 2           # runs while the main thread's hook is active
        release.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    with Recorder() as recorder:
        started.set()
        release.wait(10)
        Tensor([1.0]) + 1
    thread.join()
    assert [name for name, _, _ in recorder.calls] == ["Add"]
