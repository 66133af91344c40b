"""Save and load nested state as .npz with hierarchical keys, never pickle.

Nested dicts and dotted names become keys like ``model/features/conv1/weight``; list items are
``[0]``, ``[1]``; Python numbers, bools and strings become 0-d arrays and come
back as Python values.

    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "state.npz")
    >>> save({"model": {"fc.weight": np.ones(2)}, "epoch": 3}, path)
    >>> state = load(path)
    >>> state["epoch"], state["model"]["fc"]["weight"]
    (3, array([1., 1.]))

Writes are atomic: ``save`` writes ``.<name>.<8 hex digits>.tmp`` next to the target,
fsyncs it, renames it over the target and fsyncs the folder, so a crash leaves
either the old file or the new one. A save that was killed midway leaves its temp
file behind; the next save of the same target removes those that nobody has
written to for ``STALE_TEMP_SECONDS``. Files get the usual permissions (0644
under umask 022).

``load`` reads no more than ``max_bytes`` of array data (default ``MAX_LOAD_BYTES``,
4 GiB) and reports a file it cannot trust (empty, truncated, damaged, too large,
or not written by ``save``) as a ``CheckpointError``, a ValueError naming the file.

Weights from elsewhere, each in its own module: ``load_torch`` (PyTorch ``.pth``/``.pt``,
read without torch and without running pickled code), ``load_safetensors`` and
``save_safetensors``, ``load_keras`` and ``read_keras`` (Keras ``.h5``/``.keras`` for
MiniVGG, VGG-16 and ResNet-50, through the tables of ``keras_table``).
"""
import math
import os
import re
import secrets
import struct
import time
import zipfile
import zlib

import numpy as np

from ..backend import to_device
from ..tensor import Tensor

MAX_LOAD_BYTES = 4 * 2**30   # load's default limit on a file's array data; pass max_bytes= for more
STALE_TEMP_SECONDS = 60      # a save's temp file untouched this long belongs to a save that was killed

_NONE, _EMPTY_LIST, _EMPTY_DICT = "<none>", "<empty-list>", "<empty-dict>"
_CHUNK = 2**20               # read array data a MiB at a time, so memory follows the bytes really there
# what the zip and .npy readers raise on bytes that are not what their headers promise
_READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, TypeError, KeyError,
                IndexError, OverflowError, SyntaxError, struct.error, zlib.error, NotImplementedError,
                RuntimeError)


class CheckpointError(ValueError):
    """A file ``load`` cannot read: empty, truncated, damaged, too large or not written by ``save``.

    The message names the file (and the member and sizes where they matter).
    """


class _Damaged(Exception):
    """Raised inside ``load``; it adds the file's name and raises CheckpointError."""


# ----- save ---------------------------------------------------------------------------
def save(obj, path):
    """Write a (nested) dict of arrays, Tensors, numbers, strings, lists and None to ``path`` atomically.

    Raises ValueError, before writing anything, for keys that would land on the
    same place in the file (``{"a.b": 1, "a": {"b": 2}}`` or ``{"a": 1, "a.b": 2}``).
    """
    if not isinstance(obj, dict):
        raise TypeError(f"save: expected a dict, got {type(obj).__name__}")
    arrays = {}
    _flatten_dict(obj, "", "", arrays, {})
    _write_atomically(path, lambda f: _write_npz(f, arrays))


