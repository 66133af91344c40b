"""The workspace limit: TINYCNN_WORKSPACE and set_workspace_limit take bytes with optional K, M, G
(binary) suffixes and refuse anything else by name; a convolution whose single image needs more than
the limit warns once per layer shape and limit, and still computes the right result."""
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import tinycnn
import tinycnn.functions as F
from tinycnn.config import WorkspaceWarning, parse_bytes
from tinycnn.functions import conv as conv_module


@pytest.fixture
def restore_limit():
    previous = tinycnn.get_workspace_limit()
    yield
    tinycnn.set_workspace_limit(previous)


@pytest.mark.parametrize("text, nbytes", [
    ("1048576", 2**20), ("512K", 512 * 2**10), ("256M", 256 * 2**20), ("1G", 2**30), ("2GiB", 2 * 2**30),
    ("64m", 64 * 2**20), (" 8 MiB ", 8 * 2**20)])
def test_sizes_in_bytes_and_binary_units(text, nbytes):
    assert parse_bytes("TINYCNN_WORKSPACE", text) == nbytes


@pytest.mark.parametrize("text", ["0", "-5", "0M", "garbage", "1.5M", "", "256MB", "12 34"])
def test_anything_else_is_refused_naming_the_setting_and_the_value(text):
    with pytest.raises(ValueError) as raised:
        parse_bytes("TINYCNN_WORKSPACE", text)
    assert str(raised.value).startswith("TINYCNN_WORKSPACE: expected a positive number of bytes")
    assert str(raised.value).endswith(f"got {text!r}")


def import_with(value):
    environment = {**os.environ, "TINYCNN_WORKSPACE": value}
    return subprocess.run([sys.executable, "-c", "import tinycnn; print(tinycnn.get_workspace_limit())"],
                          env=environment, capture_output=True, text=True, timeout=120)


def test_the_environment_variable_at_import():
    accepted = import_with("256M")
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.strip() == str(256 * 2**20)
    refused = import_with("-5")
    assert refused.returncode != 0
    assert refused.stderr.strip().splitlines()[-1] == (
        "ValueError: TINYCNN_WORKSPACE: expected a positive number of bytes (K, M, G suffixes mean KiB, MiB, GiB), "
        "got '-5'")


@pytest.mark.parametrize("value, error", [(0, ValueError), (-5, ValueError), ("garbage", ValueError),
                                          (1.5, TypeError), (True, TypeError), (None, TypeError)])
def test_set_workspace_limit_refuses_by_name(restore_limit, value, error):
    before = tinycnn.get_workspace_limit()
    with pytest.raises(error, match=r"^set_workspace_limit: expected a") as raised:
        tinycnn.set_workspace_limit(value)
    assert repr(value) in str(raised.value)
    assert tinycnn.get_workspace_limit() == before


def test_set_workspace_limit_accepts_units_and_numpy_integers(restore_limit):
    tinycnn.set_workspace_limit("8M")
    assert tinycnn.get_workspace_limit() == 8 * 2**20
    tinycnn.set_workspace_limit(np.int64(4096))
    assert tinycnn.get_workspace_limit() == 4096


def convolve(x, w, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y = F.conv2d(tinycnn.Tensor(x), tinycnn.Tensor(w), **kwargs).data
    return y, [c for c in caught if issubclass(c.category, WorkspaceWarning)]


@pytest.mark.parametrize("channels, kwargs, layout", [
    (16, dict(padding=1), "Winograd"), (16, dict(stride=2), "im2row"), (3, dict(padding=1), "im2col")])
def test_one_image_over_the_limit_warns_once_and_is_still_right(restore_limit, monkeypatch, channels, kwargs,
                                                                 layout):
    monkeypatch.setattr(conv_module, "_warned", set())      # nothing warned yet in this process
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, channels, 20, 20))
    w = rng.standard_normal((8, channels, 3, 3))
    expected, none = convolve(x, w, **kwargs)
    assert none == []                                   # the default limit holds one image
    limit = 4096
    tinycnn.set_workspace_limit(limit)
    y, caught = convolve(x, w, **kwargs)
    assert len(caught) == 1
    message = str(caught[0].message)
    needed = int(message.split(" needs ")[1].split(" bytes")[0])
    assert needed > limit
    assert message.startswith(f"conv2d: one ({channels}, 20, 20) image with weight (8, {channels}, 3, 3) needs")
    assert f"of {layout} workspace, more than the workspace limit of {limit} bytes" in message
    # the same sums, blocked differently by BLAS for other chunk sizes: float64 rounding apart
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-12 * np.abs(expected).max())
    assert convolve(x, w, **kwargs)[1] == []            # once per layer shape and limit
