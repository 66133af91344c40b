"""Weights in: PyTorch .pth files read without torch's unpickler, safetensors, Keras .h5/.keras."""
import collections
import io
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import tinycnn
import tinycnn.models
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
    inner = collections.OrderedDict([("conv.weight", torch.ones(2, 1, 1, 1)),
                                     ("bn.num_batches_tracked", torch.tensor(7))])
    torch.save({"model": inner, "epoch": 3, "name": "run", "lrs": [0.1, 0.01], "best": None,
                "parameter": torch.nn.Parameter(torch.arange(3.0))}, tmp_path / "c.pth")
    loaded = load_torch(tmp_path / "c.pth")
    np.testing.assert_array_equal(loaded["parameter"], [0.0, 1.0, 2.0])  # through torch's _rebuild_parameter
    assert type(loaded["model"]) is dict and list(loaded["model"]) == ["conv.weight", "bn.num_batches_tracked"]
    assert loaded["epoch"] == 3 and loaded["name"] == "run" and loaded["lrs"] == [0.1, 0.01] and loaded["best"] is None
    count = loaded["model"]["bn.num_batches_tracked"]
    assert count.dtype == np.int64 and count == 7


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
    subprocess.run([sys.executable, "-I", "-S", "-c", code], input=data, capture_output=True, timeout=60)
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
    ({"w": _View(_Storage("0", 6, torch.nn.Module), 0, (2,), (1,))}, {"0": bytes(24)},
     "torch.nn.modules.module.Module"),
    ([1, 2], {}, "holds a list, not a dict"),
    ({"w": _View(_Storage("0", 1), 0, (10**6, 10**6), (0, 0))}, {"0": bytes(4)}, "more than is left of max_bytes"),
], ids=["view-past-the-end", "short-record", "missing-record", "negative-offset", "other-class", "not-a-dict",
        "huge-stride-0-view"])
def test_files_that_lie_about_their_tensors_are_refused_naming_the_file(tmp_path, obj, records, message):
    path = tmp_path / "bad.pth"
    _write_pth(path, obj, records)
    with pytest.raises(CheckpointError, match="load_torch") as error:
        load_torch(path)
    assert str(path) in str(error.value) and message in str(error.value)


def test_a_whole_pickled_model_is_refused_naming_its_class(tmp_path):
    torch.save(torch.nn.Linear(2, 3), tmp_path / "module.pth")
    with pytest.raises(CheckpointError, match="module.pth.*torch.nn.modules.linear.Linear"):
        load_torch(tmp_path / "module.pth")


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


