"""Fuzzing checkpoint files: damaged bytes load back unchanged or raise CheckpointError, nothing else."""
import io
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import tinycnn
import tinycnn.nn as nn
from tinycnn.io import CheckpointError

# each example loads a file of about 2 KB in about a millisecond; the deadline only catches a hang
FUZZ = settings(max_examples=150, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture])
MEMORY_BOUND = 2**20  # a 2 KB file must never make load hold more than this


def small_state():
    tinycnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    return {"model": model.state_dict(), "epoch": 4, "name": "run", "best": None, "lrs": [0.1, 0.01],
            "rng": {"position": 7, "keys": np.arange(5, dtype=np.uint32)}, "history": {}}


def header_regions(data):
    """(start, end) byte ranges of every zip and .npy header in ``data`` (array data excluded)."""
    regions = []
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            start = info.header_offset
            name_length = int.from_bytes(data[start + 26:start + 28], "little")
            extra_length = int.from_bytes(data[start + 28:start + 30], "little")
            npy_start = start + 30 + name_length + extra_length
            npy_length = 10 + int.from_bytes(data[npy_start + 8:npy_start + 10], "little")  # version 1.0
            regions.append((start, npy_start + npy_length))
        regions.append((archive.start_dir, len(data)))  # central directory and its end record
    return regions


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "good.npz"
    tinycnn.save(small_state(), path)
    data = path.read_bytes()
    return data, tinycnn.load(path), header_regions(data)


def assert_same(loaded, expected, where="state"):
    assert type(loaded) is type(expected), where
    if isinstance(expected, dict):
        assert sorted(loaded) == sorted(expected), where
        for key in expected:
            assert_same(loaded[key], expected[key], f"{where}[{key!r}]")
    elif isinstance(expected, list):
        assert len(loaded) == len(expected), where
        for index, (a, b) in enumerate(zip(loaded, expected)):
            assert_same(a, b, f"{where}[{index}]")
    elif isinstance(expected, np.ndarray):
        assert loaded.dtype == expected.dtype and loaded.shape == expected.shape, where
        np.testing.assert_array_equal(loaded, expected, err_msg=where)
    else:
        assert loaded == expected, where


def load_damaged(tmp_path, data, expected):
    """Load ``data``: it must give ``expected`` exactly or a CheckpointError naming the file."""
    path = tmp_path / "damaged.npz"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        loaded = tinycnn.load(path)
    except CheckpointError as error:
        assert str(path) in str(error)
        return
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < MEMORY_BOUND
    assert_same(loaded, expected)


def test_the_fuzzed_checkpoint_loads_as_saved(checkpoint):
    good, loaded, regions = checkpoint
    assert loaded["epoch"] == 4 and loaded["lrs"] == [0.1, 0.01] and loaded["best"] is None
    np.testing.assert_array_equal(loaded["model"]["0"]["weight"], small_state()["model"]["0.weight"])
    assert all(good[start:start + 4] in (b"PK\x03\x04", b"PK\x01\x02") for start, _ in regions)


@FUZZ
@given(data=st.data())
def test_a_truncated_checkpoint_raises_checkpoint_error(checkpoint, tmp_path, data):
    good, expected, _ = checkpoint
    length = data.draw(st.integers(0, len(good) - 1), label="length")
    load_damaged(tmp_path, good[:length], expected)


@FUZZ
@given(data=st.data())
def test_bit_flips_anywhere_load_unchanged_or_raise(checkpoint, tmp_path, data):
    good, expected, _ = checkpoint
    damaged = bytearray(good)
    for _ in range(data.draw(st.integers(1, 4), label="flips")):
        position = data.draw(st.integers(0, len(good) - 1), label="position")
        damaged[position] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    load_damaged(tmp_path, bytes(damaged), expected)


@FUZZ
@given(data=st.data())
def test_overwritten_header_bytes_load_unchanged_or_raise(checkpoint, tmp_path, data):
    good, expected, regions = checkpoint
    damaged = bytearray(good)
    for _ in range(data.draw(st.integers(1, 3), label="overwrites")):
        start, end = data.draw(st.sampled_from(regions), label="header")
        position = data.draw(st.integers(start, end - 1), label="position")
        new = data.draw(st.binary(min_size=1, max_size=8), label="bytes")
        damaged[position:position + len(new)] = new[:len(good) - position]
    load_damaged(tmp_path, bytes(damaged[:len(good)]), expected)


# values save stores and load gives back as they were (0-d arrays would come back as Python values)
ARRAYS = st.sampled_from([np.float32, np.float64, np.int64, np.uint8, np.bool_]).flatmap(
    lambda dtype: st.lists(st.integers(0, 3), min_size=1, max_size=3).map(
        lambda shape: np.arange(int(np.prod(shape)), dtype=np.int64).astype(dtype).reshape(shape)))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1),
                    st.floats(allow_nan=False), st.text(max_size=8).filter(lambda text: not text.endswith("\0")))
KEYS = st.text(alphabet="abcdefghij_0123456789", min_size=1, max_size=6)
STATES = st.recursive(st.one_of(ARRAYS, SCALARS),
                      lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=3)),
                      max_leaves=12)


@settings(max_examples=100, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(state=st.dictionaries(KEYS, STATES, max_size=4))
def test_any_state_of_plain_keys_round_trips(tmp_path, state):
    path = tmp_path / "state.npz"
    tinycnn.save(state, path)
    assert_same(tinycnn.load(path), state)
