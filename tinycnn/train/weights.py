"""Start a model from weights trained elsewhere: ``init_from(model, path)``, behind ``tinycnn train
--init-from``. The format is read from the file's first bytes (its extension when they say nothing):

    tinycnn checkpoint (.npz)   a zip of .npy members: its ``model`` entry (or the whole file)
    PyTorch (.pth, .pt)         a zip holding data.pkl, or a pickle: tinycnn.io.load_torch, no torch,
                                with torchvision's key names mapped by tinycnn.models.from_torchvision
    safetensors (.safetensors)  an 8-byte header length then JSON: tinycnn.io.load_safetensors
    Keras (.h5, .keras)         HDF5's signature, or a zip holding model.weights.h5: tinycnn.models.from_keras

A classifier whose shape differs (weights for 1000 classes, a model for 10) is left as the model
built it, freshly initialised: the usual start of fine-tuning. Any other difference is an error.

    init_from(model, "resnet18-f37072fd.pth")      # torchvision's ImageNet weights
"""
import os
import zipfile

import numpy as np

from .builders import RecipeError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def weights_format(path):
    """"tinycnn", "torch", "safetensors" or "keras" from the file's content (and extension); RecipeError else."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise RecipeError(f"init-from: no such file {path!r}")
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(HDF5_SIGNATURE):
        return "keras"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if "model.weights.h5" in names:
            return "keras"
        if any(name.endswith("data.pkl") for name in names):
            return "torch"
        if names and all(name.endswith(".npy") for name in names):
            return "tinycnn"
    elif head[:1] == b"\x80" and path.endswith((".pth", ".pt", ".bin")):  # torch's legacy pickle format
        return "torch"
    elif len(head) >= 9 and head[8:9] == b"{" and path.endswith(".safetensors"):
        return "safetensors"
    raise RecipeError(f"init-from: cannot tell the format of {path!r}; expected a tinycnn checkpoint (.npz), "
                      f"PyTorch (.pth/.pt), safetensors (.safetensors) or Keras (.h5/.keras) weights")


def _from_torchvision(state, model_name):
    """``(state in the zoo's names, {option: value} of the torchvision variant)`` when ``state`` is the
    state_dict of a torchvision model built as the zoo's ``model_name``; else ``(state, {})``."""
    from ..models.torchvision import TORCHVISION_MODELS, _arrays, from_torchvision, torchvision_options
    for name, entry in TORCHVISION_MODELS.items():
        if entry.model != model_name:
            continue
        try:
            arrays = _arrays(state)
            mapped = from_torchvision(name, arrays).state_dict()
        except (KeyError, ValueError, TypeError):
            continue                              # not this variant's names
        return mapped, {"torchvision": name, **torchvision_options(name, arrays)[1]}
    return state, {}


def check_variant(variant, model_name, model_options, path):
    """RecipeError when torchvision weights need builder options (ResNet-50's stride_on="3x3", VGG's
    batch_norm, ...) that ``model_options`` (with the builder's defaults) do not have: such weights
    would load without an error into a network that computes something else."""
    from .builders import builder_defaults
    defaults = builder_defaults(model_name)
    for key, value in variant.items():
        if key in ("torchvision", "num_classes", "dropout"):
            continue
        options = {**defaults, **(model_options or {})}
        if key not in options or _plain(options[key]) != _plain(value):
            has = f"{key}={options[key]!r}" if key in options else "the builder's default"
            raise RecipeError(f"init-from: {path} holds torchvision's {variant['torchvision']} weights, which need "
                              f"the model built with {key}={value!r} (it has {has}): pass -o {key}={value!r}")


def _plain(value):
    return list(value) if isinstance(value, (tuple, list)) else value


def read_weights(path, model_name=None, model=None):
    """``(state, format, variant)``: the file's weights as a flat dict of arrays in tinycnn's names.

    ``model_name`` (the zoo name) lets torchvision's names be mapped to the zoo's (``variant``: the
    builder options of torchvision's layout, else {}); a Keras file is read into a copy of ``model``
    (with the file's number of classes) through its layer table."""
    import copy
    from .. import models
    from .. import io
    from ..io import CheckpointError, load, load_safetensors, load_torch
    from ..nn.module import _flatten

    kind, variant = weights_format(path), {}
    try:
        if kind == "tinycnn":
            state = load(path)
            state = state["model"] if isinstance(state.get("model"), dict) else state
        elif kind == "safetensors":
            state = load_safetensors(path)
        elif kind == "torch":
            state = load_torch(path)
            for key in ("state_dict", "model"):   # training scripts often wrap the state_dict
                if len(state) == 1 and isinstance(state.get(key), dict):
                    state = state[key]
            state, variant = _from_torchvision(state, model_name)
        else:
            if model is None:
                raise RecipeError(f"init-from: reading the Keras file {path!r} needs the model")
            twin = copy.deepcopy(model)
            classes = models.keras_classes(path)
            if classes != models.find_head(twin)[1].weight.shape[0]:
                models.replace_head(twin, classes)
            io.load_keras(path, twin)
            state = twin.state_dict()
    except (CheckpointError, ImportError, KeyError) as error:
        raise RecipeError(f"init-from: {error}") from None
    return {k: np.asarray(v) for k, v in _flatten(state).items()}, kind, variant


def init_from(model, path, model_name=None, model_options=None):
    """Load the weights of ``path`` (any format above) into ``model`` in place, keeping a new head when the
    file's has another number of classes; returns ``(format, kept)``, ``kept`` the names left as built.

    Raises RecipeError naming the file for missing or unexpected names, shapes that differ
    elsewhere than in the head, and (given ``model_options``, the options ``model`` was built with)
    torchvision weights whose variant the model was not built in."""
    from ..models import find_head

    state, kind, variant = read_weights(path, model_name, model)
    if variant and model_options is not None:
        check_variant(variant, model_name, model_options, path)
    own = model.state_dict()
    head_name, _ = find_head(model)
    head_keys = {k for k in own if k.startswith(head_name + ".")}
    aux = {k for k in own if any(p.lower().startswith("aux") for p in k.split("."))}
    kept = sorted(k for k in own if k in state and np.shape(state[k]) != tuple(own[k].shape) and k in head_keys | aux)
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {np.shape(state[k])} vs {tuple(own[k].shape)}" for k in own
             if k in state and k not in kept and np.shape(state[k]) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        raise RecipeError(f"init-from: {path} ({kind}) does not fit {type(model).__name__}: missing {missing[:5]}, "
                          f"unexpected {unexpected[:5]}, shapes differ (file vs model) {wrong[:5]}")
    model.load_state_dict({k: v for k, v in state.items() if k not in kept}, strict=False)
    return kind, kept
