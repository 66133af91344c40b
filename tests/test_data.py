"""Datasets read from files written here in each official format, the cache, and the DataLoader.

No test touches the network: downloads are exercised through file:// URLs.
"""
import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tinycnn.data import (CIFAR10, CIFAR100, MNIST, ArrayDataset, DataLoader, FashionMNIST, ImageFolder,
                          RandomCrop, TinyImageNet, locate)
from tinycnn.data import official
from tinycnn.data import storage
from tinycnn.data.formats import IDX_IMAGES, IDX_LABELS

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A private home folder, no $TINYCNN_DATA and no system folders for every test."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TINYCNN_DATA", raising=False)
    monkeypatch.setattr(storage, "SYSTEM_DIRS", {})


# ---------------------------------------------------------------- writers of the official formats

class Python2Pickler(pickle._Pickler):
    """Pickles as Python 2's cPickle wrote the CIFAR batches: protocol 2, every string a
    BINSTRING (loaded back as bytes), NumPy's functions under numpy.core."""
    dispatch = dict(pickle._Pickler.dispatch)

    def save_string(self, obj):
        data = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    def save_global(self, obj, name=None):
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)

    dispatch[bytes] = dispatch[str] = save_string
    dispatch[type] = save_global


def cifar_pickle(content):
    file = io.BytesIO()
    Python2Pickler(file, protocol=2).dump(content)
    return file.getvalue()


def cifar10_members(seed=0, per_batch=4, label_key=b"labels"):
    """The files of cifar-10-batches-py, as bytes, and the arrays they hold."""
    rng = np.random.default_rng(seed)
    members, expected = {}, {"train": [], "test": []}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for number, name in enumerate(names, 1):
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=per_batch).tolist()
        members[name] = cifar_pickle({
            b"batch_label": f"batch {number} of 6".encode(),
            label_key: labels,
            b"data": data,
            b"filenames": [f"image_{number}_{k}.png".encode() for k in range(per_batch)],
        })
        expected["test" if name == "test_batch" else "train"].append((data, labels))
    members["batches.meta"] = cifar_pickle({
        b"num_cases_per_batch": per_batch,
        b"label_names": [name.encode() for name in CIFAR10_NAMES],
        b"num_vis": 3072,
    })
    members["readme.html"] = b"<html></html>"
    return members, expected


def write_tar_gz(path, folder, members):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path


def write_folder(folder, members):
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in members.items():
        (folder / name).write_bytes(content)
    return folder


def write_cifar10_tar(directory, **kwargs):
    members, expected = cifar10_members(**kwargs)
    write_tar_gz(directory / "cifar-10-python.tar.gz", "cifar-10-batches-py", members)
    return expected


def write_cifar100_folder(directory, per_split=6, seed=1):
    rng = np.random.default_rng(seed)
    members, expected = {}, {}
    for split in ("train", "test"):
        data = rng.integers(0, 256, size=(per_split, 3072), dtype=np.uint8)
        fine = rng.integers(0, 100, size=per_split).tolist()
        coarse = rng.integers(0, 20, size=per_split).tolist()
        members[split] = cifar_pickle({b"filenames": [b"x.png"] * per_split, b"batch_label": split.encode(),
                                       b"fine_labels": fine, b"coarse_labels": coarse, b"data": data})
        expected[split] = (data, fine, coarse)
    members["meta"] = cifar_pickle({b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
                                    b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]})
    write_folder(directory / "cifar-100-python", members)
    return expected


def idx_bytes(array, magic):
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", size) for size in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(directory, seed=0, counts=(7, 3), size=28, gzipped=True):
    """The four MNIST IDX files; returns {"train": (images, labels), "test": ...}."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    expected = {}
    for (split, prefix), count in zip((("train", "train"), ("test", "t10k")), counts):
        images = rng.integers(0, 256, size=(count, size, size), dtype=np.uint8)
        labels = rng.integers(0, 10, size=count).astype(np.uint8)
        for kind, array, magic in (("images-idx3", images, IDX_IMAGES), ("labels-idx1", labels, IDX_LABELS)):
            content = idx_bytes(array, magic)
            name = f"{prefix}-{kind}-ubyte"
            if gzipped:
                (directory / f"{name}.gz").write_bytes(gzip.compress(content))
            else:
                (directory / name).write_bytes(content)
        expected[split] = (images, labels)
    return expected


def save_image(path, array, format=None):
    """Save a (H, W, 3) or (H, W) uint8 array."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=format)


