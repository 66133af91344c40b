"""Keras weights (``.h5``, ``.weights.h5`` and ``.keras`` files, read with h5py) for MiniVGG, VGG-16 and ResNet-50.

Keras stores, per layer, a list of arrays in channels-last order; ``load_keras`` maps each
Keras layer to a tinycnn module through one table per model (``keras_table(model)`` returns it)
and converts what the layouts differ in:

- Conv2D kernels are (kh, kw, in, out) ("HWIO"); tinycnn's are (out, in, kh, kw): transposed.
- Dense kernels are (in, out); tinycnn's Linear weight is (out, in): transposed.
- The Dense layer after Flatten saw its input flattened channels-last, (H, W, C); tinycnn
  flattens (C, H, W), so that kernel's rows are re-ordered.
- BatchNormalization holds gamma, beta, moving_mean, moving_variance. Keras divides by
  sqrt(variance + epsilon) with its own epsilon (1e-3 by default, 1.001e-5 in ResNet50),
  tinycnn by sqrt(running_var + eps) with the module's eps (1e-5): the difference is added
  to running_var, so inference is exact; in training mode the batch statistics use tinycnn's eps.
- Keras' ResNet50 convolutions have a bias, tinycnn's have none (a BatchNorm follows each):
  the bias is folded into the BatchNorm's running mean (exact in both modes).

Three file layouts are read: Keras 2's ``model.save("m.h5")`` (the layers under
``model_weights``) and ``model.save_weights("w.h5")`` (the layers at the top), each layer a
group whose ``weight_names`` attribute lists its arrays in order; and Keras 3's ``.keras``
zip, whose ``model.weights.h5`` (the same as a ``.weights.h5`` file) keeps each layer's
arrays as ``layers/<path>/vars/0, 1, ...`` with the layer's name in the ``vars`` group's
``name`` attribute. Needs ``pip install tinycnn[weights]`` (h5py). Typical use::

    model = tinycnn.models.get("resnet50")
    tinycnn.io.load_keras("resnet50_weights_tf_dim_ordering_tf_kernels.h5", model)
"""
import io
import os
import re
import zipfile

import numpy as np

from . import MAX_LOAD_BYTES, CheckpointError
from .keras_tables import keras_table


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError("Keras files need the h5py package: pip install tinycnn[weights]") from None
    return h5py


def read_keras(path, max_bytes=None):
    """``{layer name: [arrays in Keras' order]}`` of every layer with weights in a Keras file.

    ``max_bytes`` caps the arrays' total size (default ``tinycnn.io.MAX_LOAD_BYTES``), checked
    from the datasets' shapes before any data is read. Raises FileNotFoundError for a missing
    file and CheckpointError (a ValueError) naming the file for one that is not a Keras file,
    is damaged or too large.
    """
    h5py = _h5py()
    path = os.fspath(path)
    limit = MAX_LOAD_BYTES if max_bytes is None else max_bytes
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError(f"read_keras: max_bytes must be a non-negative int, got {max_bytes!r}")
    if not os.path.exists(path):
        raise FileNotFoundError(f"read_keras: no such file {path!r}")
    try:
        source = path
        if zipfile.is_zipfile(path):  # Keras 3's .keras: config.json, metadata.json, model.weights.h5
            with zipfile.ZipFile(path) as archive:
                if "model.weights.h5" not in archive.namelist():
                    raise CheckpointError(f"read_keras: {path!r} is a zip without model.weights.h5, not a .keras file")
                size = archive.getinfo("model.weights.h5").file_size
                if size > limit:
                    raise CheckpointError(f"read_keras: {path!r}: model.weights.h5 is {size} bytes, "
                                          f"more than max_bytes={limit}")
                source = io.BytesIO(archive.read("model.weights.h5"))
        with h5py.File(source, "r") as f:
            layers = _keras3_layers(f) if "layers" in f else _keras2_layers(f)
            total = sum(dataset.size * dataset.dtype.itemsize for weights in layers.values() for dataset in weights)
            if total > limit:
                raise CheckpointError(f"read_keras: {path!r} holds {total} bytes of weights, "
                                      f"more than max_bytes={limit}; pass a larger max_bytes")
            return {name: [_read(dataset, path, name) for dataset in weights] for name, weights in layers.items()}
    except (OSError, KeyError, ValueError, TypeError, AttributeError, zipfile.BadZipFile) as error:
        if isinstance(error, CheckpointError):
            raise
        raise CheckpointError(f"read_keras: {path!r} is damaged or not a Keras weights file "
                              f"({type(error).__name__}: {error})") from None


