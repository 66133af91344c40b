"""Weights in: PyTorch .pth files read without torch's unpickler, safetensors, Keras .h5/.keras."""
import collections
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import tinycnn
from tinycnn import nn
from tinycnn.io import CheckpointError, load_safetensors, load_torch, save_safetensors

torch = pytest.importorskip("torch")


# ----- PyTorch .pth -------------------------------------------------------------------
def test_tensors_of_every_common_dtype_come_back_equal(tmp_path):
    state = {"f32": torch.randn(2, 3), "f64": torch.randn(4, dtype=torch.float64),
             "f16": torch.randn(3, 2).half(), "i64": torch.arange(-3, 3), "i32": torch.arange(4, dtype=torch.int32),
             "i8": torch.tensor([-128, 0, 127], dtype=torch.int8), "u8": torch.tensor([0, 255], dtype=torch.uint8),
             "bool": torch.tensor([True, False]), "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 3)}
    torch.save(state, tmp_path / "t.pth")
    loaded = load_torch(tmp_path / "t.pth")
    assert list(loaded) == list(state)
    for name, tensor in state.items():
        expected = tensor.numpy()
        assert loaded[name].dtype == expected.dtype and loaded[name].shape == expected.shape, name
        np.testing.assert_array_equal(loaded[name], expected)


def test_bfloat16_becomes_the_same_numbers_in_float32(tmp_path):
    values = torch.tensor([1.0, -2.5, 3.140625, 1e30, -1e-30]).bfloat16()
    torch.save({"w": values}, tmp_path / "b.pth")
    loaded = load_torch(tmp_path / "b.pth")["w"]
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, values.float().numpy())


def test_views_transposes_and_shared_storages_are_read_as_their_own_arrays(tmp_path):
    base = torch.arange(24.0).reshape(4, 6)
    state = {"base": base, "t": base.t(), "slice": base[1:3, 2:5], "step": base[::2, ::3],
             "expanded": torch.arange(3.0).expand(2, 3), "row": base[3]}
    torch.save(state, tmp_path / "v.pth")
    loaded = load_torch(tmp_path / "v.pth")
    for name, tensor in state.items():
        np.testing.assert_array_equal(loaded[name], tensor.numpy(), err_msg=name)
    loaded["base"][0, 0] = -1.0  # copies: writing one array leaves the views that shared its storage alone
    assert loaded["t"][0, 0] == 0.0 and loaded["base"].flags.writeable


def test_nested_checkpoints_keep_their_structure_and_python_values(tmp_path):
    inner = collections.OrderedDict([("conv.weight", torch.ones(2, 1, 1, 1)), ("bn.num_batches_tracked", torch.tensor(7))])
    torch.save({"model": inner, "epoch": 3, "name": "run", "lrs": [0.1, 0.01], "best": None}, tmp_path / "c.pth")
    loaded = load_torch(tmp_path / "c.pth")
    assert type(loaded["model"]) is dict and list(loaded["model"]) == ["conv.weight", "bn.num_batches_tracked"]
    assert loaded["epoch"] == 3 and loaded["name"] == "run" and loaded["lrs"] == [0.1, 0.01] and loaded["best"] is None
    assert loaded["model"]["bn.num_batches_tracked"].dtype == np.int64 and loaded["model"]["bn.num_batches_tracked"] == 7


def test_a_torch_models_state_dict_gives_tinycnn_the_same_outputs(tmp_path):
    torch.manual_seed(0)
    reference = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                    torch.nn.Flatten(), torch.nn.Linear(4 * 5 * 5, 3))
    reference[1].running_mean.uniform_(-1, 1)
    reference[1].running_var.uniform_(0.5, 2)
    reference.eval()
    torch.save(reference.state_dict(), tmp_path / "model.pth")
    state = load_torch(tmp_path / "model.pth")
    assert set(state) == set(reference.state_dict())  # num_batches_tracked included
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(100, 3))
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert missing == [] and unexpected == ["1.num_batches_tracked"]  # tinycnn's BatchNorm keeps no count
    model.eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 5)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    # float32 sums of 27 and 100 products of O(1) values: a few ulps of the O(1) logits
    np.testing.assert_allclose(model(tinycnn.Tensor(x)).numpy(), expected, rtol=1e-5, atol=1e-5)


class _Payload:
    """Unpickled by pickle.load, it runs ``command`` (here: creates a marker file)."""

    def __init__(self, call, argument):
        self.call, self.argument = call, argument

    def __reduce__(self):
        return self.call, (self.argument,)


