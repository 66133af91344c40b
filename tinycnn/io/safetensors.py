"""safetensors files through the ``safetensors`` package's NumPy API: no pickle anywhere.

A safetensors file is a JSON header (names, dtypes, shapes, byte offsets) followed by
the raw bytes of each tensor, so reading one runs no code. Names keep their dots
(``features.0.weight``), which ``Module.load_state_dict`` accepts as they are.

    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
    >>> save_safetensors({"fc": {"weight": np.ones((2, 3), np.float32)}}, path)
    >>> load_safetensors(path)["fc.weight"].shape
    (2, 3)

bfloat16 tensors, which NumPy lacks, are read as float32 (exactly: a bfloat16 is the
upper half of a float32). Needs ``pip install tinycnn[weights]``.
"""
import json
import os
import struct

import numpy as np

from ..backend import is_cupy_array, to_device
from ..tensor import Tensor
from . import MAX_LOAD_BYTES, CheckpointError, _write_atomically


def _safetensors():
    try:
        import safetensors.numpy
    except ImportError:
        raise ImportError("safetensors files need the safetensors package: pip install tinycnn[weights]") from None
    return safetensors


def save_safetensors(state, path, metadata=None):
    """Write a Module's ``state_dict()``, or a (nested) dict of arrays and Tensors, to ``path`` atomically.

    Nested dicts become dotted names. ``metadata`` is an optional dict of strings stored
    in the header. Values other than arrays and Tensors raise TypeError before anything
    is written (safetensors holds tensors only).
    """
    safetensors = _safetensors()
    if hasattr(state, "state_dict"):
        state = state.state_dict()
    if not isinstance(state, dict):
        raise TypeError(f"save_safetensors: expected a Module or a dict, got {type(state).__name__}")
    arrays = {}
    _flatten(state, "", arrays)
    _write_atomically(path, lambda f: f.write(safetensors.numpy.save(arrays, metadata)))


def _flatten(state, prefix, out):
    for key, value in state.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            _flatten(value, name + ".", out)
            continue
        value = value.data if isinstance(value, Tensor) else value
        value = to_device(value, "cpu") if is_cupy_array(value) else value
        if not isinstance(value, (np.ndarray, np.generic)) or value.dtype.kind not in "biuf":
            raise TypeError(f"save_safetensors: {name!r} is a {type(value).__name__}"
                            f"{' of ' + str(value.dtype) if hasattr(value, 'dtype') else ''}; "
                            f"safetensors holds arrays of numbers only (pass strings in metadata=)")
        if name in out:
            raise ValueError(f"save_safetensors: the name {name!r} appears twice (nested and dotted)")
        out[name] = np.ascontiguousarray(value)


def load_safetensors(path, max_bytes=None):
    """Read a safetensors file as a flat dict ``{name: NumPy array}`` (names keep their dots).

    ``max_bytes`` caps the file's size (default ``tinycnn.io.MAX_LOAD_BYTES``). Raises
    FileNotFoundError for a missing file and CheckpointError (a ValueError) naming the
    file for one that is damaged, too large or holds a dtype NumPy cannot represent.
    """
    safetensors = _safetensors()
    path = os.fspath(path)
    limit = MAX_LOAD_BYTES if max_bytes is None else max_bytes
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError(f"load_safetensors: max_bytes must be a non-negative int, got {max_bytes!r}")
    if not os.path.exists(path):
        raise FileNotFoundError(f"load_safetensors: no such file {path!r}")
    size = os.path.getsize(path)
    if size > limit:
        raise CheckpointError(f"load_safetensors: {path!r} is {size} bytes, more than max_bytes={limit}; "
                              f"pass a larger max_bytes to load a file this big")
    arrays = {}
    try:
        # safe_open checks the whole header (offsets inside the file, no overlaps) before any data is read
        with safetensors.safe_open(path, framework="np") as f:
            for name in f.keys():
                dtype = f.get_slice(name).get_dtype()
                if dtype == "BF16":
                    arrays[name] = _bfloat16_as_float32(path, name)
                else:
                    arrays[name] = f.get_tensor(name)
    except (safetensors.SafetensorError, TypeError, ValueError, KeyError, OSError, struct.error) as error:
        raise CheckpointError(f"load_safetensors: {path!r} is damaged or holds what NumPy cannot represent "
                              f"({type(error).__name__}: {error})") from None
    return arrays


def _bfloat16_as_float32(path, name):
    """The bytes of a BF16 tensor, found from the header safe_open already checked, widened to float32."""
    with open(path, "rb") as f:
        (header_size,) = struct.unpack("<Q", f.read(8))
        entry = json.loads(f.read(header_size))[name]
        begin, end = entry["data_offsets"]
        f.seek(8 + header_size + begin)
        raw = np.frombuffer(f.read(end - begin), "<u2")
    return (raw.astype(np.uint32) << 16).view(np.float32).reshape(entry["shape"])