def _keras2_layers(f):
    """Keras 2 (and Keras 3's legacy .h5): ``[model_weights/]<layer>/...`` listed by the attributes."""
    group = f["model_weights"] if "model_weights" in f else f
    if "layer_names" not in group.attrs:
        raise KeyError("no 'layer_names' attribute (nor Keras 3's 'layers' group)")
    layers = {}
    for name in map(_text, group.attrs["layer_names"]):
        weight_names = [_text(weight) for weight in group[name].attrs.get("weight_names", [])]
        if weight_names:
            layers[name] = [group[name][weight] for weight in weight_names]
    return layers


def _keras3_layers(f, prefix="layers", layers=None):
    """Keras 3: ``layers/<key>/vars/0, 1, ...``, nested models under ``layers/<key>/layers``."""
    layers = {} if layers is None else layers
    for key, group in f[prefix].items():
        if "vars" in group and len(group["vars"]):
            name = _text(group["vars"].attrs.get("name", key))
            if name in layers:
                raise ValueError(f"two layers are named {name!r}")
            layers[name] = [group["vars"][str(index)] for index in range(len(group["vars"]))]
        if "layers" in group:
            _keras3_layers(f, f"{prefix}/{key}/layers", layers)
    return layers


def _read(dataset, path, layer):
    if dataset.dtype.kind != "f":
        raise CheckpointError(f"read_keras: {path!r}: layer {layer!r} holds a {dataset.dtype} array, not floats")
    return np.asarray(dataset[()])


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def load_keras(path, model, strict=True, max_bytes=None):
    """Load a Keras file's weights into tinycnn's MiniVGG, VGG-16 or ResNet-50 ``model``, in place.

    The Keras layers are found by their names in ``keras_table(model)`` (Keras applications'
    names for VGG16 and ResNet50; MiniVGG's are the same style) or, in a file whose layers all
    kept Keras' default names (``conv2d_3``, ``batch_normalization``, ``dense_1``: a Sequential
    model built without names, as the lecture notes build MiniVGG), by their order. Returns ``(missing,
    unexpected)``: the tinycnn state_dict keys the file did not set and the Keras layers with
    weights the table does not use; with ``strict`` (the default) either raises CheckpointError.
    Arrays of the wrong count or shape raise CheckpointError naming the file and the layer.
    """
    path = os.fspath(path)
    table = keras_table(model)
    layers = read_keras(path, max_bytes)
    if not any(row.keras in layers for row in table.rows):
        layers = _by_creation_order(table, layers, path)
    own, modules = model.state_dict(), dict(model.named_modules())
    state, folded = {}, {}
    for row in table.rows:
        if row.keras in layers:
            state.update(_convert(row, layers[row.keras], table, own, modules, folded, path))
    unexpected = [name for name in layers if name not in {row.keras for row in table.rows}]
    missing = [key for key in own if key not in state]
    if strict and (missing or unexpected):
        raise CheckpointError(f"load_keras: {path!r} does not match tinycnn's {table.name}: missing "
                              f"{_some(missing)}, unexpected Keras layers {_some(unexpected)} "
                              f"(strict=False loads the rest)")
    model.load_state_dict(state, strict=False)
    return missing, unexpected


_DEFAULT_NAME = re.compile(r"(conv2d|batch_normalization|dense)(?:_(\d+))?")
_KIND_OF_DEFAULT = {"conv2d": "conv", "batch_normalization": "bn", "dense": "dense"}