@pytest.mark.parametrize("call", [os.system, eval], ids=["os.system", "builtins.eval"])
def test_a_malicious_pickle_is_refused_without_running_it(tmp_path, call):
    marker = tmp_path / "pwned"
    argument = f"touch {marker}" if call is os.system else f"open({str(marker)!r}, 'w').close()"
    path = tmp_path / "evil.pth"
    torch.save({"extra": _Payload(call, argument), "conv.weight": torch.ones(2)}, path)
    with pytest.raises(CheckpointError) as error:
        load_torch(path)
    assert str(path) in str(error.value) and f".{call.__name__}" in str(error.value) and "refused" in str(error.value)
    assert not marker.exists()
    # the payload is real: Python's own unpickler runs it (in a child process)
    with zipfile.ZipFile(path) as archive:
        data = archive.read("evil/data.pkl")
    code = "import pickle, sys; pickle.loads(sys.stdin.buffer.read())"
    subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, timeout=60)
    assert marker.exists()


def _write_pth(path, obj, records):
    """A torch.save-like zip whose pickle names the real torch globals but whose tensors we choose."""
    class Pickler(pickle.Pickler):
        def persistent_id(self, value):
            return value.pid if isinstance(value, _Storage) else None
    with open(path, "wb") as f, zipfile.ZipFile(f, "w") as archive:
        with archive.open("archive/data.pkl", "w") as member:
            Pickler(member, protocol=2).dump(obj)
        archive.writestr("archive/byteorder", "little")
        for key, data in records.items():
            archive.writestr(f"archive/data/{key}", data)


class _Storage:
    def __init__(self, key, numel, kind=None):
        self.pid = ("storage", kind or torch.FloatStorage, key, "cpu", numel)


class _View:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return torch._utils._rebuild_tensor_v2, self.args


def test_a_handwritten_file_reads_like_torch_and_its_big_endian_storages_are_swapped(tmp_path):
    data = np.arange(6, dtype=np.float32)
    _write_pth(tmp_path / "ok.pth", {"w": _View(_Storage("0", 6), 1, (2, 2), (1, 2))}, {"0": data.tobytes()})
    np.testing.assert_array_equal(load_torch(tmp_path / "ok.pth")["w"], [[1, 3], [2, 4]])
    with zipfile.ZipFile(tmp_path / "big.pth", "w") as archive:
        with zipfile.ZipFile(tmp_path / "ok.pth") as source:
            archive.writestr("archive/data.pkl", source.read("archive/data.pkl"))
        archive.writestr("archive/byteorder", "big")
        archive.writestr("archive/data/0", data.astype(">f4").tobytes())
    np.testing.assert_array_equal(load_torch(tmp_path / "big.pth")["w"], [[1, 3], [2, 4]])


@pytest.mark.parametrize("obj, records, message", [
    ({"w": _View(_Storage("0", 6), 4, (2, 2), (1, 2))}, {"0": bytes(24)}, "reaches element 7 of a FloatStorage of 6"),
    ({"w": _View(_Storage("0", 6), 0, (2, 3), (3, 1))}, {"0": bytes(20)}, "holds 20 bytes"),
    ({"w": _View(_Storage("1", 6), 0, (6,), (1,))}, {"0": bytes(24)}, "storage 'archive/data/1' is missing"),
    ({"w": _View(_Storage("0", 6), -1, (2,), (1,))}, {"0": bytes(24)}, "offset -1"),
    ({"w": _View(_Storage("0", 6, torch.nn.Module), 0, (2,), (1,))}, {"0": bytes(24)}, "torch.nn.modules.module.Module"),
    ([1, 2], {}, "holds a list, not a dict"),
], ids=["view-past-the-end", "short-record", "missing-record", "negative-offset", "other-class", "not-a-dict"])
def test_files_that_lie_about_their_tensors_are_refused_naming_the_file(tmp_path, obj, records, message):
    path = tmp_path / "bad.pth"
    _write_pth(path, obj, records)
    with pytest.raises(CheckpointError, match="load_torch") as error:
        load_torch(path)
    assert str(path) in str(error.value) and message in str(error.value)


def test_legacy_damaged_oversized_and_missing_files_get_clear_errors(tmp_path):
    torch.save({"w": torch.ones(100)}, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="legacy"):
        load_torch(tmp_path / "legacy.pth")
    torch.save({"w": torch.ones(100)}, tmp_path / "good.pth")
    whole = (tmp_path / "good.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(whole[:len(whole) // 2])
    with pytest.raises(CheckpointError, match="cut.pth"):
        load_torch(tmp_path / "cut.pth")
    with pytest.raises(CheckpointError, match="max_bytes=100"):
        load_torch(tmp_path / "good.pth", max_bytes=100)
    assert load_torch(tmp_path / "good.pth", max_bytes=10_000)["w"].shape == (100,)
    (tmp_path / "text.pth").write_text("hello")
    with pytest.raises(CheckpointError, match="not a PyTorch file"):
        load_torch(tmp_path / "text.pth")
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        load_torch(tmp_path / "nowhere.pth")


# ----- safetensors --------------------------------------------------------------------
def _small_model():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))