def pillow_chw(path):
    array = np.asarray(Image.open(path).convert("RGB"))
    return array.transpose(2, 0, 1)


def write_tiny_imagenet(directory, size=8, per_class=2, val_count=4, test_count=3, seed=0):
    """A small tree in the official tiny-imagenet-200 layout."""
    rng = np.random.default_rng(seed)
    folder = directory / "tiny-imagenet-200"
    wnids = ["n03000001", "n01000002", "n02000003"]  # not sorted, as in the official file
    folder.mkdir(parents=True)
    (folder / "wnids.txt").write_text("\n".join(wnids) + "\n")
    words = {"n01000002": "goldfish, Carassius auratus", "n02000003": "tabby, tabby cat",
             "n03000001": "school bus", "n09999999": "not in this dataset"}
    (folder / "words.txt").write_text("".join(f"{wnid}\t{name}\n" for wnid, name in words.items()))

    def random_image(grey=False):
        shape = (size, size) if grey else (size, size, 3)
        return rng.integers(0, 256, size=shape, dtype=np.uint8)

    for wnid in wnids:
        lines = []
        for k in range(per_class):
            save_image(folder / "train" / wnid / "images" / f"{wnid}_{k}.JPEG", random_image(grey=k == 1), "JPEG")
            lines.append(f"{wnid}_{k}.JPEG\t0\t0\t{size - 1}\t{size - 1}")
        (folder / "train" / wnid / f"{wnid}_boxes.txt").write_text("\n".join(lines) + "\n")
    val_labels = [wnids[k % 3] for k in range(val_count)]
    for k in range(val_count):
        save_image(folder / "val" / "images" / f"val_{k}.JPEG", random_image(), "JPEG")
    (folder / "val" / "val_annotations.txt").write_text(
        "".join(f"val_{k}.JPEG\t{wnid}\t0\t0\t{size - 1}\t{size - 1}\n" for k, wnid in enumerate(val_labels)))
    for k in range(test_count):
        save_image(folder / "test" / "images" / f"test_{k}.JPEG", random_image(), "JPEG")
    return folder, val_labels


# ---------------------------------------------------------------- CIFAR

def test_cifar10_from_the_official_tar_gz(tmp_path):
    expected = write_cifar10_tar(tmp_path)
    train, test = CIFAR10(root=tmp_path), CIFAR10(root=tmp_path, train=False)
    assert train.images.shape == (20, 3, 32, 32) and train.images.dtype == np.uint8
    assert test.images.shape == (4, 3, 32, 32)
    assert train.labels.dtype == np.int64 and train.classes == CIFAR10_NAMES
    rows = np.concatenate([data for data, _ in expected["train"]])
    np.testing.assert_array_equal(train.labels, np.concatenate([labels for _, labels in expected["train"]]))
    np.testing.assert_array_equal(test.labels, expected["test"][0][1])
    # a row is 1024 red, 1024 green, 1024 blue values, each plane row-major
    assert train.images[5, 1, 2, 7] == rows[5, 1024 + 2 * 32 + 7]
    np.testing.assert_array_equal(train.images.reshape(20, -1), rows)
    image, label = train[3]
    assert image.shape == (3, 32, 32) and label == expected["train"][0][1][3]


def test_cifar10_extracted_folder_gives_the_same_arrays(tmp_path):
    members, _ = cifar10_members(seed=3)
    write_tar_gz(tmp_path / "tar" / "cifar-10-python.tar.gz", "cifar-10-batches-py", members)
    write_folder(tmp_path / "folder" / "cifar-10-batches-py", members)
    from_tar = CIFAR10(root=tmp_path / "tar", cache=False)
    from_folder = CIFAR10(root=tmp_path / "folder", cache=False)
    np.testing.assert_array_equal(from_tar.images, from_folder.images)
    np.testing.assert_array_equal(from_tar.labels, from_folder.labels)
    assert from_folder.source == tmp_path / "folder" / "cifar-10-batches-py"


