"""Readers for the official file formats: IDX (MNIST), CIFAR pickles, image files.

Every reader turns a damaged file into a ValueError (or FileNotFoundError) that names
the file, so "truncated download" is never a mysterious reshape error three calls later.

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
import pickle
import re
import tarfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

# IDX magic numbers: two zero bytes, the type code 0x08 (unsigned byte), the number of dimensions.
IDX_IMAGES = 0x00000803  # 2051: (count, rows, columns)
IDX_LABELS = 0x00000801  # 2049: (count,)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".tif", ".tiff", ".webp")


def read_bytes(path):
    """The whole file, gunzipped when its name ends in .gz."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as file:
                return file.read()
        return path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise ValueError(f"{path}: corrupt or truncated gzip file ({error})") from None


def read_idx_ubyte(path, magic):
    """Read an IDX file of unsigned bytes whose magic number must be ``magic``.

    The header is the 4-byte magic number then one big-endian 4-byte size per
    dimension; the pixel or label bytes follow, exactly as many as the sizes say.
    """
    data = read_bytes(path)
    found = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if found != magic:
        raise ValueError(f"{path}: IDX magic number is {found}, expected {magic} "
                         f"({'images' if magic == IDX_IMAGES else 'labels'} file of unsigned bytes)")
    header_size = 4 + 4 * (magic & 0xFF)  # the last byte of the magic number is the number of dimensions
    if len(data) < header_size:
        raise ValueError(f"{path}: truncated IDX file: {len(data)} bytes, "
                         f"shorter than its {header_size}-byte header")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(magic & 0xFF))
    expected, actual = math.prod(shape), len(data) - header_size
    if actual != expected:
        problem = "truncated IDX file" if actual < expected else "IDX file has trailing bytes"
        raise ValueError(f"{path}: {problem}: the header announces shape {shape} "
                         f"({expected} bytes of data) but {actual} bytes follow it")
    return np.frombuffer(data, np.uint8, offset=header_size).reshape(shape).copy()


# The CIFAR batches are pickles written by Python 2. Unpickling can run arbitrary code,
# so only what those files contain is allowed: the three names NumPy arrays are rebuilt
# from (NumPy 2 moved numpy.core to numpy._core; both spellings are accepted).
_RECONSTRUCT = np.zeros(1).__reduce__()[0]
_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return _PICKLE_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a CIFAR batch holds only arrays, lists and bytes") from None


def load_cifar_pickle(file, where):
    """Unpickle one CIFAR batch from an open binary ``file`` (``where`` names it in errors)."""
    try:
        return _ArrayUnpickler(file, encoding="bytes").load()
    except Exception as error:  # any failure to decode means a damaged or foreign file
        raise ValueError(f"{where}: not a readable CIFAR pickle ({type(error).__name__}: {error})") from None


def read_cifar_members(source, folder, names):
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
            with open(path, "rb") as file:
                members[name] = (str(path), load_cifar_pickle(file, path))
        return members
    return _read_tar_members(source, folder, names)


def _read_tar_members(archive, folder, names):
    wanted = {f"{folder}/{name}": name for name in names}
    members = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:  # one forward pass: seeking back in a .tar.gz restarts decompression
                name = wanted.get(member.name.removeprefix("./"))
                if name is not None and member.isfile():
                    where, content = f"{archive}:{member.name}", tar.extractfile(member).read()
                    members[name] = (where, load_cifar_pickle(io.BytesIO(content), where))
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
        found = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise ValueError(f"{where}: CIFAR batch has no {', '.join(map(repr, missing))} entry (found {found})")
    data = batch[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"{where}: b'data' should be a uint8 array of shape (N, 3072), got {got}")
    labels = [np.asarray(batch[key], dtype=np.int64) for key in label_keys]
    for key, values in zip(label_keys, labels):
        if values.shape != (len(data),):
            raise ValueError(f"{where}: {key!r} holds {values.size} labels for {len(data)} images")
    return data.reshape(-1, 3, 32, 32), labels


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
    """One image file as a uint8 (C, H, W) array; ``size=(height, width)`` resizes it (bilinear)."""
    try:
        with Image.open(path) as image:
            image = image.convert(mode)
            if size is not None and image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            array = np.asarray(image)
    except OSError as error:  # also PIL.UnidentifiedImageError and truncated files
        raise ValueError(f"{path}: cannot decode image ({error})") from None
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


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
