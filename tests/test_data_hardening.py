"""Bad data files give clear errors naming the file: interrupted extractions, compression
bombs, 16-bit and float images, empty class folders, CIFAR pickles from Python 3 and
pickles that try to run code.
"""
import gzip
import os
import pickle
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest
from PIL import Image

from test_data import (CIFAR10_NAMES, cifar10_members, cifar_pickle, idx_bytes, write_folder,
                       write_image_folder, write_mnist, write_tar_gz, write_tiny_imagenet)
from tinycnn.data import CIFAR10, MNIST, ImageFolder, TinyImageNet, formats, storage
from tinycnn.data.formats import IDX_IMAGES, IDX_LABELS, read_idx_ubyte
from tinycnn.data.safe_pickle import UnsafePickleError, load_pickle


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A private home folder, no $TINYCNN_DATA and no system folders for every test."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TINYCNN_DATA", raising=False)
    monkeypatch.setattr(storage, "SYSTEM_DIRS", {})


def peak_bytes(function, *args, **kwargs):
    """Run ``function`` and return (its result or the exception it raised, peak traced bytes)."""
    tracemalloc.start()
    try:
        try:
            outcome = function(*args, **kwargs)
        except Exception as error:  # handed back to the test to inspect
            outcome = error
        return outcome, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ---------------------------------------------------------------- Tiny ImageNet archives

def write_tiny_zip(tmp_path):
    """The small Tiny ImageNet tree zipped into data/tiny-imagenet-200.zip, and the tree itself."""
    folder, _ = write_tiny_imagenet(tmp_path / "build")
    archive = tmp_path / "data" / "tiny-imagenet-200.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zip_file:
        for path in sorted(folder.rglob("*")):
            zip_file.write(path, path.relative_to(folder.parent))
    return archive, folder


def test_interrupted_extraction_leaves_no_folder_and_the_next_run_is_complete(tmp_path, monkeypatch):
    archive, built = write_tiny_zip(tmp_path)
    real_extract, calls = zipfile.ZipFile.extract, []

    def killed_after_five(self, member, path=None, pwd=None):
        calls.append(member)
        if len(calls) > 5:
            raise KeyboardInterrupt  # what Ctrl-C does in the middle of the extraction
        return real_extract(self, member, path, pwd)

    monkeypatch.setattr(zipfile.ZipFile, "extract", killed_after_five)
    with pytest.raises(KeyboardInterrupt):
        TinyImageNet(root=archive.parent)
    assert sorted(os.listdir(archive.parent)) == ["tiny-imagenet-200.zip"]  # no partial folder, no temporary one
    monkeypatch.setattr(zipfile.ZipFile, "extract", real_extract)
    data = TinyImageNet(root=archive.parent, cache=False)
    expected = TinyImageNet(root=built.parent, cache=False)
    assert len(data) == len(expected) == 6
    np.testing.assert_array_equal(data.images, expected.images)
    np.testing.assert_array_equal(data.labels, expected.labels)


def test_stale_temporary_folder_of_a_killed_run_is_never_used(tmp_path):
    archive, built = write_tiny_zip(tmp_path)
    stale = archive.parent / ".tiny-imagenet-200.extracting-killed" / "tiny-imagenet-200"
    stale.mkdir(parents=True)
    (stale / "wnids.txt").write_text("n03000001\n")  # what a run killed early would have left
    with pytest.warns(UserWarning, match="extracting-killed: left by an interrupted extraction"):
        data = TinyImageNet(root=archive.parent, split="val", cache=False)
    assert data.source == archive.parent / "tiny-imagenet-200" and data.num_classes == 3
    np.testing.assert_array_equal(data.images, TinyImageNet(root=built.parent, split="val", cache=False).images)


def test_folder_in_the_way_of_the_extraction_is_reported_and_kept(tmp_path):
    archive, _ = write_tiny_zip(tmp_path)
    partial = archive.parent / "tiny-imagenet-200"
    (partial / "train").mkdir(parents=True)  # an extraction by an older version, cut short before wnids.txt
    with pytest.raises(FileExistsError, match=r"tiny-imagenet-200 exists but holds no wnids.txt; move or delete"):
        TinyImageNet(root=archive.parent)
    assert (partial / "train").is_dir()


