"""Where datasets live on disk: the search order, downloads with checksums, the .npy cache.

A dataset called ``name`` (``"cifar10"``, ``"fashion-mnist"``, ...) is looked for in:

1. the ``root`` you pass: the folder itself, then ``root/name``;
2. ``$TINYCNN_DATA/name``;
3. ``~/.tinycnn/datasets/name``;
4. folders installed by distribution packages, e.g. Debian's ``dataset-fashion-mnist``
   puts the four IDX files in ``/usr/share/datasets/fashion-mnist``.

Decoding a dataset (unpickling CIFAR batches, gunzipping IDX files, decoding JPEGs) is
done once; the arrays are then kept as ``.npy`` files in a ``tinycnn-cache`` folder next
to the data, or in ``~/.tinycnn/cache`` when the data sit in a system folder or a
folder we cannot write to.

Writes are atomic: a download goes to ``<file>.part`` and is renamed once its checksum
matches, an archive is extracted into a temporary folder renamed once complete, a
cache entry is written through temporary files. Errors: ``ConnectionError`` (no
download possible: it says which file to fetch and where to put it), ``ValueError``
(a checksum mismatch, a corrupt archive or member, naming them), ``FileExistsError``
(an extraction target that is in the way), ``OSError`` naming the archive and member
when the file system refuses a member (disk full, a name it cannot hold).

    >>> [location.origin for location in search_locations("cifar10", root="data")][:2]
    ['root', 'root']
"""
import hashlib
import json
import os
import shutil
import struct
import tempfile
import urllib.request
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import formats

# Folders filled by distribution packages (checked last).
SYSTEM_DIRS = {
    "fashion-mnist": ["/usr/share/datasets/fashion-mnist"],  # Debian: dataset-fashion-mnist
}

CACHE_FOLDER = "tinycnn-cache"
CACHE_FORMAT = 1  # bump when the layout of cached arrays changes


@dataclass
class Location:
    """One folder searched for a dataset, and what was found there (None: nothing)."""
    path: Path
    origin: str  # "root", "$TINYCNN_DATA", "~/.tinycnn/datasets", "system" or "download"
    found: Path = None

    def __str__(self):
        found = self.found if self.found is not None else "-"
        return f"{str(self.path):<50} {self.origin:<20} {found}"


def tinycnn_home():
    """``~/.tinycnn``: downloaded datasets and the fallback cache live here."""
    return Path.home() / ".tinycnn"


def search_locations(name, root=None):
    """The folders searched for dataset ``name``, in order (see the module docstring)."""
    locations = []
    if root is not None:
        root = Path(root).expanduser()
        locations += [Location(root, "root"), Location(root / name, "root")]
    data_dir = os.environ.get("TINYCNN_DATA")
    if data_dir:
        locations.append(Location(Path(data_dir).expanduser() / name, "$TINYCNN_DATA"))
    locations.append(Location(tinycnn_home() / "datasets" / name, "~/.tinycnn/datasets"))
    locations += [Location(Path(path), "system") for path in SYSTEM_DIRS.get(name, [])]
    return locations


def download_dir(name, root=None):
    """Where ``download=True`` puts the files: ``root``, else the first user data folder."""
    if root is not None:
        return Path(root).expanduser()
    data_dir = os.environ.get("TINYCNN_DATA")
    base = Path(data_dir).expanduser() if data_dir else tinycnn_home() / "datasets"
    return base / name


def md5sum(path, chunk_size=1 << 20):
    """Hex MD5 digest of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as file:
        while chunk := file.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def verify_md5(path, expected):
    """Raise ValueError naming ``path`` unless its MD5 digest equals ``expected``."""
    actual = md5sum(path)
    if actual != expected:
        raise ValueError(
            f"{path}: MD5 checksum is {actual}, but the published checksum is {expected}; "
            f"the file is corrupt or incomplete: delete it and download it again")


def download(urls, destination, md5):
    """Fetch ``destination`` from the first of ``urls`` that answers, with a progress bar.

    The bytes go to ``destination.part``, which is renamed only once its MD5 digest
    matches the published one. Without network access the ConnectionError says
    which file to fetch by hand and where to put it.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    failures = []
    for url in urls:
        try:
            _fetch(url, partial)
        except OSError as error:  # urllib.error.URLError is an OSError
            failures.append(f"{url}: {error}")
            continue
        try:
            verify_md5(partial, md5)
        except ValueError:
            partial.unlink()
            raise
        os.replace(partial, destination)
        return destination
    partial.unlink(missing_ok=True)
    raise ConnectionError(
        f"could not download {destination.name} ({'; '.join(failures)}). "
        f"Fetch {urls[0]} on a machine with network access and place it at {destination}")


def _fetch(url, path):
    with urllib.request.urlopen(url, timeout=60) as response, open(path, "wb") as file:
        size = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=size, unit="B", unit_scale=True, desc=path.name.removesuffix(".part")) as bar:
            while chunk := response.read(1 << 20):
                file.write(chunk)
                bar.update(len(chunk))