# ----- Keras --------------------------------------------------------------------------
# The files are written here with h5py in the layouts Keras writes (checked against Keras 3.15's own
# files); the expected logits come from a NumPy channels-last forward pass, as Keras computes it.
def _conv(x, kernel, bias, stride=1, pad=0):
    """Keras Conv2D on NHWC with an HWIO kernel (pad: the zero padding of 'same' or ZeroPadding2D)."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    kh, kw = kernel.shape[:2]
    height, width = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
    patches = np.concatenate([x[:, i:i + stride * height:stride, j:j + stride * width:stride]
                              for i in range(kh) for j in range(kw)], axis=-1)  # (i, j, c) as HWIO's rows
    return patches @ kernel.reshape(-1, kernel.shape[-1]) + bias


def _bn(x, gamma, beta, mean, variance, eps):
    return (x - mean) / np.sqrt(variance + eps) * gamma + beta


def _max_pool(x, size, stride, pad=0):
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))  # after a ReLU, as in Keras' pool1_pad
    height, width = (x.shape[1] - size) // stride + 1, (x.shape[2] - size) // stride + 1
    return np.max([x[:, i:i + stride * height:stride, j:j + stride * width:stride]
                   for i in range(size) for j in range(size)], axis=0)


def _relu(x):
    return np.maximum(x, 0)


def _keras_minivgg(rng, height, width, classes):
    """The lecture notes' Keras MiniVGG: {layer: [arrays]} with Keras' names and shapes, and its forward pass."""
    layers, channels = {}, 3
    for block, width_out in ((1, 32), (2, 64)):
        for index in (1, 2):
            kernel = rng.normal(0, (2 / (9 * channels)) ** 0.5, (3, 3, channels, width_out))
            layers[f"block{block}_conv{index}"] = [kernel, rng.normal(0, 0.1, width_out)]
            layers[f"block{block}_bn{index}"] = _random_bn(rng, width_out)
            channels = width_out
    flat = 64 * (height // 4) * (width // 4)
    layers["fc1"] = [rng.normal(0, (2 / flat) ** 0.5, (flat, 512)), rng.normal(0, 0.1, 512)]
    layers["fc1_bn"] = _random_bn(rng, 512)
    layers["predictions"] = [rng.normal(0, (1 / 512) ** 0.5, (512, classes)), rng.normal(0, 0.1, classes)]
    layers = _float32(layers)

    def forward(x):
        for block in (1, 2):
            for index in (1, 2):
                x = _relu(_conv(x, *layers[f"block{block}_conv{index}"], pad=1))
                x = _bn(x, *layers[f"block{block}_bn{index}"], eps=1e-3)
            x = _max_pool(x, 2, 2)
        x = x.reshape(len(x), -1)  # Flatten: channels-last order
        x = _bn(_relu(x @ layers["fc1"][0] + layers["fc1"][1]), *layers["fc1_bn"], eps=1e-3)
        return x @ layers["predictions"][0] + layers["predictions"][1]
    return layers, forward


def _float32(layers):
    """Keras stores float32; the NumPy forward passes then run in float64 on the same numbers."""
    return {name: [array.astype(np.float32) for array in arrays] for name, arrays in layers.items()}


def _random_bn(rng, channels):
    return [rng.uniform(0.5, 1.5, channels), rng.normal(0, 0.1, channels), rng.normal(0, 0.1, channels),
            rng.uniform(0.5, 2.0, channels)]


_KINDS = {2: "dense", 4: "batch_normalization"}


def _write_keras(path, layers, layout):
    """``layers`` ({name: [arrays]}) in one of Keras' file layouts, float32 as Keras stores them."""
    h5py = pytest.importorskip("h5py")
    names = list(layers) + ["flatten"]  # a layer without weights, listed as Keras lists it
    if layout in ("keras2_model", "keras2_weights"):
        with h5py.File(path, "w") as f:
            group = f.create_group("model_weights") if layout == "keras2_model" else f
            if layout == "keras2_model":
                f.attrs["model_config"] = "{}"
            group.attrs["layer_names"] = [name.encode() for name in names]
            group.attrs["backend"], group.attrs["keras_version"] = b"tensorflow", b"2.15.0"
            for name in names:
                arrays = layers.get(name, [])
                kind = "conv" if arrays and arrays[0].ndim == 4 else _KINDS.get(len(arrays), "dense")
                weight_names = {"batch_normalization": ["gamma", "beta", "moving_mean", "moving_variance"]}.get(
                    kind, ["kernel", "bias"])[:len(arrays)]
                layer = group.create_group(name)
                layer.attrs["weight_names"] = [f"{name}/{weight}:0".encode() for weight in weight_names]
                for weight, array in zip(weight_names, arrays):
                    layer.create_dataset(f"{name}/{weight}:0", data=np.asarray(array, np.float32))
        return
    counts = collections.Counter()
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:  # Keras 3: groups named after the class, the layer's name in vars' attrs
        f.create_group("vars")
        for name in names:
            arrays = layers.get(name, [])
            kind = "flatten" if not arrays else "conv2d" if arrays[0].ndim == 4 else _KINDS[len(arrays)]
            key = kind if counts[kind] == 0 else f"{kind}_{counts[kind]}"
            counts[kind] += 1
            variables = f.create_group(f"layers/{key}/vars")
            variables.attrs["name"] = name
            for index, array in enumerate(arrays):
                variables.create_dataset(str(index), data=np.asarray(array, np.float32))
    if layout == "keras3_weights":
        path.write_bytes(buffer.getvalue())
        return
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", '{"keras_version": "3.15.1"}')
        archive.writestr("config.json", "{}")
        archive.writestr("model.weights.h5", buffer.getvalue())


