"""Property-based fuzzing of every file reader: IDX (plain and .gz), CIFAR batches, image
folders, Tiny ImageNet archives.

Valid files are damaged at random (truncated, bits flipped, bytes or header values
overwritten); each read must give the correct result or one of the documented errors
naming the file (ValueError, FileNotFoundError), never another exception, a hang or
memory beyond the small size limits the tests set (measured with tracemalloc, which
sees NumPy's and Pillow's buffers as well as Python's).
"""
import gzip
import io
import math
import pickle
import struct
import tempfile
import tracemalloc
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import event, example, given, settings, strategies as st
from PIL import Image

from test_data import cifar_pickle, write_tiny_imagenet
from tinycnn.data import ImageFolder, TinyImageNet
from tinycnn.data.formats import IDX_IMAGES, cifar_arrays, load_cifar_pickle, read_cifar_members, read_idx_ubyte

DOCUMENTED = (ValueError, FileNotFoundError)
FUZZ = settings(max_examples=120, deadline=5000)  # each example takes milliseconds; 5 s means stuck

# A damage: ("truncate", fraction kept), ("flip", [(position fraction, bit), ...]) or
# ("overwrite", position fraction, new bytes).
damages = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 7)),
                                        min_size=1, max_size=3)),
    st.tuples(st.just("overwrite"), st.floats(0, 1, exclude_max=True), st.binary(min_size=1, max_size=8)),
)


def damage(content, how):
    content = bytearray(content)
    if how[0] == "truncate":
        return bytes(content[:int(len(content) * how[1])])
    if how[0] == "flip":
        for where, bit in how[1]:
            content[int(len(content) * where)] ^= 1 << bit
        return bytes(content)
    start = int(len(content) * how[1])
    content[start:start + len(how[2])] = how[2]
    return bytes(content)


def outcome_and_peak(function, *args, **kwargs):
    """``function``'s result or the exception it raised, and the peak of traced memory meanwhile."""
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns about odd metadata in damaged files
            try:
                outcome = function(*args, **kwargs)
            except Exception as error:  # inspected by the caller
                outcome = error
        return outcome, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def assert_documented_error(error, path):
    assert isinstance(error, DOCUMENTED), f"undocumented {type(error).__name__}: {error}"
    event(f"error: {type(error).__name__}")
    assert str(path) in str(error)


# ---------------------------------------------------------------- IDX

IDX_LIMIT = 4096  # bytes of data the fuzzed reads may decode


def idx_oracle(plain):
    """The images an intact IDX image file ``plain`` holds, or None when it is not one."""
    if len(plain) < 16 or struct.unpack(">I", plain[:4])[0] != IDX_IMAGES:
        return None
    shape = struct.unpack(">III", plain[4:16])
    if math.prod(shape) > IDX_LIMIT or len(plain) - 16 != math.prod(shape):
        return None
    return np.frombuffer(plain, np.uint8, offset=16).reshape(shape)


@FUZZ
@given(shape=st.tuples(st.integers(0, 5), st.integers(0, 6), st.integers(0, 6)), gzipped=st.booleans(),
       header=st.none() | st.tuples(st.integers(0, 3), st.integers(0, 2**32 - 1)),
       zeros=st.sampled_from([0, 0, 1 << 20]), how=st.none() | damages)
def test_idx_reader_on_damaged_files(shape, gzipped, header, zeros, how):
    rng = np.random.default_rng(sum(shape))
    plain = bytearray(struct.pack(">IIII", IDX_IMAGES, *shape) + rng.integers(0, 256, math.prod(shape), np.uint8)
                      .tobytes() + bytes(zeros))  # zeros: a megabyte more than announced, a small gzip bomb
    if header is not None:
        plain[4 * header[0]:4 * header[0] + 4] = struct.pack(">I", header[1])  # magic number or a size
    content = gzip.compress(bytes(plain)) if gzipped else bytes(plain)
    if how is not None:
        content = damage(content, how)
    try:
        expected = idx_oracle(gzip.decompress(content) if gzipped else content)
    except (OSError, EOFError, zlib.error):  # gzip's errors for damaged streams
        expected = None
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ("images-idx3-ubyte" + (".gz" if gzipped else ""))
        path.write_bytes(content)
        result, peak = outcome_and_peak(read_idx_ubyte, path, IDX_IMAGES, max_bytes=IDX_LIMIT)
    if expected is None:
        assert_documented_error(result, path)
    else:
        assert isinstance(result, np.ndarray), result
        np.testing.assert_array_equal(result, expected)
        event("read")
    assert peak < IDX_LIMIT + (256 << 10)  # the limit, plus gzip's buffers: never the megabyte of zeros


# ---------------------------------------------------------------- CIFAR batches

def cifar_batches():
    """One small batch pickled as Python 2 did and by pickle.dump with protocols 2 to 5."""
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=(2, 3072), dtype=np.uint8)
    batch = {b"batch_label": b"fuzz", b"labels": [3, 7], b"data": data, b"filenames": [b"a.png", b"b.png"]}
    pickles = {"python2": cifar_pickle(batch)}
    pickles.update({protocol: pickle.dumps(batch, protocol=protocol) for protocol in (2, 3, 4, 5)})
    return data, pickles


CIFAR_DATA, CIFAR_PICKLES = cifar_batches()


def read_batch(content, where):
    return cifar_arrays(load_cifar_pickle(content, where), [b"labels"], where)


def read_batch_file(path):
    (where, batch), = read_cifar_members(path.parent, "", [path.name]).values()
    return cifar_arrays(batch, [b"labels"], where)


