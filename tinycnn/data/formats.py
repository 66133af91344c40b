"""Readers for the official file formats: IDX (MNIST), CIFAR pickles, image files.

Every reader turns a damaged file into an error that names the file, so "truncated
download" is never a mysterious reshape error three calls later. The errors are:

- ``FileNotFoundError``: a file or folder is missing;
- ``ValueError``: a file is damaged, truncated, not in the expected format, or would
  decode to more than ``MAX_DECODED_BYTES`` (see below);
- ``UnsafePickleError`` (a ValueError, from tinycnn.data.safe_pickle): a CIFAR pickle
  names something other than plain data and NumPy arrays of numbers; nothing in it runs.

Size limits guard against files that decompress to far more than they hold:
``MAX_DECODED_BYTES`` (4 GiB; raise it with ``tinycnn.data.formats.MAX_DECODED_BYTES =
8 << 30``, or pass ``max_bytes=``) bounds the bytes decoded from one IDX file or CIFAR
member, checked from the header before any data are read. Images use Pillow's own
limit ``PIL.Image.MAX_IMAGE_PIXELS`` (about 89 million pixels; Pillow refuses images
over twice that), which you can raise the same way.

    >>> import gzip, struct, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "labels-idx1-ubyte.gz"
    >>> _ = path.write_bytes(gzip.compress(struct.pack(">II", IDX_LABELS, 3) + bytes([7, 0, 9])))
    >>> read_idx_ubyte(path, IDX_LABELS)
    array([7, 0, 9], dtype=uint8)
"""
import gzip
import io
import math
import os
import re
import tarfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from .safe_pickle import load_pickle

MAX_DECODED_BYTES = 4 << 30  # the most bytes one file may decode to (raise it for bigger genuine data)

# IDX magic numbers: two zero bytes, the type code 0x08 (unsigned byte), the number of dimensions.
IDX_IMAGES = 0x00000803  # 2051: (count, rows, columns)
IDX_LABELS = 0x00000801  # 2049: (count,)
IDX_TYPES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "short", 0x0C: "int", 0x0D: "float", 0x0E: "double"}

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".tif", ".tiff", ".webp")
_CHUNK = 1 << 24  # files are read in pieces of 16 MiB


def _limit(max_bytes):
    return MAX_DECODED_BYTES if max_bytes is None else max_bytes


def _too_big(path, what, size, limit):
    return ValueError(f"{path}: {what} would take {size} bytes, more than the limit of {limit} bytes; "
                      f"if the file is genuine, pass max_bytes= or raise "
                      f"tinycnn.data.formats.MAX_DECODED_BYTES")