_LAYOUTS = {"keras2_model": "m.h5", "keras2_weights": "w.h5", "keras3": "m.keras", "keras3_weights": "m.weights.h5"}


@pytest.mark.parametrize("layout", list(_LAYOUTS))
def test_minivgg_from_every_keras_layout_gives_keras_logits(tmp_path, layout):
    rng = np.random.default_rng(1)
    layers, forward = _keras_minivgg(rng, 8, 12, classes=5)  # 8x12: a non-square map catches an H/W mix-up
    path = tmp_path / _LAYOUTS[layout]
    _write_keras(path, layers, layout)
    model = tinycnn.models.get("minivgg", num_classes=5, input_shape=(3, 8, 12))
    assert tinycnn.io.load_keras(path, model) == ([], [])
    model.eval()
    x = rng.standard_normal((3, 8, 12, 3)).astype(np.float32)
    expected = forward(np.asarray(x, np.float64).copy())
    logits = model(tinycnn.Tensor(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))).numpy()
    # float32 weights and sums of up to 1536 products, against float64: relative to the logits' scale
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def _keras_vgg16(rng, classes):
    """keras.applications.VGG16's layers (5 blocks of 2, 2, 3, 3, 3 convs, fc1, fc2, predictions)."""
    layers, channels = {}, 3
    for block, (convs, width) in enumerate(zip((2, 2, 3, 3, 3), (64, 128, 256, 512, 512)), start=1):
        for index in range(1, convs + 1):
            layers[f"block{block}_conv{index}"] = [rng.normal(0, (2 / (9 * channels)) ** 0.5, (3, 3, channels, width)),
                                                   rng.normal(0, 0.05, width)]
            channels = width
    for name, inputs, outputs in (("fc1", None, 4096), ("fc2", 4096, 4096), ("predictions", 4096, classes)):
        layers[name] = (inputs, outputs)
    return layers


def test_vgg16_weights_land_on_the_right_layers_and_give_keras_logits(tmp_path):
    rng = np.random.default_rng(2)
    layers = _keras_vgg16(rng, classes=3)
    grid = (1, 2)  # a 32x64 input: fc1 sees a 512x1x2 map, flattened channels-last by Keras
    for name, (inputs, outputs) in [(n, v) for n, v in layers.items() if isinstance(v, tuple)]:
        inputs = inputs or 512 * grid[0] * grid[1]
        layers[name] = [rng.normal(0, (2 / inputs) ** 0.5, (inputs, outputs)), rng.normal(0, 0.05, outputs)]
    layers = _float32(layers)
    _write_keras(tmp_path / "vgg16.h5", layers, "keras2_model")
    model = tinycnn.models.get("vgg16", num_classes=3, input_shape=(3, 32, 64))
    assert tinycnn.io.load_keras(tmp_path / "vgg16.h5", model) == ([], [])
    conv = layers["block4_conv2"][0]
    assert model.features.block4_conv2.weight.numpy()[7, 5, 0, 2] == conv[0, 2, 5, 7]  # HWIO -> OIHW
    fc1 = layers["fc1"][0]
    for c, w, o in ((0, 0, 0), (3, 1, 9), (511, 0, 4095)):  # Keras' row (h, w, c) is tinycnn's column (c, h, w)
        assert model.classifier.fc1.weight.numpy()[o, c * 2 + w] == fc1[w * 512 + c, o]
    np.testing.assert_array_equal(model.classifier.predictions.weight.numpy(), layers["predictions"][0].T)

    x = rng.standard_normal((1, 32, 64, 3))
    expected = x
    for block, convs in enumerate((2, 2, 3, 3, 3), start=1):
        for index in range(1, convs + 1):
            expected = _relu(_conv(expected, *layers[f"block{block}_conv{index}"], pad=1))
        expected = _max_pool(expected, 2, 2)
    expected = expected.reshape(1, -1)
    for name in ("fc1", "fc2"):
        expected = _relu(expected @ layers[name][0] + layers[name][1])
    expected = expected @ layers["predictions"][0] + layers["predictions"][1]
    model.eval()
    logits = model(tinycnn.Tensor(x.transpose(0, 3, 1, 2).astype(np.float32))).numpy()
    # float32 through 16 layers with sums of up to 4,608 products, against float64
    np.testing.assert_allclose(logits, expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())


