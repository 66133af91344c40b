"""Every registered model runs one forward pass at its native input size (batch 1, eval mode)."""
import numpy as np
import pytest

import tinycnn
from tinycnn import models


@pytest.mark.parametrize("name", models.available())
def test_forward_at_native_input_size(name):
    model = models.get(name, num_classes=7).eval()
    x = tinycnn.Tensor(np.random.default_rng(0).normal(size=(1,) + tuple(model.input_shape)).astype(np.float32))
    with tinycnn.no_grad():
        y = model(x)
    assert y.shape == (1, 7)
    assert np.isfinite(y.numpy()).all()
