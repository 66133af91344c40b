"""Read PyTorch ``.pth``/``.pt`` files into NumPy arrays, without torch and without running pickled code.

``torch.save`` (PyTorch 1.6 and later) writes a zip: ``<name>/data.pkl`` pickles the
dict, each tensor in it points to a storage by key, and the storage's raw bytes are the
record ``<name>/data/<key>``. ``pickle.load`` would call whatever the pickle names, so a
downloaded file could run any command. Here the unpickler's ``find_class`` hands out
only stand-ins of our own for the few globals a state_dict needs (``OrderedDict``,
torch's tensor and parameter rebuilders, the typed storages such as
``torch.FloatStorage``) and refuses every other global, naming it and the file
(Python's documented way to restrict unpickling). Storages are read from the zip, their
sizes checked against the zip's headers and ``max_bytes`` before any data is read.

Every tensor comes back as its own NumPy array (a copy, even where tensors shared a
storage). bfloat16 tensors, which NumPy lacks, become float32 (exactly: a bfloat16 is
the upper half of a float32). Typical use::

    state = tinycnn.io.load_torch("resnet18.pth")    # {"conv1.weight": array(...), ...}
    model.load_state_dict(state)                     # where the names already match tinycnn's
"""
import collections
import io
import math
import os
import pickle
import zipfile

import numpy as np

from . import MAX_LOAD_BYTES, CheckpointError, _READ_ERRORS

# torch's storage class -> NumPy dtype of its elements; "bfloat16" is widened to float32
_STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
    "ComplexFloatStorage": np.complex64, "ComplexDoubleStorage": np.complex128,
}


class _Refused(Exception):
    """Raised inside the unpickler; ``load_torch`` adds the file's name and raises CheckpointError."""


class _StorageType:
    """What ``find_class("torch", "FloatStorage")`` returns: the storage's name and element dtype."""

    def __init__(self, name):
        self.name = name
        self.bfloat16 = _STORAGE_DTYPES[name] == "bfloat16"
        self.dtype = np.dtype(np.uint16 if self.bfloat16 else _STORAGE_DTYPES[name])


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    """torch._utils._rebuild_tensor_v2: the view ``size``/``stride`` at ``offset`` of ``storage``, copied."""
    data, storage_type, budget = storage
    size, stride = tuple(size), tuple(stride)
    if not all(isinstance(n, int) and n >= 0 for n in (offset, *size, *stride)) or len(size) != len(stride):
        raise _Refused(f"a tensor has offset {offset!r}, size {size!r} and stride {stride!r}")
    if hooks:
        raise _Refused("a tensor carries backward hooks")
    nbytes = math.prod(size) * storage_type.dtype.itemsize
    if nbytes > budget[0]:  # a stride-0 view of a few bytes can claim any size; its copy must fit the limit
        raise _Refused(f"a tensor of size {size} needs {nbytes} bytes, more than is left of max_bytes")
    budget[0] -= nbytes
    if 0 in size:
        array = np.zeros(size, storage_type.dtype)
    else:
        last = offset + sum((n - 1) * step for n, step in zip(size, stride))
        if last >= data.size:  # a view past the end would read memory that is not the storage's
            raise _Refused(f"a tensor of size {size} and stride {stride} at offset {offset} reaches element "
                           f"{last} of a {storage_type.name} of {data.size} elements")
        itemsize = data.itemsize
        array = np.lib.stride_tricks.as_strided(data[offset:], size, [step * itemsize for step in stride]).copy()
    if storage_type.bfloat16:
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def _rebuild_parameter(data, requires_grad=False, hooks=None):
    """torch._utils._rebuild_parameter: a Parameter is just its data here."""
    if hooks:
        raise _Refused("a parameter carries backward hooks")
    return data


# the only globals a pickled state_dict may name, and what they become
_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, data, storage, limit):
        super().__init__(io.BytesIO(data))
        self.storage = storage  # storage(key, storage_type, numel) -> 1-d array
        self.budget = [limit]   # bytes the tensors' copies may still take

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[module, name]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise _Refused(f"it names the global {module}.{name}, which a state_dict does not need: refused "
                       f"(load_torch reads tensors, numbers, strings, lists and dicts only)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str)
                and isinstance(pid[4], int) and pid[4] >= 0):
            raise _Refused(f"it refers to the persistent object {pid!r}, not a storage")
        _, storage_type, key, _location, numel = pid
        return self.storage(key, storage_type, numel), storage_type, self.budget


