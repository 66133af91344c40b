"""save/load: npz with hierarchical keys, no pickle, atomic writes."""
import os

import numpy as np
import pytest

import tinycnn


def test_nested_state_round_trips_with_python_values(tmp_path):
    state = {"model": {"features.conv1.weight": np.arange(6.0).reshape(2, 3)},
             "optimizer": {"state": {"0": {"momentum": np.ones(3, dtype=np.float32)}},
                           "param_groups": [{"lr": 0.1, "nesterov": True}, {"lr": 0.01, "nesterov": False}]},
             "epoch": 7, "name": "run", "best": None, "history": [], "rng": {"pos": 3}}
    path = tmp_path / "ckpt.npz"
    tinycnn.save(state, path)
    loaded = tinycnn.load(path)
    np.testing.assert_array_equal(loaded["model"]["features"]["conv1"]["weight"], state["model"]["features.conv1.weight"])
    assert loaded["optimizer"]["param_groups"] == state["optimizer"]["param_groups"]
    assert loaded["optimizer"]["state"]["0"]["momentum"].dtype == np.float32
    assert loaded["epoch"] == 7 and loaded["name"] == "run" and loaded["best"] is None and loaded["history"] == []


def test_file_uses_hierarchical_keys_and_needs_no_pickle(tmp_path):
    path = tmp_path / "s.npz"
    tinycnn.save({"features.conv1.weight": np.zeros(2)}, path)
    with np.load(path, allow_pickle=False) as archive:
        assert archive.files == ["features/conv1/weight"]


def test_failed_write_leaves_previous_file_intact(tmp_path):
    path = tmp_path / "s.npz"
    tinycnn.save({"a": np.ones(2)}, path)
    with pytest.raises(TypeError):
        tinycnn.save({"a": np.ones(2), "b": object()}, path)
    np.testing.assert_array_equal(tinycnn.load(path)["a"], np.ones(2))
    assert os.listdir(tmp_path) == ["s.npz"]


def test_load_of_a_corrupt_file_names_it(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="broken.npz"):
        tinycnn.load(path)