def _keras_resnet50(rng, classes):
    """keras.applications.ResNet50's layers with weights (biased convs, BN epsilon 1.001e-5) and its forward."""
    layers = {}

    def conv_bn(name, size, inputs, outputs):
        layers[f"{name}_conv"] = [rng.normal(0, (2 / (size * size * inputs)) ** 0.5, (size, size, inputs, outputs)),
                                  rng.normal(0, 0.1, outputs)]
        layers[f"{name}_bn"] = _random_bn(rng, outputs)

    conv_bn("conv1", 7, 3, 64)
    inputs = 64
    stages = [("conv2", 3, 64, 1), ("conv3", 4, 128, 2), ("conv4", 6, 256, 2), ("conv5", 3, 512, 2)]
    for stage, blocks, filters, _ in stages:
        for block in range(1, blocks + 1):
            name = f"{stage}_block{block}"
            if block == 1:
                conv_bn(f"{name}_0", 1, inputs, 4 * filters)
            conv_bn(f"{name}_1", 1, inputs, filters)
            conv_bn(f"{name}_2", 3, filters, filters)
            conv_bn(f"{name}_3", 1, filters, 4 * filters)
            inputs = 4 * filters
    layers["predictions"] = [rng.normal(0, (1 / 2048) ** 0.5, (2048, classes)), rng.normal(0, 0.1, classes)]
    layers = _float32(layers)

    def unit(x, name, stride=1, pad=0):
        return _bn(_conv(x, *layers[f"{name}_conv"], stride=stride, pad=pad), *layers[f"{name}_bn"], eps=1.001e-5)

    def forward(x):
        x = _max_pool(_relu(unit(x, "conv1", stride=2, pad=3)), 3, 2, pad=1)
        for stage, blocks, _, stride in stages:
            for block in range(1, blocks + 1):
                name, step = f"{stage}_block{block}", stride if block == 1 else 1
                shortcut = unit(x, f"{name}_0", stride=step) if block == 1 else x
                out = _relu(unit(x, f"{name}_1", stride=step))  # Keras: the stride on the first 1x1 conv
                out = _relu(unit(out, f"{name}_2", pad=1))
                x = _relu(shortcut + unit(out, f"{name}_3"))
        return x.mean(axis=(1, 2)) @ layers["predictions"][0] + layers["predictions"][1]
    return layers, forward