@FUZZ
@given(kind=st.sampled_from(list(CIFAR_PICKLES)), how=damages)
def test_cifar_reader_on_damaged_batches(kind, how):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data_batch_1"
        path.write_bytes(damage(CIFAR_PICKLES[kind], how))
        result, peak = outcome_and_peak(read_batch_file, path)
    if isinstance(result, Exception):
        assert_documented_error(result, path)
    else:  # a damage the format cannot see (in a pixel, a label, a file name): well-formed arrays
        images, (labels,) = result
        event("read")
        assert images.dtype == np.uint8 and images.shape[1:] == (3, 32, 32)
        assert labels.dtype == np.int64 and labels.shape == (len(images),)
    assert peak < 8 * len(CIFAR_PICKLES[kind]) + (256 << 10)  # a few copies of the file at most


@FUZZ
@given(kind=st.sampled_from(["python2", 3, 4, 5]), pixel=st.integers(0, CIFAR_DATA.size - 1), bit=st.integers(0, 7))
def test_cifar_reader_returns_flipped_pixels_exactly(kind, pixel, bit):
    content = bytearray(CIFAR_PICKLES[kind])
    start = content.find(CIFAR_DATA.tobytes())  # these protocols store the pixels as raw bytes
    assert start > 0
    content[start + pixel] ^= 1 << bit
    images, (labels,) = read_batch(bytes(content), "batch")
    expected = CIFAR_DATA.copy().reshape(-1)
    expected[pixel] ^= 1 << bit
    np.testing.assert_array_equal(images.reshape(-1), expected)
    np.testing.assert_array_equal(labels, [3, 7])


# ---------------------------------------------------------------- image folders

FORMATS = ["PNG", "JPEG", "BMP", "TIFF", "GIF", "WEBP", "PPM"]


def image_bytes(format):
    array = np.random.default_rng(1).integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    file = io.BytesIO()
    Image.fromarray(array).save(file, format=format)
    return file.getvalue()


IMAGES = {format: image_bytes(format) for format in FORMATS}


def pillow_pixels(path):
    """What Pillow itself decodes from ``path`` (the oracle), or None when it cannot."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
                    image.load()   # a stub format (HDF5's "\x89HDF") opens as mode F but cannot load
                    return "wide"  # rescaled by the reader, not by Pillow: checked by shape only
                image = image.convert("RGB")
                if image.size != (8, 8):
                    image = image.resize((8, 8), Image.Resampling.BILINEAR)
                return np.asarray(image).transpose(2, 0, 1)
    except Exception:  # any failure of Pillow's: the reader must raise a documented error
        return None


@FUZZ
@given(format=st.sampled_from(FORMATS), how=damages)
@example(format="PNG", how=("overwrite", 0.0, b"\x89HDF"))   # Pillow's HDF5 stub: opens, never loads
def test_image_folder_on_damaged_images(format, how):
    pixels_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = 4096  # a damaged header may announce a huge image: refused over 8192 pixels
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "class" / f"image.{format.lower()}"
            path.parent.mkdir()
            path.write_bytes(damage(IMAGES[format], how))
            expected = pillow_pixels(path)
            result, peak = outcome_and_peak(ImageFolder, folder, size=(8, 8), cache=False)
    finally:
        Image.MAX_IMAGE_PIXELS = pixels_limit
    if expected is None:
        assert_documented_error(result, path)
    elif isinstance(result, Exception):  # only the 16-bit and float range checks may refuse what Pillow reads
        assert isinstance(expected, str) and isinstance(result, ValueError) and "Pillow mode" in str(result)
    else:
        assert result.images.shape == (1, 3, 8, 8) and result.images.dtype == np.uint8
        event("read")
        if not isinstance(expected, str):
            np.testing.assert_array_equal(result.images[0], expected)
    assert peak < 4 << 20  # a few copies of 8192 pixels, far from a bomb's gigabytes


# ---------------------------------------------------------------- Tiny ImageNet archives

@pytest.fixture(scope="module")
def tiny_zip(tmp_path_factory):
    """The small Tiny ImageNet tree as zip bytes, and its training images and labels."""
    build = tmp_path_factory.mktemp("tiny")
    folder, _ = write_tiny_imagenet(build)
    file = io.BytesIO()
    with zipfile.ZipFile(file, "w", zipfile.ZIP_DEFLATED) as zip_file:
        for path in sorted(folder.rglob("*")):
            zip_file.write(path, path.relative_to(build))
    train = TinyImageNet(root=build, cache=False)
    return file.getvalue(), train.images, train.labels


@settings(FUZZ, max_examples=60)
@given(how=damages)
def test_tiny_imagenet_on_damaged_archives(tiny_zip, how):
    content, images, labels = tiny_zip
    with tempfile.TemporaryDirectory() as folder:
        archive = Path(folder) / "tiny-imagenet-200.zip"
        archive.write_bytes(damage(content, how))
        result, peak = outcome_and_peak(TinyImageNet, root=folder, cache=False)
        left = sorted(path.name for path in Path(folder).iterdir())
    if isinstance(result, OSError) and "cannot extract member" in str(result):
        assert str(archive) in str(result) and left == ["tiny-imagenet-200.zip"]  # a name the disk refuses
    elif isinstance(result, Exception):
        assert_documented_error(result, folder)
        if str(archive) in str(result):  # the extraction failed: nothing of it is left
            assert left == ["tiny-imagenet-200.zip"]
    else:  # what the zip format protects (names, sizes, CRCs) came through: the data are intact
        np.testing.assert_array_equal(result.images, images)
        np.testing.assert_array_equal(result.labels, labels)
        event("read")
        assert left == ["tiny-imagenet-200", "tiny-imagenet-200.zip"]
    assert peak < 4 << 20