def read_idx_ubyte(path, magic, max_bytes=None):
    """Read an IDX file of unsigned bytes (gunzipped when its name ends in .gz) whose
    magic number must be ``magic``.

    The header is the 4-byte magic number then one big-endian 4-byte size per
    dimension; exactly as many data bytes as the sizes say must follow. The header is
    checked first, and a data size over ``max_bytes`` (default ``MAX_DECODED_BYTES``)
    refused before anything is decompressed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as file:
            return _read_idx(file, path, magic, _limit(max_bytes))
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise ValueError(f"{path}: corrupt or truncated gzip file ({error})") from None


def _read_idx(file, path, magic, limit):
    head = file.read(4)
    found = int.from_bytes(head, "big") if len(head) == 4 else None
    if found != magic:
        what = "images" if magic == IDX_IMAGES else "labels"
        if found is None:
            seen = f"the file holds only {len(head)} bytes"
        elif head[:2] != b"\0\0":
            seen = "it does not start with two zero bytes, so it is not an IDX file"
        else:
            seen = f"type code 0x{head[2]:02X} ({IDX_TYPES.get(head[2], 'unknown')}), {head[3]} dimensions"
        raise ValueError(f"{path}: IDX magic number is {found}, expected {magic} ({what} file of unsigned "
                         f"bytes: type code 0x08, {magic & 0xFF} dimensions); {seen}")
    ndim = magic & 0xFF  # the last byte of the magic number is the number of dimensions
    sizes = file.read(4 * ndim)
    if len(sizes) < 4 * ndim:
        raise ValueError(f"{path}: truncated IDX file: {4 + len(sizes)} bytes, "
                         f"shorter than its {4 + 4 * ndim}-byte header")
    shape = tuple(int.from_bytes(sizes[4 * i:4 * i + 4], "big") for i in range(ndim))
    expected = math.prod(shape)
    if expected > limit:
        raise _too_big(path, f"the data of the IDX header's shape {shape}", expected, limit)
    announced = f"the header announces shape {shape} ({expected} bytes of data)"
    if not isinstance(file, gzip.GzipFile):  # a plain file: its size tells at once
        actual = os.fstat(file.fileno()).st_size - 4 - 4 * ndim
        if actual != expected:
            problem = "truncated IDX file" if actual < expected else "IDX file has trailing bytes"
            raise ValueError(f"{path}: {problem}: {announced} but {actual} bytes follow it")
    data = np.empty(expected, np.uint8)
    view, done = memoryview(data), 0
    while done < expected:
        count = file.readinto(view[done:done + _CHUNK])
        if not count:
            raise ValueError(f"{path}: truncated IDX file: {announced} but {done} bytes follow it")
        done += count
    if file.read(1):
        raise ValueError(f"{path}: IDX file has trailing bytes: {announced} but more bytes follow it")
    return data.reshape(shape)


def load_cifar_pickle(data, where):
    """Unpickle one CIFAR batch from its bytes ``data`` (``where`` names it in errors).

    Read with tinycnn.data.safe_pickle, so nothing in the file runs; Python 2's batches
    (strings as bytes) and ``pickle.dump`` of Python 3 (protocols 2 to 5) are both read.
    The str keys of a re-saved batch become bytes, as in the official files.
    """
    batch = load_pickle(data, where, "CIFAR pickle")
    if isinstance(batch, dict):
        batch = {key.encode() if isinstance(key, str) else key: value for key, value in batch.items()}
    return batch


def read_cifar_members(source, folder, names, max_bytes=None):
    """Unpickle the CIFAR files ``names`` from an extracted folder or the official .tar.gz.

    ``folder`` is the archive's top folder (``cifar-10-batches-py``). Returns
    ``{name: (where, content)}`` where ``where`` names the file for error messages.
    """
    source = Path(source)
    if source.is_dir():
        members = {}
        for name in names:
            path = source / name
            if not path.is_file():
                raise FileNotFoundError(f"{path}: CIFAR file missing from {source}")
            if path.stat().st_size > _limit(max_bytes):
                raise _too_big(path, "the CIFAR pickle", path.stat().st_size, _limit(max_bytes))
            members[name] = (str(path), load_cifar_pickle(path.read_bytes(), path))
        return members
    return _read_tar_members(source, folder, names, _limit(max_bytes))


def _read_tar_members(archive, folder, names, limit):
    wanted = {f"{folder}/{name}": name for name in names}
    members = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:  # one forward pass: seeking back in a .tar.gz restarts decompression
                name = wanted.get(member.name.removeprefix("./"))
                if name is not None and member.isfile():
                    where = f"{archive}:{member.name}"
                    if member.size > limit:  # the size comes from the member's header: refuse before reading
                        raise _too_big(where, "the archive member", member.size, limit)
                    members[name] = (where, load_cifar_pickle(tar.extractfile(member).read(), where))
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise ValueError(f"{archive}: corrupt or truncated archive ({error})") from None
    missing = [f"{folder}/{name}" for name in names if name not in members]
    if missing:
        raise ValueError(f"{archive}: the archive has no {', '.join(missing)} "
                         f"(truncated download, or not the official archive)")
    return members


def cifar_arrays(batch, label_keys, where):
    """Images (N, 3, 32, 32) uint8 and label arrays from one unpickled CIFAR batch.

    Each row of ``b"data"`` holds 1024 red, then 1024 green, then 1024 blue values,
    each plane row-major: reshaping to (N, 3, 32, 32) gives NCHW directly.
    """
    keys = [b"data", *label_keys]
    missing = [key for key in keys if not isinstance(batch, dict) or key not in batch]
    if missing:
        found = sorted(map(repr, batch)) if isinstance(batch, dict) else type(batch).__name__
        raise ValueError(f"{where}: CIFAR batch has no {', '.join(map(repr, missing))} entry (found {found})")
    data = batch[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"{where}: b'data' should be a uint8 array of shape (N, 3072), got {got}")
    return data.reshape(-1, 3, 32, 32), [_labels(batch[key], key, len(data), where) for key in label_keys]


def _labels(values, key, count, where):
    """``count`` integer labels from a list of ints or a 1-D integer array, as int64."""
    if isinstance(values, np.ndarray):
        ok = values.ndim == 1 and values.dtype.kind in "iub"
    else:
        ok = isinstance(values, (list, tuple)) and all(isinstance(value, (int, np.integer)) for value in values)
    if not ok:
        raise ValueError(f"{where}: {key!r} should be a list of ints or a 1-D integer array, "
                         f"got {type(values).__name__}")
    if len(values) != count:
        raise ValueError(f"{where}: {key!r} holds {len(values)} labels for {count} images")
    return np.asarray(values, dtype=np.int64)


def cifar_names(meta, key, where, max_chars=1 << 20):
    """The class names listed under ``key`` in a CIFAR meta file, as str."""
    names = meta.get(key) if isinstance(meta, dict) else None
    if names is None:
        raise ValueError(f"{where}: CIFAR meta file has no {key!r} entry")
    if (not isinstance(names, list) or not all(isinstance(name, (str, bytes)) for name in names)
            or sum(map(len, names)) > max_chars):  # a pickle may list one long string many times
        raise ValueError(f"{where}: {key!r} should be a list of class names (str or bytes)")
    return [name.decode("utf-8", "replace") if isinstance(name, bytes) else name for name in names]


def natural_key(name):
    """Sort key putting ``val_2`` before ``val_10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(name))]