def test_resnet50_folds_conv_biases_and_epsilon_and_gives_keras_logits(tmp_path):
    rng = np.random.default_rng(3)
    layers, forward = _keras_resnet50(rng, classes=4)
    _write_keras(tmp_path / "resnet50.keras", layers, "keras3")
    model = tinycnn.models.get("resnet50", num_classes=4)
    assert tinycnn.io.load_keras(tmp_path / "resnet50.keras", model) == ([], [])
    assert len(layers) == 53 * 2 + 1  # every conv and BatchNorm of the 50 layers, and the classifier
    block = model.layer3[0]  # conv4_block1: the first block of a stage, with the projection shortcut
    kernel, bias = layers["conv4_block1_0_conv"]
    gamma, beta, mean, variance = layers["conv4_block1_0_bn"]
    np.testing.assert_array_equal(block.downsample[0].weight.numpy(), kernel.transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(block.downsample[1].weight.numpy(), gamma)
    np.testing.assert_allclose(block.downsample[1].running_mean, mean - bias, rtol=1e-6)
    np.testing.assert_allclose(block.downsample[1].running_var, variance + (1.001e-5 - 1e-5), rtol=1e-6)
    np.testing.assert_array_equal(model.layer4[2].conv2.weight.numpy(),
                                  layers["conv5_block3_2_conv"][0].transpose(3, 2, 0, 1))

    model.eval()
    x = rng.standard_normal((1, 32, 32, 3))  # one small image: 53 convs at 32x32 are cheap
    expected = forward(x)
    logits = model(tinycnn.Tensor(x.transpose(0, 3, 1, 2).astype(np.float32))).numpy()
    # float32 through 50 BatchNormed layers against float64: relative to the logits' scale
    np.testing.assert_allclose(logits, expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())


def test_keras_files_that_do_not_fit_the_model_get_errors_naming_the_file_and_layer(tmp_path):
    layers, _ = _keras_minivgg(np.random.default_rng(4), 8, 8, classes=10)
    _write_keras(tmp_path / "ten.keras", layers, "keras3")
    model = tinycnn.models.get("minivgg", num_classes=5, input_shape=(3, 8, 8))
    before = model.classifier.fc1.weight.numpy().copy()
    with pytest.raises(CheckpointError, match=r"ten.keras.*'predictions'.*\(10, 512\).*\(5, 512\)"):
        tinycnn.io.load_keras(tmp_path / "ten.keras", model)
    np.testing.assert_array_equal(model.classifier.fc1.weight.numpy(), before)  # nothing loaded
    bad = dict(layers, block1_conv1=layers["block1_conv1"] + [np.zeros(3, np.float32)])
    _write_keras(tmp_path / "three.keras", bad, "keras3")
    with pytest.raises(CheckpointError, match="three.keras.*'block1_conv1' \\(conv\\) holds 3 arrays"):
        tinycnn.io.load_keras(tmp_path / "three.keras",
                              tinycnn.models.get("minivgg", num_classes=10, input_shape=(3, 8, 8)))


def test_a_file_without_the_top_loads_with_strict_false_and_reports_what_is_missing(tmp_path):
    rng = np.random.default_rng(5)
    layers, _ = _keras_minivgg(rng, 8, 8, classes=10)
    notop = {name: arrays for name, arrays in layers.items() if name.startswith("block")}
    notop["dense_7"] = [np.ones((4, 2), np.float32), np.zeros(2, np.float32)]  # a layer no table knows
    _write_keras(tmp_path / "notop.h5", notop, "keras2_weights")
    model = tinycnn.models.get("minivgg", num_classes=10, input_shape=(3, 8, 8))
    message = r"notop.h5.*missing \[classifier.fc1.weight.*unexpected Keras layers \[dense_7\]"
    with pytest.raises(CheckpointError, match=message):
        tinycnn.io.load_keras(tmp_path / "notop.h5", model)
    missing, unexpected = tinycnn.io.load_keras(tmp_path / "notop.h5", model, strict=False)
    assert unexpected == ["dense_7"]
    assert missing == [key for key in model.state_dict() if key.startswith("classifier.")]
    np.testing.assert_array_equal(model.features.block2_conv2.bias.numpy(), layers["block2_conv2"][1])


def test_damaged_and_oversized_keras_files_are_refused_naming_the_file(tmp_path):
    layers, _ = _keras_minivgg(np.random.default_rng(6), 8, 8, classes=10)
    _write_keras(tmp_path / "good.h5", layers, "keras2_model")
    whole = (tmp_path / "good.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(whole[:len(whole) // 3])
    (tmp_path / "text.h5").write_text("not hdf5")
    with zipfile.ZipFile(tmp_path / "other.keras", "w") as archive:
        archive.writestr("config.json", "{}")
    model = tinycnn.models.get("minivgg", num_classes=10, input_shape=(3, 8, 8))
    for name in ("cut.h5", "text.h5", "other.keras"):
        with pytest.raises(CheckpointError, match=f"read_keras: .*{name}"):
            tinycnn.io.load_keras(tmp_path / name, model)
    with pytest.raises(CheckpointError, match="max_bytes=1000"):
        tinycnn.io.load_keras(tmp_path / "good.h5", model, max_bytes=1000)
    with pytest.raises(FileNotFoundError, match="nowhere.h5"):
        tinycnn.io.load_keras(tmp_path / "nowhere.h5", model)


@pytest.mark.parametrize("name, options, message", [
    ("vgg16", {"batch_norm": True}, "configuration D with BatchNorm"),
    ("vgg19", {}, "configuration E"),
    ("resnet50", {"stride_on": "3x3"}, "stride_on='1x1'"),
    ("resnet18", {}, "no Keras table for a ResNet"),
])
def test_models_keras_has_no_weights_for_are_refused_before_reading(tmp_path, name, options, message):
    model = tinycnn.models.get(name, input_shape=(3, 32, 32), **options) if name.startswith("vgg") \
        else tinycnn.models.get(name, **options)
    with pytest.raises(ValueError, match=message):
        tinycnn.io.load_keras(tmp_path / "never-read.h5", model)


def test_files_keras_itself_writes_give_its_logits(tmp_path, monkeypatch):
    """Where Keras is installed (its torch backend), on files Keras wrote and against its own outputs."""
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(7)
    net = keras.Sequential([keras.Input((8, 12, 3))], name="minivgg")
    for block, channels in ((1, 32), (2, 64)):
        for index in (1, 2):
            net.add(keras.layers.Conv2D(channels, 3, padding="same", activation="relu",
                                        name=f"block{block}_conv{index}"))
            net.add(keras.layers.BatchNormalization(name=f"block{block}_bn{index}"))
        net.add(keras.layers.MaxPooling2D(2))
    for layer in (keras.layers.Flatten(), keras.layers.Dense(512, activation="relu", name="fc1"),
                  keras.layers.BatchNormalization(name="fc1_bn"), keras.layers.Dense(5, name="predictions")):
        net.add(layer)
    resnet = keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=5, classifier_activation=None)
    pairs = ((net, tinycnn.models.get("minivgg", num_classes=5, input_shape=(3, 8, 12)), (8, 12)),
             (resnet, tinycnn.models.get("resnet50", num_classes=5), (32, 32)))
    for keras_model, tinycnn_model, shape in pairs:
        for layer in keras_model.layers:  # random statistics too, so BatchNorm's mapping shows
            if layer.get_weights():
                weights = layer.get_weights()
                layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32) if i % 2 else
                                   rng.normal(0, 0.1, w.shape).astype(np.float32) for i, w in enumerate(weights)])
        x = rng.standard_normal((2, *shape, 3)).astype(np.float32)
        expected = keras.ops.convert_to_numpy(keras_model(x, training=False))
        for path in (tmp_path / f"{keras_model.name}.keras", tmp_path / f"{keras_model.name}.weights.h5"):
            keras_model.save(path) if path.suffix == ".keras" else keras_model.save_weights(path)
            assert tinycnn.io.load_keras(path, tinycnn_model) == ([], [])
            logits = tinycnn_model.eval()(tinycnn.Tensor(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))).numpy()
            # two float32 implementations of the same network: relative to the logits' scale
            np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_a_minivgg_whose_layers_kept_keras_default_names_loads_by_their_order(tmp_path):
    rng = np.random.default_rng(8)
    layers, forward = _keras_minivgg(rng, 8, 8, classes=3)
    # Keras' default names count up per kind in creation order (from 5 here: other models came first);
    # conv2d_10 sorts before conv2d_9 as text, not as Keras created them
    kinds = {"conv": iter(range(7, 11)), "bn": iter([None, 1, 2, 3, 4]), "dense": iter([5, 6])}
    default = {}
    for name, arrays in layers.items():
        kind = "conv" if "conv" in name else "bn" if "bn" in name else "dense"
        number = next(kinds[kind])
        base = {"conv": "conv2d", "bn": "batch_normalization", "dense": "dense"}[kind]
        default[base if number is None else f"{base}_{number}"] = arrays
    _write_keras(tmp_path / "seeds.h5", default, "keras2_model")
    model = tinycnn.models.get("minivgg", num_classes=3, input_shape=(3, 8, 8))
    assert tinycnn.io.load_keras(tmp_path / "seeds.h5", model) == ([], [])
    x = rng.standard_normal((2, 8, 8, 3))
    expected = forward(x)
    logits = model.eval()(tinycnn.Tensor(x.transpose(0, 3, 1, 2).astype(np.float32))).numpy()
    # float32 against float64, as in the MiniVGG test above
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    del default["conv2d_10"]
    _write_keras(tmp_path / "short.h5", default, "keras2_model")
    with pytest.raises(CheckpointError, match="short.h5.*3 layers of kind conv where tinycnn's minivgg has 4"):
        tinycnn.io.load_keras(tmp_path / "short.h5", model)