def test_a_models_state_round_trips_and_loads_into_a_fresh_model(tmp_path):
    pytest.importorskip("safetensors")
    model = _small_model()
    model[1].running_mean[...] = np.arange(4.0)
    save_safetensors(model, tmp_path / "m.safetensors")
    state = load_safetensors(tmp_path / "m.safetensors")
    fresh = _small_model()
    fresh.load_state_dict(state)
    for name, value in model.state_dict().items():
        assert state[name].dtype == np.asarray(value).dtype
        np.testing.assert_array_equal(fresh.state_dict()[name], value, err_msg=name)


def test_nested_dicts_become_dotted_names_and_every_number_dtype_round_trips(tmp_path):
    pytest.importorskip("safetensors")
    rng = np.random.default_rng(0)
    arrays = {"f64": rng.standard_normal((3, 2)), "f16": rng.standard_normal(4).astype(np.float16),
              "i64": np.arange(-2, 2), "u8": np.arange(3, dtype=np.uint8), "b": np.array([True, False]),
              "scalar": np.float32(1.5), "transposed": rng.standard_normal((2, 5)).T}
    save_safetensors({"block": {"inner": arrays}, "top.weight": tinycnn.Tensor(np.ones(2, np.float32))},
                     tmp_path / "n.safetensors", metadata={"format": "np"})
    loaded = load_safetensors(tmp_path / "n.safetensors")
    assert set(loaded) == {f"block.inner.{name}" for name in arrays} | {"top.weight"}
    for name, value in arrays.items():
        assert loaded[f"block.inner.{name}"].dtype == np.asarray(value).dtype
        np.testing.assert_array_equal(loaded[f"block.inner.{name}"], value)


def test_files_cross_between_torch_safetensors_and_tinycnn_both_ways(tmp_path):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    torch.manual_seed(0)
    tensors = {"conv.weight": torch.randn(4, 3, 3, 3), "bn.running_var": torch.rand(4, dtype=torch.float64),
               "steps": torch.tensor(5), "half": torch.randn(3).bfloat16()}
    safetensors_torch.save_file(tensors, tmp_path / "torch.safetensors")
    loaded = load_safetensors(tmp_path / "torch.safetensors")
    for name, tensor in tensors.items():
        expected = tensor.float().numpy() if tensor.dtype == torch.bfloat16 else tensor.numpy()
        assert loaded[name].dtype == expected.dtype
        np.testing.assert_array_equal(loaded[name], expected, err_msg=name)
    save_safetensors({"w": np.arange(6.0).reshape(2, 3)}, tmp_path / "ours.safetensors")
    back = safetensors_torch.load_file(tmp_path / "ours.safetensors")
    assert torch.equal(back["w"], torch.arange(6.0, dtype=torch.float64).reshape(2, 3))


def test_damaged_oversized_and_missing_safetensors_files_get_errors_naming_the_file(tmp_path):
    pytest.importorskip("safetensors")
    save_safetensors({"w": np.ones(100, np.float32)}, tmp_path / "good.safetensors")
    whole = (tmp_path / "good.safetensors").read_bytes()
    damaged = {"cut": whole[:-7], "junk": b"not a safetensors file at all",
               "header": (10**9).to_bytes(8, "little") + whole[8:], "empty": b""}
    for name, data in damaged.items():
        (tmp_path / f"{name}.safetensors").write_bytes(data)
        with pytest.raises(CheckpointError, match=f"load_safetensors: .*{name}.safetensors"):
            load_safetensors(tmp_path / f"{name}.safetensors")
    with pytest.raises(CheckpointError, match="max_bytes=100"):
        load_safetensors(tmp_path / "good.safetensors", max_bytes=100)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_safetensors(tmp_path / "nowhere.safetensors")


def test_save_safetensors_refuses_non_arrays_before_writing_and_replaces_files_atomically(tmp_path, monkeypatch):
    pytest.importorskip("safetensors")
    path = tmp_path / "w.safetensors"
    save_safetensors({"w": np.zeros(2)}, path)
    for bad in ({"epoch": 3}, {"name": np.array(["a"])}, {"a.b": np.ones(1), "a": {"b": np.ones(1)}}):
        with pytest.raises((TypeError, ValueError), match="save_safetensors: .*'(a.b|epoch|name)'"):
            save_safetensors(bad, path)
    def broken_replace(source, target):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        save_safetensors({"w": np.ones(2)}, path)
    monkeypatch.undo()
    np.testing.assert_array_equal(load_safetensors(path)["w"], np.zeros(2))  # the old file, whole
    assert os.listdir(tmp_path) == ["w.safetensors"]  # and no temp file left behind