def _write_atomically(path, write):
    """Call ``write(f)`` on a temp file next to ``path``, fsync it, rename it over ``path``."""
    path = os.fspath(path)
    directory, name = os.path.split(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temp = _create_temp(directory, name)
    try:
        with os.fdopen(handle, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise
    _fsync_directory(directory)
    _remove_stale_temps(directory, name)


def _flatten_dict(obj, path, label, out, claims):
    """Put the arrays of dict ``obj`` into ``out`` under ``path``; ``label`` is how the user wrote it."""
    for key, value in obj.items():
        text = str(key)
        parts = text.split(".")
        if "/" in text or any(part.startswith(("[", "<")) for part in parts):
            raise ValueError(f"save: key {text!r} may not contain '/' or have a part starting with '[' or '<'")
        if "" in parts:
            raise ValueError(f"save: key {text!r} has an empty dotted part")
        child_label = f"{label}[{key!r}]"
        child = path
        for part in parts[:-1]:  # state_dict names become folders: features/conv1/weight
            child = _join(child, part)
            _claim(claims, child, "dict", child_label)
        _flatten(value, _join(child, parts[-1]), child_label, out, claims)


def _flatten(obj, path, label, out, claims):
    if isinstance(obj, dict) and obj:
        _claim(claims, path, "dict", label)
        _flatten_dict(obj, path, label, out, claims)
    elif isinstance(obj, (list, tuple)) and obj:
        _claim(claims, path, "list", label)
        for index, value in enumerate(obj):
            _flatten(value, f"{path}/[{index}]", f"{label}[{index}]", out, claims)
    else:
        _claim(claims, path, "value", label)
        if isinstance(obj, (str, bytes)) and obj[-1:] in ("\0", b"\0"):
            raise ValueError(f"save: the string at {label} ends with a NUL character, which NumPy would drop")
        key, array = _leaf(obj, path)
        if array.dtype.hasobject:
            raise TypeError(f"save: cannot store {type(obj).__name__} at {label} without pickle")
        out[key] = array


def _leaf(obj, path):
    """The file key and array of a value; None and empty containers become marker keys."""
    if obj is None:
        return f"{path}/{_NONE}", np.zeros(0)
    if isinstance(obj, dict):
        return f"{path}/{_EMPTY_DICT}", np.zeros(0)
    if isinstance(obj, (list, tuple)):
        return f"{path}/{_EMPTY_LIST}", np.zeros(0)
    if isinstance(obj, Tensor):
        return path, obj.numpy()
    if isinstance(obj, (bool, int, float, str, np.generic)):
        return path, np.asarray(obj)
    return path, np.asarray(to_device(obj, "cpu"))


def _claim(claims, path, kind, label):
    """Refuse a second key at the same place of the file, unless both are folders of names (dicts)."""
    previous_kind, previous_label = claims.setdefault(path, (kind, label))
    if previous_label != label and not kind == previous_kind == "dict":
        raise ValueError(f"save: keys {previous_label} and {label} both map to {path!r} in the file; rename one")


def _join(path, part):
    return f"{path}/{part}" if path else part


def _write_npz(f, arrays):
    """What np.savez writes, without its keyword arguments (a key named "file" would clash with them)."""
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for key, array in arrays.items():
            with archive.open(key + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def _create_temp(directory, name):
    """Open a new ``.<name>.<8 hex digits>.tmp`` (mode 0666 less the umask, as for any new file)."""
    while True:
        temp = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
            return os.open(temp, flags, 0o666), temp
        except FileExistsError:
            continue


def _fsync_directory(directory):
    """Make the rename itself durable; skipped where a folder cannot be opened (Windows)."""
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the rename is still atomic
    finally:
        os.close(handle)


def _remove_stale_temps(directory, name):
    """Remove temp files of ``name`` left by saves that were killed (untouched for STALE_TEMP_SECONDS)."""
    pattern = re.compile(re.escape(f".{name}.") + r"[0-9a-f]{8}\.tmp")
    now = time.time()
    with os.scandir(directory) as entries:
        for entry in entries:
            if not pattern.fullmatch(entry.name):
                continue
            try:
                if now - entry.stat(follow_symlinks=False).st_mtime > STALE_TEMP_SECONDS:
                    os.remove(entry.path)
            except OSError:
                pass  # another save removed it first


# ----- load ---------------------------------------------------------------------------
def load(path, max_bytes=None):
    """Read a file written by ``save`` (no pickle) back into nested dicts.

    Dotted names come back nested (``fc.weight`` -> ``{"fc": {"weight": ...}}``, which
    ``Module.load_state_dict`` accepts); 0-d arrays become Python values.

    ``max_bytes`` caps the array data read from the file (default ``MAX_LOAD_BYTES``,
    4 GiB); the sizes in the zip and .npy headers are checked before any data is read.
    Raises FileNotFoundError for a missing file and CheckpointError (a ValueError)
    naming the file for one that is empty, truncated, damaged, too large or not
    written by ``save``.
    """
    path = os.fspath(path)
    limit = MAX_LOAD_BYTES if max_bytes is None else max_bytes
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError(f"load: max_bytes must be a non-negative int, got {max_bytes!r}")
    if not os.path.exists(path):
        raise FileNotFoundError(f"load: no such file {path!r}")
    with open(path, "rb") as f:
        try:
            if os.fstat(f.fileno()).st_size == 0:
                raise _Damaged("the file is empty (0 bytes)")
            state = _rebuild(_nest(_read_members(f, limit)), "")
            if not isinstance(state, dict):
                raise _Damaged("its top level is not a dict")
            return state
        except _Damaged as error:
            message = f"load: {path!r}: {error}"
        except _READ_ERRORS as error:
            message = f"load: {path!r} is damaged or not a tinycnn .npz file ({type(error).__name__}: {error})"
    raise CheckpointError(message)


def _read_members(f, limit):
    """``{key: array}`` of every ``key.npy`` in the zip, after checking all the declared sizes."""
    with zipfile.ZipFile(f) as archive:
        infos = archive.infolist()
        total = 0
        for info in infos:  # before decompressing anything: a small zip may promise gigabytes
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise _Damaged(f"member {info.filename!r} uses zip compression method {info.compress_type}, "
                               f"which NumPy never writes")
            total += info.file_size
            if total > limit:
                raise _Damaged(f"member {info.filename!r} declares {info.file_size} bytes ({total} in all so far), "
                               f"more than max_bytes={limit}; pass a larger max_bytes to load a file this big")
        _check_members_cover(f, infos, archive.start_dir)
        arrays = {}
        for info in infos:
            if not info.filename.endswith(".npy"):
                raise _Damaged(f"member {info.filename!r} is not a .npy array")
            key = info.filename[:-len(".npy")]
            if key in arrays:
                raise _Damaged(f"member {info.filename!r} appears twice")
            with archive.open(info) as member:
                arrays[key] = _read_array(member, info, limit)
    return arrays


def _check_members_cover(f, infos, end):
    """Check that the members listed fill the file up to the central directory (``end``).

    A damaged central directory can list fewer members than the file holds (a
    comment length swallowing the entries after it); zipfile does not notice.
    """
    allowed = {0}
    for info in sorted(infos, key=lambda info: info.header_offset):
        if info.header_offset not in allowed:
            raise _Damaged(f"member {info.filename!r} starts at byte {info.header_offset}, "
                           f"not where the member before it ends ({min(allowed)})")
        f.seek(info.header_offset)
        header = f.read(30)
        if len(header) < 30 or header[:4] != b"PK\x03\x04":
            raise _Damaged(f"member {info.filename!r} has no local header at byte {info.header_offset}")
        name_length, extra_length = struct.unpack("<HH", header[26:30])
        position = info.header_offset + 30 + name_length + extra_length + info.compress_size
        # bit 3: crc and sizes follow the data (writers that cannot seek), with or without a signature
        allowed = {position + size for size in (12, 16, 20, 24)} if info.flag_bits & 0x08 else {position}
    if end not in allowed:
        raise _Damaged(f"its members end at byte {min(allowed)}, the central directory starts at {end}: "
                       f"some members are not listed")


def _read_array(member, info, limit):
    """One .npy member: its header checked against the zip entry's size, then exactly that much data."""
    name = info.filename
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(member)
    else:
        raise _Damaged(f"member {name!r} is a .npy file of version {version}, not 1.0 or 2.0")
    if dtype.hasobject:
        raise _Damaged(f"member {name!r} holds Python objects, which load never unpickles")
    if any(size < 0 for size in shape):
        raise _Damaged(f"member {name!r} has the shape {shape}")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > limit:
        raise _Damaged(f"member {name!r} is a {dtype} array of shape {shape} ({nbytes} bytes), "
                       f"more than max_bytes={limit}")
    stored = info.file_size - member.tell()
    if nbytes != stored:
        raise _Damaged(f"member {name!r}: its .npy header promises {nbytes} bytes of data, "
                       f"the zip entry holds {stored}")
    data = bytearray()
    while len(data) < nbytes:  # never more than the header promised, whatever the zip entry holds
        chunk = member.read(min(_CHUNK, nbytes - len(data)))
        if not chunk:
            raise _Damaged(f"member {name!r} is truncated: {len(data)} of {nbytes} bytes")
        data += chunk
    if member.read(1):  # also makes zipfile compare the CRC
        raise _Damaged(f"member {name!r} holds more data than its headers say")
    if nbytes == 0:
        return np.zeros(shape, dtype=dtype)
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran_order else "C")


def _nest(arrays):
    """``{"a/b": x}`` -> ``{"a": {"b": x}}``; a path that is both a value and a folder is damage."""
    root = {}
    for key, value in arrays.items():
        parts = key.split("/")
        if "" in parts:
            raise _Damaged(f"the key {key!r} has an empty part")
        node = root
        for depth, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise _Damaged(f"{'/'.join(parts[:depth + 1])!r} is both a value and a folder (keys collide)")
        if parts[-1] in node:
            raise _Damaged(f"{key!r} is both a value and a folder (keys collide)")
        node[parts[-1]] = value.item() if value.ndim == 0 else value
    return root


def _rebuild(node, path):
    """Turn marker keys back into None, lists and empty containers."""
    if not isinstance(node, dict):
        return node
    markers = [key for key in node if key.startswith("<")]
    if markers:
        if len(node) > 1 or markers[0] not in (_NONE, _EMPTY_LIST, _EMPTY_DICT):
            raise _Damaged(f"the folder {path!r} holds {_some(node)}, not one marker alone")
        return {_NONE: None, _EMPTY_LIST: [], _EMPTY_DICT: {}}[markers[0]]
    if any(key.startswith("[") for key in node):
        names = [f"[{index}]" for index in range(len(node))]
        if set(node) != set(names):
            raise _Damaged(f"the list {path!r} has the items {_some(node)}, not [0] to [{len(node) - 1}]")
        return [_rebuild(node[name], f"{path}/{name}") for name in names]
    return {key: _rebuild(value, _join(path, key)) for key, value in node.items()}


def _some(node, count=5):
    names = sorted(node)
    return ", ".join(names[:count]) + (", ..." if len(names) > count else "")


# the loaders of other formats use the names above, so they are imported last
from .torch_pickle import load_torch  # noqa: E402
from .safetensors import load_safetensors, save_safetensors  # noqa: E402
from .keras import load_keras, read_keras  # noqa: E402
from .keras_tables import keras_table  # noqa: E402