def _by_creation_order(table, layers, path):
    """A Keras model whose layers kept their default names (``conv2d``, ``conv2d_1``, ...,
    ``batch_normalization``, ``dense``): each kind's layers, in the order Keras created them,
    take the table's rows of that kind in order."""
    found = {}
    for name in layers:
        match = _DEFAULT_NAME.fullmatch(name)
        if match is None:
            return layers  # neither the table's names nor default ones: load_keras reports what is missing
        found.setdefault(_KIND_OF_DEFAULT[match[1]], []).append((int(match[2] or 0), name))
    renamed = {}
    for kind in ("conv", "bn", "dense"):
        rows = [row for row in table.rows if row.kind.replace("flat_", "") == kind]
        names = [name for _, name in sorted(found.get(kind, []))]
        if len(rows) != len(names):
            raise CheckpointError(f"load_keras: {path!r} has Keras' default layer names, and {len(names)} layers "
                                  f"of kind {kind} where tinycnn's {table.name} has {len(rows)}")
        renamed.update((row.keras, layers[name]) for row, name in zip(rows, names))
    return renamed


def _convert(row, weights, table, own, modules, folded, path):
    """The tinycnn state entries of one Keras layer."""
    def fail(message):
        return CheckpointError(f"load_keras: {path!r}: Keras layer {row.keras!r} ({row.kind}) {message}")

    expected = {"conv": (1, 2), "dense": (1, 2), "flat_dense": (1, 2), "bn": (4,)}[row.kind]
    if len(weights) not in expected:
        raise fail(f"holds {len(weights)} arrays, expected {' or '.join(map(str, expected))}")
    if row.kind == "bn":
        gamma, beta, mean, variance = weights
        mean = mean - folded.pop(row.tinycnn, 0.0)  # BN(conv + b) with mean m == BN(conv) with mean m - b
        eps = modules[row.tinycnn].eps if row.tinycnn in modules else table.eps
        arrays = {"weight": gamma, "bias": beta, "running_mean": mean, "running_var": variance + (table.eps - eps)}
    else:
        kernel, bias = weights[0], (weights[1] if len(weights) == 2 else None)
        if row.kind == "conv":
            if kernel.ndim != 4:
                raise fail(f"has a kernel of shape {kernel.shape}, not (kh, kw, in, out)")
            kernel = kernel.transpose(3, 2, 0, 1)
        else:
            if kernel.ndim != 2:
                raise fail(f"has a kernel of shape {kernel.shape}, not (in, out)")
            if row.kind == "flat_dense":
                kernel = _channels_first_rows(kernel, table.flat_shape, fail)
            kernel = kernel.T
        arrays = {"weight": kernel}
        if bias is not None and f"{row.tinycnn}.bias" not in own and row.fold_into:
            folded[row.fold_into] = bias
        elif bias is not None:
            arrays["bias"] = bias
    entries = {f"{row.tinycnn}.{name}": np.ascontiguousarray(value, dtype=np.float32) for name, value in arrays.items()}
    for key, value in entries.items():
        if key not in own:
            raise fail(f"has a {key.rsplit('.', 1)[1]}, tinycnn's {row.tinycnn} does not")
        if value.shape != tuple(own[key].shape):
            raise fail(f"gives {key} the shape {value.shape}, tinycnn's model has {tuple(own[key].shape)}")
    return entries


def _channels_first_rows(kernel, flat_shape, fail):
    """Rows of a Dense kernel fed by Flatten: Keras' (H, W, C) order -> tinycnn's (C, H, W)."""
    channels, height, width = flat_shape
    if kernel.shape[0] != channels * height * width:
        raise fail(f"has {kernel.shape[0]} inputs, tinycnn's flattened map is {channels}x{height}x{width}")
    rows = kernel.reshape(height, width, channels, kernel.shape[1])
    return rows.transpose(2, 0, 1, 3).reshape(kernel.shape)


def _some(names, count=5):
    return "[" + ", ".join(names[:count]) + (", ..." if len(names) > count else "") + "]"