def test_corrupt_member_names_the_archive_and_the_member(tmp_path):
    archive, _ = write_tiny_zip(tmp_path)
    with zipfile.ZipFile(archive) as zip_file:
        member = next(info for info in zip_file.infolist() if info.filename.endswith("val_2.JPEG"))
    content = bytearray(archive.read_bytes())
    # the member's data follow its 30-byte local header, its name and its extra field
    name_length, extra_length = struct.unpack("<HH", content[member.header_offset + 26:member.header_offset + 30])
    start = member.header_offset + 30 + name_length + extra_length
    content[start + member.compress_size // 2] ^= 0x10
    archive.write_bytes(bytes(content))
    with pytest.raises(ValueError, match=r"tiny-imagenet-200.zip: member tiny-imagenet-200/val/images/val_2.JPEG "
                                         r"is corrupt"):
        TinyImageNet(root=archive.parent, split="val")
    assert sorted(os.listdir(archive.parent)) == ["tiny-imagenet-200.zip"]


def test_zip_announcing_more_than_the_limit_is_refused_before_extracting(tmp_path, monkeypatch):
    archive, _ = write_tiny_zip(tmp_path)
    with zipfile.ZipFile(archive) as zip_file:
        total = sum(info.file_size for info in zip_file.infolist())
    monkeypatch.setattr(formats, "MAX_DECODED_BYTES", total - 1)
    with pytest.raises(ValueError, match=rf"announces {total} bytes of content, more than the limit of {total - 1}"):
        TinyImageNet(root=archive.parent)
    assert sorted(os.listdir(archive.parent)) == ["tiny-imagenet-200.zip"]
    monkeypatch.setattr(formats, "MAX_DECODED_BYTES", total)
    assert len(TinyImageNet(root=archive.parent, cache=False)) == 6


def test_tiny_imagenet_class_without_images_is_an_error(tmp_path):
    folder, _ = write_tiny_imagenet(tmp_path)
    for path in (folder / "train" / "n02000003" / "images").iterdir():
        path.unlink()
    with pytest.raises(FileNotFoundError, match=r"training images of n02000003: .*images holds no image file"):
        TinyImageNet(root=tmp_path)


# ---------------------------------------------------------------- IDX size checks

def gzip_idx(path, magic, shape, data):
    path.write_bytes(gzip.compress(struct.pack(">I", magic) + b"".join(struct.pack(">I", n) for n in shape)
                                   + data))
    return path


def test_idx_gzip_bomb_is_refused_from_its_header(tmp_path):
    # 64 MiB of zeros compress to about 64 KiB; the header announces all of them
    path = gzip_idx(tmp_path / "bomb-idx3-ubyte.gz", IDX_IMAGES, (64, 1024, 1024), bytes(64 << 20))
    assert path.stat().st_size < 1 << 20
    error, peak = peak_bytes(read_idx_ubyte, path, IDX_IMAGES, max_bytes=1 << 20)
    assert isinstance(error, ValueError)
    assert f"{path}: the data of the IDX header's shape (64, 1024, 1024) would take 67108864 bytes" in str(error)
    assert "more than the limit of 1048576 bytes" in str(error) and "MAX_DECODED_BYTES" in str(error)
    assert peak < 1 << 20  # refused before decompressing the data


def test_idx_gzip_with_more_data_than_its_header_announces_stops_early(tmp_path):
    path = gzip_idx(tmp_path / "long-idx1-ubyte.gz", IDX_LABELS, (5,), bytes(64 << 20))
    error, peak = peak_bytes(read_idx_ubyte, path, IDX_LABELS)
    assert isinstance(error, ValueError)
    assert str(error).startswith(f"{path}: IDX file has trailing bytes: the header announces shape (5,)")
    assert peak < 1 << 20  # it read 5 bytes and one more, not the 64 MiB


def test_idx_limit_can_be_raised(tmp_path, monkeypatch):
    labels = np.arange(10, dtype=np.uint8)
    path = gzip_idx(tmp_path / "labels-idx1-ubyte.gz", IDX_LABELS, (10,), labels.tobytes())
    with pytest.raises(ValueError, match="would take 10 bytes, more than the limit of 9 bytes"):
        read_idx_ubyte(path, IDX_LABELS, max_bytes=9)
    np.testing.assert_array_equal(read_idx_ubyte(path, IDX_LABELS, max_bytes=10), labels)
    write_mnist(tmp_path / "mnist", counts=(3, 2), size=4)
    monkeypatch.setattr(formats, "MAX_DECODED_BYTES", 3 * 4 * 4 - 1)  # the setting the datasets use
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz: the data of the IDX header's shape"):
        MNIST(root=tmp_path / "mnist", cache=False)
    monkeypatch.setattr(formats, "MAX_DECODED_BYTES", 3 * 4 * 4)
    assert MNIST(root=tmp_path / "mnist", cache=False).images.shape == (3, 1, 4, 4)


def test_idx_short_and_long_files_name_the_file(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    content = idx_bytes(images, IDX_IMAGES)
    plain = tmp_path / "images-idx3-ubyte"
    plain.write_bytes(content + b"\x00\x01")
    with pytest.raises(ValueError, match=r"images-idx3-ubyte: IDX file has trailing bytes: the header announces "
                                         r"shape \(2, 3, 4\) \(24 bytes of data\) but 26 bytes follow it"):
        read_idx_ubyte(plain, IDX_IMAGES)
    short = gzip_idx(tmp_path / "short-idx3-ubyte.gz", IDX_IMAGES, (2, 3, 4), images.tobytes()[:-3])
    with pytest.raises(ValueError, match=r"short-idx3-ubyte.gz: truncated IDX file: .* but 21 bytes follow it"):
        read_idx_ubyte(short, IDX_IMAGES)
    np.testing.assert_array_equal(read_idx_ubyte(gzip_idx(tmp_path / "ok.gz", IDX_IMAGES, (2, 3, 4),
                                                          images.tobytes()), IDX_IMAGES), images)


def test_idx_header_type_code_and_dimensions_are_named(tmp_path):
    floats = tmp_path / "float-idx3-ubyte"
    floats.write_bytes(struct.pack(">IIII", 0x0D03, 1, 1, 1) + bytes(4))
    with pytest.raises(ValueError, match=r"float-idx3-ubyte: IDX magic number is 3331, expected 2051 .* "
                                         r"type code 0x0D \(float\), 3 dimensions"):
        read_idx_ubyte(floats, IDX_IMAGES)
    text = tmp_path / "text-idx1-ubyte"
    text.write_bytes(b"<html>not found</html>")
    with pytest.raises(ValueError, match=r"text-idx1-ubyte: IDX magic number .* not an IDX file"):
        read_idx_ubyte(text, IDX_LABELS)


# ---------------------------------------------------------------- images

def test_pillow_decompression_bomb_names_the_file_and_the_limit_can_be_raised(tmp_path, monkeypatch):
    write_image_folder(tmp_path / "pets")  # 6x5 images: 30 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # Pillow refuses images over twice the limit
    with pytest.raises(ValueError, match=r"pets/cat/0.png: cannot decode image \(DecompressionBombError"):
        ImageFolder(tmp_path / "pets", cache=False)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 30)
    assert ImageFolder(tmp_path / "pets", cache=False).images.shape == (4, 3, 6, 5)


def test_damaged_image_files_name_the_file(tmp_path):
    write_image_folder(tmp_path / "pets")
    truncated = tmp_path / "pets" / "dog" / "1.png"
    truncated.write_bytes(truncated.read_bytes()[:40])
    with pytest.raises(ValueError, match=r"pets/dog/1.png: cannot decode image"):
        ImageFolder(tmp_path / "pets", cache=False)
    truncated.write_bytes(b"this is text with a .png name")
    with pytest.raises(ValueError, match=r"pets/dog/1.png: cannot decode image \(UnidentifiedImageError"):
        ImageFolder(tmp_path / "pets", cache=False)


def grey_folder(root, arrays, format="PNG"):
    """One class folder ``root/grey`` holding each array as image k."""
    (root / "grey").mkdir(parents=True)
    for k, array in enumerate(arrays):
        Image.fromarray(array).save(root / "grey" / f"{k}.{format.lower()}", format=format)
    return root


def test_16_bit_images_are_scaled_not_clipped(tmp_path):
    rng = np.random.default_rng(0)
    wide = rng.integers(0, 65536, size=(6, 7), dtype=np.uint16)
    wide[0, :4] = [0, 128, 129, 65535]  # either side of a rounding step, and the ends
    for format in ("PNG", "TIFF"):
        root = grey_folder(tmp_path / format, [wide], format)
        assert Image.open(root / "grey" / f"0.{format.lower()}").mode == "I;16"
        data = ImageFolder(root, mode="L", cache=False)
        expected = (wide.astype(np.int64) + 128) // 257  # round(value / 257), in integers
        np.testing.assert_array_equal(data.images[0, 0], expected)
        assert list(data.images[0, 0, 0, :4]) == [0, 0, 1, 255]
        rgb = ImageFolder(root, cache=False).images[0]
        np.testing.assert_array_equal(rgb, np.broadcast_to(expected, (3, 6, 7)))


def test_8_bit_values_saved_as_16_or_32_bit_come_back_unchanged(tmp_path):
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    eight = ImageFolder(grey_folder(tmp_path / "8", [values]), mode="L", cache=False).images
    sixteen = ImageFolder(grey_folder(tmp_path / "16", [values.astype(np.uint16) * 257]), mode="L", cache=False)
    thirty_two = ImageFolder(grey_folder(tmp_path / "32", [values.astype(np.int32) * 257], "TIFF"), mode="L",
                             cache=False)
    assert Image.open(tmp_path / "32" / "grey" / "0.tiff").mode == "I"
    np.testing.assert_array_equal(eight[0, 0], values)
    np.testing.assert_array_equal(sixteen.images, eight)
    np.testing.assert_array_equal(thirty_two.images, eight)


def test_float_images_in_0_1_map_to_0_255(tmp_path):
    values = (np.arange(256, dtype=np.float32) / 255).reshape(16, 16)
    values[0, :3] = [0.5, 0.25, 1.0]
    root = grey_folder(tmp_path / "f", [values], "TIFF")
    assert Image.open(root / "grey" / "0.tiff").mode == "F"
    data = ImageFolder(root, mode="L", cache=False)
    expected = np.arange(256).reshape(16, 16)
    expected[0, :3] = [128, 64, 255]  # 127.5 and 63.75 rounded
    np.testing.assert_array_equal(data.images[0, 0], expected)


@pytest.mark.parametrize("values, mode", [(np.array([[0.0, 1.5]], np.float32), "F"),
                                          (np.array([[0.0, np.nan]], np.float32), "F"),
                                          (np.array([[0, 70000]], np.int32), "I"),
                                          (np.array([[-1, 5]], np.int32), "I")])
def test_images_out_of_their_mode_range_are_refused_naming_file_and_mode(tmp_path, values, mode):
    root = grey_folder(tmp_path, [values], "TIFF")
    with pytest.raises(ValueError, match=rf"grey/0.tiff: image of Pillow mode '{mode}' holds values .*; "
                                         rf"expected values in"):
        ImageFolder(root, cache=False)


def test_empty_class_folder_is_an_error(tmp_path):
    write_image_folder(tmp_path / "pets")
    (tmp_path / "pets" / "bird").mkdir()
    with pytest.raises(FileNotFoundError, match=r"ImageFolder: class 'bird': .*pets/bird holds no image file "
                                                r"\(extensions .jpg"):
        ImageFolder(tmp_path / "pets", cache=False)
    for path in (tmp_path / "pets" / "cat").glob("*.png"):
        path.unlink()  # left: notes.txt, which is not an image
    (tmp_path / "pets" / "bird").rmdir()
    with pytest.raises(FileNotFoundError, match=r"class 'cat': .*pets/cat holds no image file"):
        ImageFolder(tmp_path / "pets", cache=False)


# ---------------------------------------------------------------- CIFAR pickles from Python 3

def cifar10_by_pickle_dump(folder, protocol, str_keys, seed=0):
    """cifar-10-batches-py re-saved with Python 3's pickle.dump; returns the arrays written."""
    rng = np.random.default_rng(seed)
    key = str if str_keys else (lambda name: name.encode())
    folder.mkdir(parents=True)
    written = {}
    for number, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        data = rng.integers(0, 256, size=(3, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=3)
        batch = {key("data"): data, key("labels"): labels if number % 2 else labels.tolist(),
                 key("batch_label"): key(f"batch {number}"), key("filenames"): [key("a.png")] * 3}
        with open(folder / name, "wb") as file:
            pickle.dump(batch, file, protocol=protocol)
        written[name] = (data, labels)
    with open(folder / "batches.meta", "wb") as file:
        pickle.dump({key("label_names"): [key(name) for name in CIFAR10_NAMES], key("num_vis"): 3072}, file,
                    protocol=protocol)
    return written


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("str_keys", [True, False])
def test_cifar_batches_pickled_by_python_3_are_read(tmp_path, protocol, str_keys):
    written = cifar10_by_pickle_dump(tmp_path / "cifar-10-batches-py", protocol, str_keys)
    train, test = CIFAR10(root=tmp_path, cache=False), CIFAR10(root=tmp_path, train=False, cache=False)
    assert train.classes == CIFAR10_NAMES
    rows = np.concatenate([written[f"data_batch_{i}"][0] for i in range(1, 6)])
    np.testing.assert_array_equal(train.images.reshape(15, 3072), rows)
    np.testing.assert_array_equal(train.labels, np.concatenate([written[f"data_batch_{i}"][1] for i in range(1, 6)]))
    np.testing.assert_array_equal(test.images.reshape(3, 3072), written["test_batch"][0])
    np.testing.assert_array_equal(test.labels, written["test_batch"][1])


class RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # unpickling would run a shell command
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_that_runs_a_command_is_refused_without_running_it(tmp_path, protocol):
    members, _ = cifar10_members()
    marker = tmp_path / "it-ran"
    members["test_batch"] = pickle.dumps({b"data": RunsACommand(marker), b"labels": []}, protocol=protocol)
    write_folder(tmp_path / "cifar-10-batches-py", members)
    with pytest.raises(UnsafePickleError, match=rf"test_batch: not a readable CIFAR pickle \(refusing to load "
                                                rf"{os.system.__module__}.system"):
        CIFAR10(root=tmp_path, train=False)
    assert not marker.exists()


class Reduces:
    """Pickles as a call of ``function(*args)``, then ``BUILD`` with ``state`` when given."""

    def __init__(self, function, args, state=None):
        self.reduced = (function, args) if state is None else (function, args, state)

    def __reduce__(self):
        return self.reduced


RECONSTRUCT = np.zeros(1).__reduce__()[0]


@pytest.mark.parametrize("payload, message", [
    (Reduces(np.ndarray, ((1 << 40,), np.dtype("u1"))), "refusing to call a type"),  # a terabyte, uninitialised
    (Reduces(RECONSTRUCT, (np.ndarray, (1 << 40,), b"b")), "refusing numpy _reconstruct"),
    (np.array([1, "text"], dtype=object), "refusing NumPy dtype object"),
    (Reduces(RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, (3,), np.dtype(np.uint8), False, [1, 2, 3])),
     "refusing to set the state of a NumPy array"),
    (Reduces(np.dtype, ("u1", False, True), (3, "|", None, None, None, -1, -1, 63)),
     "refusing to set the state of a NumPy dtype"),  # flags that would claim Python objects inside
    (Reduces(pickle.loads, (b"",)), "refusing to load pickle.loads"),
])
def test_restricted_unpickler_refuses_what_numpy_never_writes(payload, message):
    with pytest.raises(UnsafePickleError, match=rf"batch: not a readable pickle \({message}"):
        load_pickle(pickle.dumps({"data": payload}, protocol=2), "batch")


def test_one_stored_string_cannot_fill_many_arrays():
    shared = bytes(10_000)
    arrays = [Reduces(RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, (10_000,), np.dtype(np.uint8), False, shared))
              for _ in range(100)]
    content = pickle.dumps(arrays, protocol=4)
    assert len(content) < 20_000  # one copy of the bytes, then 99 references to it
    with pytest.raises(ValueError, match="arrays would take more than the .* bytes the pickle holds"):
        load_pickle(content, "batch")
    assert len(load_pickle(pickle.dumps(arrays[:1], protocol=4), "batch")[0]) == 10_000