def test_cifar100_fine_and_coarse_labels(tmp_path):
    expected = write_cifar100_folder(tmp_path)
    fine = CIFAR100(root=tmp_path)
    coarse = CIFAR100(root=tmp_path, train=False, label_mode="coarse")
    data, fine_labels, _ = expected["train"]
    np.testing.assert_array_equal(fine.images.reshape(len(data), -1), data)
    np.testing.assert_array_equal(fine.labels, fine_labels)
    np.testing.assert_array_equal(coarse.labels, expected["test"][2])
    assert fine.num_classes == 100 and fine.classes[7] == "fine7"
    assert coarse.num_classes == 20 and coarse.classes[3] == "coarse3"
    with pytest.raises(ValueError, match="label_mode"):
        CIFAR100(root=tmp_path, label_mode="medium")


# ---------------------------------------------------------------- MNIST / Fashion-MNIST

@pytest.mark.parametrize("gzipped", [True, False])
def test_mnist_idx_files_round_trip(tmp_path, gzipped):
    expected = write_mnist(tmp_path, gzipped=gzipped)
    for train, split in ((True, "train"), (False, "test")):
        data = MNIST(root=tmp_path, train=train)
        images, labels = expected[split]
        assert data.images.shape == (len(images), 1, 28, 28) and data.images.dtype == np.uint8
        np.testing.assert_array_equal(data.images[:, 0], images)
        np.testing.assert_array_equal(data.labels, labels)
        assert data.labels.dtype == np.int64 and data.classes == [str(d) for d in range(10)]


def test_fashion_mnist_class_names(tmp_path):
    write_mnist(tmp_path / "fashion-mnist")
    data = FashionMNIST(root=tmp_path)  # found in root/fashion-mnist
    assert data.classes[0] == "T-shirt/top" and data.classes[9] == "Ankle boot"
    assert data.source == tmp_path / "fashion-mnist"