def image_files(folder):
    """The image files directly inside ``folder``, in natural order."""
    if not Path(folder).is_dir():
        raise FileNotFoundError(f"{folder}: folder not found")
    files = [path for path in Path(folder).iterdir() if path.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files, key=lambda path: natural_key(path.name))


def read_image(path, mode="RGB", size=None):
    """One image file as a uint8 (C, H, W) array; ``size=(height, width)`` resizes it (bilinear).

    8-bit images keep their values. 16-bit ones (Pillow modes "I;16", and "I" with
    values in 0..65535) are scaled to 0..255 by ``round(value / 257)``; 32-bit float
    ones (mode "F") must hold values in [0, 1] and are scaled by ``round(value * 255)``.
    Anything Pillow cannot decode, or refuses as a decompression bomb, is a ValueError
    naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    if path.stat().st_size > MAX_DECODED_BYTES:
        raise _too_big(path, "the image file", path.stat().st_size, MAX_DECODED_BYTES)
    # Pillow reads from memory: a damaged length field cannot make a file read allocate gigabytes
    content = io.BytesIO(path.read_bytes())
    try:
        with Image.open(content) as image:
            if image.mode in _WIDE_MODES:
                image = Image.fromarray(_to_8bit(np.asarray(image), image.mode, path))
            image = image.convert(mode)
            if size is not None and image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            array = np.asarray(image)
    except (MemoryError, _ModeError):
        raise
    except Exception as error:  # Pillow's errors are of many types: OSError, DecompressionBombError, ...
        raise ValueError(f"{path}: cannot decode image ({type(error).__name__}: {error})") from None
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


class _ModeError(ValueError):
    """An image whose values lie outside the range its mode allows here."""


def _to_8bit(values, mode, path):
    """A 16-bit or float grey image as uint8 on the 0..255 scale of 8-bit images."""
    if mode == "F":
        top, scale, expected = 1.0, 255.0, "in [0, 1]"
    else:
        top, scale, expected = 65535, 1 / 257, "in 0..65535 (16 bits)"
    low, high = (values.min(), values.max()) if values.size else (0, 0)
    if not (low >= 0 and high <= top):  # also catches NaN
        raise _ModeError(f"{path}: image of Pillow mode {mode!r} holds values {low}..{high}; expected values "
                         f"{expected}; convert it to 8 or 16 bits")
    return np.round(values.astype(np.float32) * scale).astype(np.uint8)  # float32 is exact for 16-bit ints


def read_images(paths, mode="RGB", size=None, desc="decoding images"):
    """Decode image files into one uint8 (N, C, H, W) array, one thread per core.

    Pillow releases the GIL while decoding, so threads do run in parallel. Without
    ``size`` every image must have the size of the first.
    """
    first = read_image(paths[0], mode, size)
    images = np.empty((len(paths),) + first.shape, dtype=np.uint8)

    def decode_into(index):
        image = read_image(paths[index], mode, size)
        if image.shape != first.shape:
            raise ValueError(f"{paths[index]}: image is {image.shape[1]}x{image.shape[2]} but "
                             f"{paths[0]} is {first.shape[1]}x{first.shape[2]}; pass "
                             f"size=(height, width) to resize every image")
        images[index] = image

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for _ in tqdm(pool.map(decode_into, range(len(paths))), total=len(paths), desc=desc):
            pass
    return images