def load_torch(path, max_bytes=None):
    """Read a file written by ``torch.save`` (a state_dict, or a dict holding some) as NumPy arrays.

    Returns the saved dict with every tensor as a NumPy array and every OrderedDict as a
    dict; names keep their dots (``{"fc.weight": array}``), as ``Module.load_state_dict``
    takes them. ``max_bytes`` caps the tensor data read (default ``tinycnn.io.MAX_LOAD_BYTES``).
    Raises FileNotFoundError for a missing file and CheckpointError (a ValueError) naming
    the file for one that is damaged, too large, in PyTorch's legacy (pre-1.6) format, or
    whose pickle names anything but a state_dict's globals (nothing in it is run).
    """
    path = os.fspath(path)
    limit = MAX_LOAD_BYTES if max_bytes is None else max_bytes
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError(f"load_torch: max_bytes must be a non-negative int, got {max_bytes!r}")
    if not os.path.exists(path):
        raise FileNotFoundError(f"load_torch: no such file {path!r}")
    try:
        with open(path, "rb") as f:
            if not zipfile.is_zipfile(f):
                f.seek(0)
                raise _Refused(_not_a_zip(f.read(2)))
            with zipfile.ZipFile(f) as archive:
                state = _plain(_read_archive(archive, limit))
    except _Refused as error:
        raise CheckpointError(f"load_torch: {path!r}: {error}") from None
    except (pickle.UnpicklingError, *_READ_ERRORS) as error:
        raise CheckpointError(f"load_torch: {path!r} is damaged or not a PyTorch file "
                              f"({type(error).__name__}: {error})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"load_torch: {path!r} holds a {type(state).__name__}, not a dict (a state_dict)")
    return state


def _not_a_zip(start):
    if start[:1] == b"\x80":
        return ("it is a pickle in PyTorch's legacy (pre-1.6) format, not a zip archive, and load_torch does "
                "not read that format; load it in PyTorch and save it again with a current torch.save")
    if start == b"PK":
        return "it starts like a zip archive but its zip directory is damaged or missing (truncated?)"
    return "it is not a PyTorch file (torch.save writes a zip archive)"


def _read_archive(archive, limit):
    """The unpickled ``<name>/data.pkl``, its storages read from ``<name>/data/<key>``."""
    infos = {info.filename: info for info in archive.infolist()}
    pickles = [name for name in infos if name.count("/") == 1 and name.endswith("/data.pkl")]
    if len(pickles) != 1:
        raise _Refused(f"it holds {len(pickles)} '<name>/data.pkl' records, not one: not a torch.save file")
    declared = sum(info.file_size for info in infos.values())
    if declared > limit:  # before reading anything: a small zip may promise gigabytes
        raise _Refused(f"its records declare {declared} bytes, more than max_bytes={limit}; "
                       f"pass a larger max_bytes to load a file this big")
    prefix = pickles[0][:-len("data.pkl")]
    byteorder = archive.read(prefix + "byteorder").decode() if prefix + "byteorder" in infos else "little"
    if byteorder not in ("little", "big"):
        raise _Refused(f"its byteorder record says {byteorder!r}")
    storages = {}

    def storage(key, storage_type, numel):
        name = f"{prefix}data/{key}"
        if name not in infos:
            raise _Refused(f"a tensor's storage {name!r} is missing")
        nbytes = numel * storage_type.dtype.itemsize
        if infos[name].file_size != nbytes:
            raise _Refused(f"record {name!r} holds {infos[name].file_size} bytes, its {storage_type.name} "
                           f"of {numel} elements needs {nbytes}")
        if key not in storages:
            stored = storage_type.dtype.newbyteorder("<" if byteorder == "little" else ">")
            storages[key] = storage_type.name, np.frombuffer(archive.read(name), stored).astype(storage_type.dtype)
        if storages[key][0] != storage_type.name:
            raise _Refused(f"record {name!r} is read both as a {storages[key][0]} and as a {storage_type.name}")
        return storages[key][1]

    return _Unpickler(archive.read(pickles[0]), storage, limit).load()


def _plain(value):
    """OrderedDicts become dicts (their state_dict metadata dropped), recursively."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    return value