@pytest.mark.skipif(not (FASHION_DIR / "train-images-idx3-ubyte.gz").is_file(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_from_the_debian_package(monkeypatch):
    monkeypatch.setattr(storage, "SYSTEM_DIRS", {"fashion-mnist": [str(FASHION_DIR)]})
    train, test = FashionMNIST(train=True), FashionMNIST(train=False)
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert train.num_classes == 10
    # Fashion-MNIST is balanced: 6,000 training and 1,000 test images per class
    np.testing.assert_array_equal(np.bincount(train.labels), np.full(10, 6000))
    np.testing.assert_array_equal(np.bincount(test.labels), np.full(10, 1000))
    assert [location.found for location in locate("fashion-mnist")][-1] == FASHION_DIR


# ---------------------------------------------------------------- where data are looked for

def test_search_order_root_then_environment_then_home(tmp_path, monkeypatch):
    home_data = write_mnist(tmp_path / "home" / ".tinycnn" / "datasets" / "mnist", seed=1)
    assert np.array_equal(MNIST().labels, home_data["train"][1])
    env_data = write_mnist(tmp_path / "env" / "mnist", seed=2)
    monkeypatch.setenv("TINYCNN_DATA", str(tmp_path / "env"))
    assert np.array_equal(MNIST().labels, env_data["train"][1])
    root_data = write_mnist(tmp_path / "mine", seed=3)
    assert np.array_equal(MNIST(root=tmp_path / "mine").labels, root_data["train"][1])


def test_system_folder_is_searched_last(tmp_path, monkeypatch):
    system = tmp_path / "usr-share" / "mnist"
    expected = write_mnist(system, seed=4)
    monkeypatch.setattr(storage, "SYSTEM_DIRS", {"mnist": [str(system)]})
    np.testing.assert_array_equal(MNIST().labels, expected["train"][1])


def test_locate_reports_every_folder_and_what_it_holds(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYCNN_DATA", str(tmp_path / "env"))
    write_cifar10_tar(tmp_path / "env" / "cifar10")
    locations = locate("cifar10", root=tmp_path / "mine")
    assert [location.origin for location in locations] == ["root", "root", "$TINYCNN_DATA", "~/.tinycnn/datasets"]
    assert [location.found for location in locations] == [
        None, None, tmp_path / "env" / "cifar10" / "cifar-10-python.tar.gz", None]
    assert "cifar-10-python.tar.gz" in str(locations[2])
    with pytest.raises(ValueError, match="unknown dataset"):
        locate("imagenet-22k")


def test_missing_data_says_which_file_to_place_where(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        CIFAR10(root=tmp_path / "empty")
    message = str(error.value)
    assert "cifar-10-python.tar.gz" in message and str(tmp_path / "empty") in message
    assert "download=True" in message and "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in message
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte.gz"):
        MNIST()
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "home" / ".tinycnn" / "datasets" / "mnist")):
        MNIST()


# ---------------------------------------------------------------- downloads and checksums

def test_verify_md5_accepts_the_right_checksum_and_names_the_file_otherwise(tmp_path):
    path = tmp_path / "archive.tar.gz"
    path.write_bytes(b"tinycnn")
    assert storage.md5sum(path) == hashlib.md5(b"tinycnn").hexdigest()
    storage.verify_md5(path, hashlib.md5(b"tinycnn").hexdigest())
    with pytest.raises(ValueError, match="archive.tar.gz: MD5 checksum") as error:
        storage.verify_md5(path, "0" * 32)
    assert "0" * 32 in str(error.value)


def test_download_fetches_verifies_and_loads(tmp_path, monkeypatch):
    server = tmp_path / "server"
    write_cifar10_tar(server, seed=5)
    archive = server / "cifar-10-python.tar.gz"
    monkeypatch.setattr(CIFAR10, "url", archive.as_uri())
    monkeypatch.setattr(CIFAR10, "md5", storage.md5sum(archive))
    data = CIFAR10(root=tmp_path / "fresh", download=True)
    assert (tmp_path / "fresh" / "cifar-10-python.tar.gz").read_bytes() == archive.read_bytes()
    assert data.images.shape == (20, 3, 32, 32)
    assert not (tmp_path / "fresh" / "cifar-10-python.tar.gz.part").exists()


def test_download_with_a_wrong_checksum_keeps_nothing(tmp_path):
    source = tmp_path / "server" / "train-images-idx3-ubyte.gz"
    source.parent.mkdir()
    source.write_bytes(b"not the real file")
    destination = tmp_path / "data" / "train-images-idx3-ubyte.gz"
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz.part: MD5 checksum"):
        storage.download([source.as_uri()], destination, "f68b3c2dcbeaaa9fbdd348bbdeb94873")
    assert not destination.exists() and not destination.with_name(destination.name + ".part").exists()


def test_download_without_network_says_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(CIFAR10, "url", (tmp_path / "unreachable" / "cifar-10-python.tar.gz").as_uri())
    with pytest.raises(ConnectionError) as error:
        CIFAR10(root=tmp_path / "data", download=True)
    message = str(error.value)
    assert "could not download cifar-10-python.tar.gz" in message
    assert f"place it at {tmp_path / 'data' / 'cifar-10-python.tar.gz'}" in message


# ---------------------------------------------------------------- the decoded-array cache

def test_second_load_uses_the_cache(tmp_path, monkeypatch):
    write_cifar10_tar(tmp_path)
    first = CIFAR10(root=tmp_path)
    assert (tmp_path / "tinycnn-cache" / "cifar10-train.json").is_file()
    assert (tmp_path / "tinycnn-cache" / "cifar10-train.images.npy").is_file()

    def no_decoding(*args):
        raise AssertionError("the archive was decoded again")

    monkeypatch.setattr(official, "read_cifar_members", no_decoding)
    second = CIFAR10(root=tmp_path)
    np.testing.assert_array_equal(second.images, first.images)
    np.testing.assert_array_equal(second.labels, first.labels)
    assert second.classes == CIFAR10_NAMES


def test_cache_is_refreshed_when_the_source_changes(tmp_path):
    write_cifar10_tar(tmp_path, seed=0)
    old = CIFAR10(root=tmp_path)
    archive = tmp_path / "cifar-10-python.tar.gz"
    stat = archive.stat()
    write_cifar10_tar(tmp_path, seed=1)
    os.utime(archive, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    new = CIFAR10(root=tmp_path)
    assert not np.array_equal(new.images, old.images)
    np.testing.assert_array_equal(new.images, CIFAR10(root=tmp_path, cache=False).images)


def test_data_in_system_folders_are_cached_in_home(tmp_path, monkeypatch):
    system = tmp_path / "usr-share" / "mnist"
    write_mnist(system)
    monkeypatch.setattr(storage, "SYSTEM_DIRS", {"mnist": [str(system)]})
    MNIST()
    assert not (system / "tinycnn-cache").exists()
    assert list((tmp_path / "home" / ".tinycnn" / "cache").glob("*/mnist-train.json"))


def test_cache_false_writes_nothing(tmp_path):
    write_mnist(tmp_path)
    MNIST(root=tmp_path, cache=False)
    assert not (tmp_path / "tinycnn-cache").exists()


# ---------------------------------------------------------------- damaged files

def test_bad_idx_magic_number_names_the_file(tmp_path):
    write_mnist(tmp_path, gzipped=False)
    labels = np.zeros(7, np.uint8)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(labels, IDX_LABELS))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte: IDX magic number is 2049, expected 2051"):
        MNIST(root=tmp_path)


def test_truncated_idx_file_names_the_file(tmp_path):
    write_mnist(tmp_path, gzipped=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte: truncated IDX file"):
        MNIST(root=tmp_path)


def test_truncated_gzip_names_the_file(tmp_path):
    write_mnist(tmp_path, gzipped=True)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte.gz: corrupt or truncated gzip"):
        MNIST(root=tmp_path, train=False)


def test_mnist_image_and_label_counts_must_agree(tmp_path):
    write_mnist(tmp_path, gzipped=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(6, np.uint8), IDX_LABELS))
    with pytest.raises(ValueError, match="holds 7 images but .*train-labels-idx1-ubyte holds 6 labels"):
        MNIST(root=tmp_path)


def test_truncated_tar_names_the_archive(tmp_path):
    write_cifar10_tar(tmp_path)
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(ValueError, match="cifar-10-python.tar.gz: corrupt or truncated archive"):
        CIFAR10(root=tmp_path)


def test_cifar_batch_without_labels_names_the_member(tmp_path):
    members, _ = cifar10_members()
    members["data_batch_2"] = cifar_pickle({b"batch_label": b"batch 2 of 6", b"data": np.zeros((4, 3072), np.uint8),
                                            b"filenames": [b"image.png"] * 4})
    write_tar_gz(tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py", members)
    with pytest.raises(ValueError, match=r"cifar-10-python.tar.gz:cifar-10-batches-py/data_batch_2: "
                                         r"CIFAR batch has no b'labels' entry"):
        CIFAR10(root=tmp_path)


def test_cifar_pickle_with_foreign_objects_is_refused(tmp_path):
    members, _ = cifar10_members()

    class Foreign:
        def __reduce__(self):  # unpickling would call os.path.join: any callable could run
            return (os.path.join, ("code", "could run here"))

    members["test_batch"] = cifar_pickle({b"data": Foreign()})
    write_folder(tmp_path / "cifar-10-batches-py", members)
    with pytest.raises(ValueError, match=r"test_batch: not a readable CIFAR pickle .*refusing to load posixpath.join"):
        CIFAR10(root=tmp_path, train=False)


# ---------------------------------------------------------------- Tiny ImageNet

def test_tiny_imagenet_train_val_test(tmp_path):
    folder, val_wnids = write_tiny_imagenet(tmp_path)
    train = TinyImageNet(root=tmp_path, split="train")
    assert train.wnids == ["n01000002", "n02000003", "n03000001"]
    assert train.classes == ["goldfish, Carassius auratus", "tabby, tabby cat", "school bus"]
    assert train.images.shape == (6, 3, 8, 8) and train.images.dtype == np.uint8
    np.testing.assert_array_equal(train.labels, [0, 0, 1, 1, 2, 2])
    first_file = folder / "train" / "n01000002" / "images" / "n01000002_0.JPEG"
    np.testing.assert_array_equal(train.images[0], pillow_chw(first_file))
    grey_file = folder / "train" / "n01000002" / "images" / "n01000002_1.JPEG"
    np.testing.assert_array_equal(train.images[1], pillow_chw(grey_file))  # grey JPEG comes out RGB

    val = TinyImageNet(root=tmp_path, split="val")
    np.testing.assert_array_equal(val.labels, [train.wnids.index(wnid) for wnid in val_wnids])
    np.testing.assert_array_equal(val.images[3], pillow_chw(folder / "val" / "images" / "val_3.JPEG"))

    test = TinyImageNet(root=tmp_path, split="test")
    assert test.labels is None and test.images.shape == (3, 3, 8, 8)
    assert test.filenames == ["test_0.JPEG", "test_1.JPEG", "test_2.JPEG"]
    assert test[0][1] is None
    with pytest.raises(ValueError, match="split must be one of"):
        TinyImageNet(root=tmp_path, split="validation")


def test_tiny_imagenet_second_load_is_memory_mapped_from_the_cache(tmp_path, monkeypatch):
    write_tiny_imagenet(tmp_path)
    first = TinyImageNet(root=tmp_path, split="val")
    monkeypatch.setattr(official, "read_images", lambda *args, **kwargs: pytest.fail("decoded again"))
    second = TinyImageNet(root=tmp_path, split="val")
    np.testing.assert_array_equal(second.images, first.images)
    assert isinstance(second.images.base, np.memmap) or isinstance(second.images, np.memmap)


def test_tiny_imagenet_zip_is_extracted(tmp_path):
    folder, _ = write_tiny_imagenet(tmp_path / "build")
    archive = tmp_path / "data" / "tiny-imagenet-200.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zip_file:
        for path in sorted(folder.rglob("*")):
            zip_file.write(path, path.relative_to(folder.parent))
    data = TinyImageNet(root=tmp_path / "data", split="train")
    assert (tmp_path / "data" / "tiny-imagenet-200" / "wnids.txt").is_file()
    np.testing.assert_array_equal(data.images, TinyImageNet(root=tmp_path / "build", cache=False).images)


def test_tiny_imagenet_val_image_without_annotation(tmp_path):
    folder, _ = write_tiny_imagenet(tmp_path)
    save_image(folder / "val" / "images" / "val_99.JPEG", np.zeros((8, 8, 3), np.uint8), "JPEG")
    with pytest.raises(ValueError, match=r"val_99.JPEG: validation image has no annotation in .*val_annotations.txt"):
        TinyImageNet(root=tmp_path, split="val")


# ---------------------------------------------------------------- ImageFolder

def write_image_folder(root, size=(6, 5)):
    rng = np.random.default_rng(0)
    arrays = {}
    for name in ("dog", "cat"):
        for k in range(2):
            array = rng.integers(0, 256, size=size + (3,), dtype=np.uint8)
            save_image(root / name / f"{k}.png", array)
            arrays[(name, k)] = array.transpose(2, 0, 1)
    (root / "cat" / "notes.txt").write_text("not an image")
    return arrays


def test_image_folder_classes_labels_and_pixels(tmp_path):
    arrays = write_image_folder(tmp_path / "pets")
    data = ImageFolder(tmp_path / "pets")
    assert data.classes == ["cat", "dog"]
    assert data.images.shape == (4, 3, 6, 5)
    np.testing.assert_array_equal(data.labels, [0, 0, 1, 1])
    assert data.filenames == ["cat/0.png", "cat/1.png", "dog/0.png", "dog/1.png"]
    np.testing.assert_array_equal(data.images[3], arrays[("dog", 1)])  # PNG is lossless
    assert not (tmp_path / "pets" / "tinycnn-cache").exists()  # the folder is left alone


def test_image_folder_resize_and_grey(tmp_path):
    write_image_folder(tmp_path / "pets")
    data = ImageFolder(tmp_path / "pets", size=(4, 3), mode="L")
    assert data.images.shape == (4, 1, 4, 3) and data.images.dtype == np.uint8


def test_image_folder_mixed_sizes_need_resizing(tmp_path):
    write_image_folder(tmp_path / "pets")
    save_image(tmp_path / "pets" / "dog" / "2.png", np.zeros((9, 9, 3), np.uint8))
    with pytest.raises(ValueError, match=r"dog/2.png: image is 9x9 but .* is 6x5; pass size="):
        ImageFolder(tmp_path / "pets", cache=False)


# ---------------------------------------------------------------- DataLoader

def numbered_images(count, size=4):
    """Image k holds the value k everywhere, so a batch shows which samples it took."""
    images = np.broadcast_to(np.arange(count, dtype=np.uint8)[:, None, None, None], (count, 1, size, size))
    return np.ascontiguousarray(images), np.arange(count)


def served(loader, epochs=1):
    """The labels of every batch over ``epochs`` epochs."""
    return [labels.tolist() for _ in range(epochs) for _, labels in loader]


def test_loader_covers_every_sample_once_per_epoch():
    loader = DataLoader(numbered_images(23), batch_size=5, shuffle=True, seed=1)
    assert len(loader) == 5
    epochs = [[], []]
    for epoch in epochs:
        for images, labels in loader:
            assert images.dtype == np.float32 and labels.dtype == np.int64
            np.testing.assert_array_equal(images[:, 0, 0, 0], labels)  # images travel with their labels
            epoch.append(labels.tolist())
    for epoch in epochs:
        assert [len(batch) for batch in epoch] == [5, 5, 5, 5, 3]
        assert sorted(sum(epoch, [])) == list(range(23))
    assert epochs[0] != epochs[1]  # reshuffled


def test_loader_without_shuffle_keeps_the_order():
    assert sum(served(DataLoader(numbered_images(7), batch_size=3)), []) == list(range(7))


def test_loader_drop_last():
    loader = DataLoader(numbered_images(23), batch_size=5, shuffle=True, drop_last=True, seed=2)
    batches = served(loader)
    assert len(loader) == 4 and [len(batch) for batch in batches] == [5, 5, 5, 5]
    assert len(set(sum(batches, []))) == 20


def test_loader_order_is_determined_by_the_seed():
    data = numbered_images(50)
    same = [served(DataLoader(data, batch_size=8, shuffle=True, seed=11), epochs=2) for _ in range(2)]
    other = served(DataLoader(data, batch_size=8, shuffle=True, seed=12), epochs=2)
    assert same[0] == same[1] and same[0] != other


@pytest.mark.parametrize("prefetch", [True, False])
def test_loader_state_round_trip_resumes_the_exact_batches(tmp_path, prefetch):
    data = numbered_images(30, size=6)
    augment = RandomCrop(6, padding=2)

    def make(seed=None):
        return DataLoader(data, batch_size=4, shuffle=True, seed=seed, transform=augment, prefetch=prefetch)

    original = make(seed=5)
    served(original)  # epoch 0
    iterator = iter(original)
    for _ in range(3):
        next(iterator)  # 3 batches of epoch 1
    np.savez(tmp_path / "state.npz", **original.state_dict())  # a checkpoint holds plain ints
    expected = [images for images, _ in iterator] + [images for images, _ in original]  # rest of 1, all of 2

    resumed = make()
    with np.load(tmp_path / "state.npz") as state:
        resumed.load_state_dict(state)
    batches = [images for images, _ in resumed] + [images for images, _ in resumed]
    assert len(batches) == len(expected) == (len(resumed) - 3) + len(resumed)
    for got, want in zip(batches, expected):
        np.testing.assert_array_equal(got, want)  # same samples, same crops


def test_abandoned_epoch_is_not_resumed():
    loader = DataLoader(numbered_images(12), batch_size=4, shuffle=True, seed=0)
    next(iter(loader))
    assert loader.state_dict()["position"] == 1
    assert len(served(loader)) == 3 and loader.state_dict() == {"seed": 0, "epoch": 2, "position": 0}


def test_prefetching_does_not_change_the_batches():
    data = numbered_images(17)
    with_thread = served(DataLoader(data, batch_size=4, shuffle=True, seed=3, prefetch=True), epochs=2)
    without = served(DataLoader(data, batch_size=4, shuffle=True, seed=3, prefetch=False), epochs=2)
    assert with_thread == without


def test_errors_in_the_background_thread_reach_the_caller():
    def broken(images):
        raise RuntimeError("transform failed")

    with pytest.raises(RuntimeError, match="transform failed"):
        served(DataLoader(numbered_images(8), batch_size=4, transform=broken))


def test_loader_accepts_datasets_and_unlabelled_data():
    images, labels = numbered_images(6)
    batches = list(DataLoader(ArrayDataset(images, labels), batch_size=4, transform=lambda batch: batch * 2))
    np.testing.assert_array_equal(batches[0][0][:, 0, 0, 0], [0, 2, 4, 6])
    unlabelled = list(DataLoader((images, None), batch_size=4))
    assert unlabelled[1][1] is None and unlabelled[1][0].shape == (2, 1, 4, 4)


def test_loader_rejects_bad_arguments():
    images, labels = numbered_images(6)
    with pytest.raises(ValueError, match="labels of shape"):
        DataLoader((images, labels[:5]))
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        DataLoader((images, labels), batch_size=0)
    with pytest.raises(TypeError, match="expected a dataset"):
        DataLoader(images)
    with pytest.raises(ValueError, match="invalid state"):
        DataLoader((images, labels), batch_size=4).load_state_dict({"seed": 0, "epoch": 0, "position": 3})
