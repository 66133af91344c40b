"""Save and load nested state as .npz with hierarchical keys, never pickle.

Nested dicts and dotted names become keys like ``model/features/conv1/weight``; list items are
``[0]``, ``[1]``; Python numbers, bools and strings become 0-d arrays and come
back as Python values. Files are written to a temp file and renamed, so a crash
never leaves a half-written checkpoint.

    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "state.npz")
    >>> save({"model": {"fc.weight": np.ones(2)}, "epoch": 3}, path)
    >>> state = load(path)
    >>> state["epoch"], state["model"]["fc"]["weight"]
    (3, array([1., 1.]))
"""
import os
import tempfile

import numpy as np

from .backend import to_device
from .tensor import Tensor

_NONE = "<none>"


def _flatten(obj, prefix, out):
    if isinstance(obj, dict):
        if not obj and prefix:
            out[prefix + "/<empty-dict>"] = np.zeros(0)
        for key, value in obj.items():
            key = str(key)
            if "/" in key or key.startswith("[") or key.startswith("<"):
                raise ValueError(f"save: key {key!r} may not contain '/' or start with '[' or '<'")
            if "" in key.split("."):
                raise ValueError(f"save: key {key!r} has an empty dotted part")
            key = key.replace(".", "/")   # state_dict names become folders: features/conv1/weight
            _flatten(value, f"{prefix}/{key}" if prefix else key, out)
    elif isinstance(obj, (list, tuple)):
        if not obj:
            out[prefix + "/<empty-list>"] = np.zeros(0)
        for index, value in enumerate(obj):
            _flatten(value, f"{prefix}/[{index}]", out)
    elif obj is None:
        out[prefix + "/" + _NONE] = np.zeros(0)
    elif isinstance(obj, Tensor):
        out[prefix] = obj.numpy()
    elif isinstance(obj, (bool, int, float, str, np.generic)):
        out[prefix] = np.asarray(obj)
    else:
        out[prefix] = np.asarray(to_device(obj, "cpu"))
        if out[prefix].dtype == object:
            raise TypeError(f"save: cannot store {type(obj).__name__} at {prefix!r} without pickle")


def save(obj, path):
    """Write a (nested) dict of arrays, Tensors, numbers, strings, lists and None to ``path`` atomically."""
    if not isinstance(obj, dict):
        raise TypeError(f"save: expected a dict, got {type(obj).__name__}")
    arrays = {}
    _flatten(obj, "", arrays)
    directory = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(directory, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=directory, suffix=".tmp.npz")
    try:
        with os.fdopen(handle, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise


def _insert(root, parts, value):
    node = root
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _rebuild(node):
    """Turn marker keys back into None, lists and empty containers."""
    if not isinstance(node, dict):
        return node
    if _NONE in node:
        return None
    if "<empty-list>" in node:
        return []
    if "<empty-dict>" in node:
        return {}
    if node and all(k.startswith("[") for k in node):
        return [_rebuild(node[f"[{i}]"]) for i in range(len(node))]
    return {k: _rebuild(v) for k, v in node.items()}


def load(path):
    """Read a file written by ``save`` (``allow_pickle=False``) back into nested dicts.

    Dotted names come back nested (``fc.weight`` -> ``{"fc": {"weight": ...}}``, which
    ``Module.load_state_dict`` accepts); 0-d arrays become Python values.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"load: no such file {path!r}")
    root = {}
    try:
        with np.load(path, allow_pickle=False) as archive:
            for key in archive.files:
                value = archive[key]
                if value.ndim == 0:
                    value = value.item()
                _insert(root, key.split("/"), value)
    except (ValueError, OSError) as error:
        raise ValueError(f"load: {path!r} is not a readable tinycnn .npz file ({error})") from error
    return _rebuild(root)
