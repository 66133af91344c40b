"""bench/plain_loop.py times the loop a PyTorch user writes (issue #22): it must stay that loop,
with no tinycnn call that decides the speed behind the user's back (nn.fuse, keep_freed_memory)."""
import math

import pytest

import tinycnn
from bench import plain_loop


@pytest.mark.parametrize("train", [True, False])
def test_the_tinycnn_loop_calls_neither_fuse_nor_keep_freed_memory(monkeypatch, train):
    def refuse(*args, **kwargs):
        raise AssertionError("the plain loop must not call this")
    monkeypatch.setattr(tinycnn, "keep_freed_memory", refuse)
    monkeypatch.setattr(tinycnn.nn, "fuse", refuse)
    step = plain_loop.tinycnn_steps("minivgg", 2, train)
    result = step()
    if train:
        assert isinstance(result, float) and math.isfinite(result)
    else:
        assert result.shape == (2, 10)


def test_the_pytorch_loop_trains_the_same_model_shape():
    torch = pytest.importorskip("torch")
    loss = plain_loop.torch_steps("minivgg", 2, True)()
    assert isinstance(loss, float) and math.isfinite(loss)
    with torch.no_grad():
        assert tuple(plain_loop.torch_steps("minivgg", 2, False)().shape) == (2, 10)