def extract_zip(archive, folder_name, marker, max_bytes=None):
    """Extract the folder ``folder_name`` of the zip ``archive`` beside it; return the folder.

    The members go to a temporary folder ``.<folder_name>.extracting-*`` beside the
    target, which is renamed into place only once every member is out and
    ``folder_name/marker`` exists: a killed run never leaves a partial folder that
    looks finished (its temporary folder is ignored, and reported so it can be deleted).
    Archives announcing more than ``max_bytes`` of content (default
    ``tinycnn.data.formats.MAX_DECODED_BYTES``) are refused before extracting.
    """
    archive = Path(archive)
    max_bytes = formats.MAX_DECODED_BYTES if max_bytes is None else max_bytes
    target = archive.parent / folder_name
    if target.exists():
        raise FileExistsError(f"{target} exists but holds no {marker}; move or delete it so that "
                              f"{archive.name} can be extracted there")
    prefix = f".{folder_name}.extracting-"
    stale = sorted(archive.parent.glob(prefix + "*"))
    if stale:
        warnings.warn(f"{', '.join(map(str, stale))}: left by an interrupted extraction of {archive.name} "
                      f"(or one still running); delete them to free the space", stacklevel=3)
    temporary = Path(tempfile.mkdtemp(prefix=prefix, dir=archive.parent))
    try:
        _extract_all(archive, temporary, max_bytes)
        if not (temporary / folder_name / marker).is_file():
            raise ValueError(f"{archive}: the archive holds no {folder_name}/{marker}")
        try:
            os.rename(temporary / folder_name, target)
        except OSError:
            if not (target / marker).is_file():  # else another run finished the same extraction first
                raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return target


# What zipfile raises for damaged data: bad CRCs and headers, truncated or invalid
# compressed streams, unknown compression methods, undecodable names.
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, NotImplementedError,
               RuntimeError, struct.error, ValueError)


def _extract_all(archive, destination, max_bytes):
    try:
        zip_file = zipfile.ZipFile(archive)
    except _ZIP_ERRORS as error:
        raise ValueError(f"{archive}: corrupt or truncated zip archive ({error})") from None
    with zip_file:
        members = zip_file.infolist()
        total = sum(member.file_size for member in members)
        if total > max_bytes:
            raise ValueError(f"{archive}: the archive announces {total} bytes of content, more than the limit "
                             f"of {max_bytes} bytes; if it is genuine, raise "
                             f"tinycnn.data.formats.MAX_DECODED_BYTES")
        size = archive.stat().st_size
        for member in tqdm(members, desc=f"extracting {archive.name}"):
            if not 0 <= member.header_offset < size:
                raise ValueError(f"{archive}: member {member.filename} is corrupt (its data would start at "
                                 f"byte {member.header_offset} of a {size}-byte file)")
            try:
                zip_file.extract(member, destination)  # names with .. or a leading / are made safe
            except _ZIP_ERRORS as error:
                raise ValueError(f"{archive}: member {member.filename} is corrupt "
                                 f"({type(error).__name__}: {error})") from None
            except OSError as error:  # e.g. a disk full, or a name this file system refuses
                raise OSError(error.errno, f"{archive}: cannot extract member {member.filename}: "
                                           f"{error.strerror or error}") from None


def file_signature(paths):
    """Fingerprint of source files (path, size, modification time): changes when they do."""
    digest = hashlib.sha1(f"format {CACHE_FORMAT}\n".encode())
    for path in sorted(str(path) for path in paths):
        stat = os.stat(path)
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def cache_dirs(folder, beside_data=True):
    """Cache folders for data found in ``folder``, in order of preference.

    ``folder/tinycnn-cache`` when ``beside_data``, then ``~/.tinycnn/cache/<folder>-<hash>``
    as the fallback; system folders pass ``beside_data=False`` and are never written to.
    """
    folder = Path(folder).resolve()
    tag = hashlib.sha1(str(folder).encode()).hexdigest()[:10]
    fallback = tinycnn_home() / "cache" / f"{folder.name}-{tag}"
    return [folder / CACHE_FOLDER, fallback] if beside_data else [fallback]


def load_cached(dirs, key, signature, decode, mmap_mode=None):
    """Arrays and metadata from the cache, or from ``decode()`` (then written to the cache).

    ``decode()`` returns ``(arrays, meta)``: a dict of NumPy arrays and a JSON-able dict.
    The entry ``key`` in the first of ``dirs`` whose signature matches is used; a fresh
    decode is stored in the first folder that accepts the write.
    """
    for directory in dirs:
        entry = _read_entry(Path(directory), key, signature, mmap_mode)
        if entry is not None:
            return entry
    arrays, meta = decode()
    for directory in dirs:
        if _write_entry(Path(directory), key, signature, arrays, meta):
            break
    return arrays, meta


def _read_entry(directory, key, signature, mmap_mode):
    index_file = directory / f"{key}.json"
    try:
        index = json.loads(index_file.read_text())
        if index["signature"] != signature:
            return None
        arrays = {name: np.load(directory / f"{key}.{name}.npy", mmap_mode=mmap_mode, allow_pickle=False)
                  for name in index["arrays"]}
    except (OSError, ValueError, KeyError):  # missing, stale or damaged entry: decode again
        return None
    return arrays, index["meta"]


def _write_entry(directory, key, signature, arrays, meta):
    """Write arrays first and the JSON index last, each through a temporary file."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{key}.json").unlink(missing_ok=True)
        for name, array in arrays.items():
            _replace_atomically(directory / f"{key}.{name}.npy", lambda file, a=array: np.save(file, a))
        index = {"signature": signature, "arrays": list(arrays), "meta": meta}
        _replace_atomically(directory / f"{key}.json", lambda file: file.write(json.dumps(index).encode()))
    except OSError:
        return False
    return True


def _replace_atomically(path, write):
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as file:
        write(file)
    os.replace(temporary, path)