def test_big_endian_arrays_load_and_numpy_dtypes_stay_unchanged():
    values = np.arange(5, dtype=">i4")
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        loaded = load_pickle(pickle.dumps({"v": values, "s": np.int64(7)}, protocol=protocol), "x")
        assert loaded["v"].tolist() == [0, 1, 2, 3, 4] and loaded["s"] == 7
    assert np.dtype("i4").isnative and np.dtype(np.int32).byteorder == "="


def test_python_2_batches_still_read_and_labels_must_be_flat_ints(tmp_path):
    members, _ = cifar10_members()
    members["test_batch"] = cifar_pickle({b"data": np.zeros((2, 3072), np.uint8), b"labels": [[0] * 1000] * 2})
    write_tar_gz(tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py", members)
    with pytest.raises(ValueError, match=r"test_batch: b'labels' should be a list of ints or a 1-D integer array"):
        CIFAR10(root=tmp_path, train=False)
    assert len(CIFAR10(root=tmp_path, cache=False)) == 20


def test_cifar_member_over_the_limit_is_refused(tmp_path, monkeypatch):
    members, _ = cifar10_members()
    write_tar_gz(tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py", members)
    monkeypatch.setattr(formats, "MAX_DECODED_BYTES", len(members["data_batch_1"]) - 1)
    with pytest.raises(ValueError, match=rf"data_batch_1: the archive member would take "
                                         rf"{len(members['data_batch_1'])} bytes, more than the limit"):
        CIFAR10(root=tmp_path)
    write_folder(tmp_path / "folder" / "cifar-10-batches-py", members)
    with pytest.raises(ValueError, match=rf"folder/cifar-10-batches-py/data_batch_1: the CIFAR pickle would take "
                                         rf"{len(members['data_batch_1'])} bytes, more than the limit"):
        CIFAR10(root=tmp_path / "folder")
    monkeypatch.setattr(formats, "MAX_DECODED_BYTES", len(members["data_batch_1"]))
    assert len(CIFAR10(root=tmp_path / "folder", cache=False)) == 20
