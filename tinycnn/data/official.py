"""The official datasets: CIFAR-10, CIFAR-100, MNIST, Fashion-MNIST and Tiny ImageNet.

Each finds its files (search order in tinycnn.data.storage), decodes them once and
caches the arrays, so the next load is a plain ``np.load``; after that it is an
``ArrayDataset`` (datasets.py) like any other::

    train = CIFAR10(train=True)           # finds cifar-10-python.tar.gz or cifar-10-batches-py
    test = FashionMNIST(train=False)      # finds Debian's /usr/share/datasets/fashion-mnist

Errors: ``FileNotFoundError`` when the data are missing (it lists where they were looked
for and which file to place where) or a class folder holds no image; ``ValueError`` for a
bad argument or a damaged file, naming the file (see tinycnn.data.formats for the
readers' errors and size limits); ``ConnectionError`` when ``download=True`` finds no
network.
"""
import numpy as np

from . import storage
from .datasets import ArrayDataset, _class_files
from .formats import (IDX_IMAGES, IDX_LABELS, cifar_arrays, cifar_names, image_files, natural_key,
                      read_cifar_members, read_idx_ubyte, read_images)


class _OfficialDataset(ArrayDataset):
    """Finding, downloading and decoding-once for datasets with an official distribution."""
    name = ""      # folder name under the data folders, e.g. "cifar10"
    title = ""     # shown in messages, e.g. "CIFAR-10"
    url = ""       # where the files come from, shown in messages
    expected = ""  # what to place in the data folder, shown in messages

    @classmethod
    def find(cls, directory):
        """The dataset's file or folder inside ``directory``, or None."""
        raise NotImplementedError

    @classmethod
    def download_files(cls):
        """``(file name, md5, urls)`` for each file that ``download=True`` fetches: by default
        the one archive ``cls.archive`` with checksum ``cls.md5`` from ``cls.url``."""
        return [(cls.archive, cls.md5, [cls.url])]

    @classmethod
    def _resolve(cls, root, download):
        """The first location holding the data and what was found there, downloading on request."""
        locations = storage.search_locations(cls.name, root)
        for location in locations:
            found = cls.find(location.path)
            if found is not None:
                return location, found
        target = storage.download_dir(cls.name, root)
        if not download:
            looked = "".join(f"\n  {location.path}" for location in locations)
            raise FileNotFoundError(f"{cls.title}: no data found; looked in:{looked}\n"
                                    f"Place {cls.expected} in {target} (from {cls.url}), "
                                    f"or pass download=True")
        for filename, md5, urls in cls.download_files():
            if not (target / filename).is_file():
                storage.download(urls, target / filename, md5)
        found = cls.find(target)
        if found is None:
            raise FileNotFoundError(f"{cls.title}: the downloaded files in {target} are not laid out as expected")
        return storage.Location(target, "download", found), found

    @staticmethod
    def _decode_once(location, key, sources, decode, cache, mmap_mode=None):
        """``decode()``'s arrays, read from the cache when the source files are unchanged."""
        if not cache:
            return decode()
        dirs = storage.cache_dirs(location.path, beside_data=location.origin != "system")
        return storage.load_cached(dirs, key, storage.file_signature(sources), decode, mmap_mode)


def locate(name, root=None):
    """Where dataset ``name`` is looked for, in order, and what was found in each folder.

    >>> [location.origin for location in locate("cifar10", root="data")][:2]
    ['root', 'root']
    """
    if name not in DATASETS:
        raise ValueError(f"locate: unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    locations = storage.search_locations(name, root)
    for location in locations:
        location.found = DATASETS[name].find(location.path)
    return locations


def _check_labels(labels, count, where):
    if labels.size and (labels.min() < 0 or labels.max() >= count):
        raise ValueError(f"{where}: labels must lie in [0, {count}), found {labels.min()}..{labels.max()}")


def _split(train):
    return "train" if train else "test"


class _CIFAR(_OfficialDataset):
    archive = folder = meta_file = md5 = ""
    train_files = test_files = ()
    label_names = {}  # label array -> its class-name list, both named as in the pickles

    @classmethod
    def find(cls, directory):
        for folder in (directory / cls.folder, directory):
            if (folder / cls.meta_file).is_file() and (folder / cls.test_files[0]).is_file():
                return folder
        archive = directory / cls.archive
        return archive if archive.is_file() else None

    def _load(self, root, train, download, cache, labels):
        location, found = self._resolve(root, download)
        members = list(self.train_files if train else self.test_files)
        sources = [found] if found.is_file() else [found / member for member in members + [self.meta_file]]
        arrays, meta = self._decode_once(location, f"{self.name}-{_split(train)}", sources,
                                         lambda: self._decode(found, members), cache)
        super().__init__(arrays["images"], arrays[labels], meta[self.label_names[labels]])
        self.source = found

    def _decode(self, found, members):
        files = read_cifar_members(found, self.folder, members + [self.meta_file])
        meta_where, meta = files[self.meta_file]
        class_names = {key: cifar_names(meta, key.encode(), meta_where) for key in self.label_names.values()}
        label_keys = [key.encode() for key in self.label_names]
        images, labels = [], {key: [] for key in self.label_names}
        for member in members:
            where, batch = files[member]
            batch_images, batch_labels = cifar_arrays(batch, label_keys, where)
            images.append(batch_images)
            for (key, names_key), values in zip(self.label_names.items(), batch_labels):
                _check_labels(values, len(class_names[names_key]), where)
                labels[key].append(values)
        arrays = {"images": np.concatenate(images)}
        arrays.update({key: np.concatenate(parts) for key, parts in labels.items()})
        return arrays, class_names


class CIFAR10(_CIFAR):
    """CIFAR-10: 60,000 32x32 colour images in 10 classes, 50,000 for training.

    Reads the official ``cifar-10-python.tar.gz`` directly or its extracted folder
    ``cifar-10-batches-py``. ``images`` (N, 3, 32, 32) uint8, ``labels`` int64.
    Example: ``CIFAR10(train=False).classes[:3] == ['airplane', 'automobile', 'bird']``.
    """
    name, title = "cifar10", "CIFAR-10"
    url = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    archive, folder, meta_file = "cifar-10-python.tar.gz", "cifar-10-batches-py", "batches.meta"
    md5 = "c58f30108f718f92721af3b95e74349a"
    expected = "cifar-10-python.tar.gz (or its extracted folder cifar-10-batches-py)"
    train_files = tuple(f"data_batch_{i}" for i in range(1, 6))
    test_files = ("test_batch",)
    label_names = {"labels": "label_names"}

    def __init__(self, root=None, train=True, download=False, cache=True):
        self._load(root, train, download, cache, labels="labels")


class CIFAR100(_CIFAR):
    """CIFAR-100: 60,000 32x32 colour images; 100 fine classes grouped in 20 coarse ones.

    ``label_mode="fine"`` (default) or ``"coarse"`` picks the labels and class names.
    Example: ``CIFAR100(label_mode="coarse").num_classes == 20``.
    """
    name, title = "cifar100", "CIFAR-100"
    url = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
    archive, folder, meta_file = "cifar-100-python.tar.gz", "cifar-100-python", "meta"
    md5 = "eb9058c3a382ffc7106e4002c42a8d85"
    expected = "cifar-100-python.tar.gz (or its extracted folder cifar-100-python)"
    train_files, test_files = ("train",), ("test",)
    label_names = {"fine_labels": "fine_label_names", "coarse_labels": "coarse_label_names"}

    def __init__(self, root=None, train=True, label_mode="fine", download=False, cache=True):
        if label_mode not in ("fine", "coarse"):
            raise ValueError(f"CIFAR100: label_mode must be 'fine' or 'coarse', got {label_mode!r}")
        self.label_mode = label_mode
        self._load(root, train, download, cache, labels=f"{label_mode}_labels")


def _idx_path(directory, base):
    """``directory/base`` or ``directory/base.gz``, whichever exists, else None."""
    for path in (directory / base, directory / f"{base}.gz"):
        if path.is_file():
            return path
    return None


class MNIST(_OfficialDataset):
    """MNIST handwritten digits: 60,000 + 10,000 28x28 grey images, ``images`` (N, 1, 28, 28).

    Reads the four official IDX files, gzipped or not.
    Example: ``MNIST(train=False).images.shape == (10000, 1, 28, 28)``.
    """
    name, title = "mnist", "MNIST"
    mirrors = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
    url = mirrors[0]
    md5 = {  # published checksums of the .gz files (torchvision's resource list)
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }
    files = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
    expected = ("train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz "
                "and t10k-labels-idx1-ubyte.gz (gzipped or not)")
    class_names = [str(digit) for digit in range(10)]

    @classmethod
    def download_files(cls):
        return [(filename, md5, [mirror + filename for mirror in cls.mirrors]) for filename, md5 in cls.md5.items()]

    @classmethod
    def find(cls, directory):
        bases = [base for pair in cls.files.values() for base in pair]
        return directory if all(_idx_path(directory, base) for base in bases) else None

    def __init__(self, root=None, train=True, download=False, cache=True):
        location, found = self._resolve(root, download)
        image_file, label_file = (_idx_path(found, base) for base in self.files[_split(train)])
        arrays, _ = self._decode_once(location, f"{self.name}-{_split(train)}", [image_file, label_file],
                                      lambda: self._decode(image_file, label_file), cache)
        super().__init__(arrays["images"], arrays["labels"], self.class_names)
        self.source = found

    def _decode(self, image_file, label_file):
        images = read_idx_ubyte(image_file, IDX_IMAGES)  # (N, H, W)
        labels = read_idx_ubyte(label_file, IDX_LABELS).astype(np.int64)
        if len(images) != len(labels):
            raise ValueError(f"{self.title}: {image_file} holds {len(images)} images "
                             f"but {label_file} holds {len(labels)} labels")
        _check_labels(labels, len(self.class_names), label_file)
        return {"images": images[:, None], "labels": labels}, {}  # (N, 1, H, W)


class FashionMNIST(MNIST):
    """Fashion-MNIST (Zalando): MNIST's format and sizes, 10 classes of clothing.

    Debian's ``dataset-fashion-mnist`` package installs the files in
    /usr/share/datasets/fashion-mnist, which is searched last.
    Example: ``FashionMNIST().classes[9] == 'Ankle boot'``.
    """
    name, title = "fashion-mnist", "Fashion-MNIST"
    mirrors = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
               "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/")
    url = mirrors[0]
    md5 = {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    }
    class_names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def _read_lines(path):
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not a UTF-8 text file ({error})") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


class TinyImageNet(_OfficialDataset):
    """Tiny ImageNet (cs231n): 200 classes of 64x64 colour images, ``images`` (N, 3, 64, 64).

    ``split``: "train" (100,000 images, 500 a class), "val" (10,000, labelled by
    val/val_annotations.txt) or "test" (10,000; its labels were never published, so
    ``labels`` is None there). Labels index the sorted WordNet ids ``wnids``;
    ``classes`` holds their names from words.txt. ``filenames`` lists the image files
    (to write out test predictions). The cached arrays are memory-mapped read-only
    (train is 1.2 GB). The zip is extracted beside itself through a temporary folder, so
    an interrupted extraction is never mistaken for a finished one.
    Example: ``TinyImageNet(split="val").wnids[0] == 'n01443537'``.
    """
    name, title = "tiny-imagenet", "Tiny ImageNet"
    url = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
    archive, folder = "tiny-imagenet-200.zip", "tiny-imagenet-200"
    md5 = "90528d7ca1a48142e341f4ef8d21d0de"  # not published by Stanford; the checksum in common use
    expected = "tiny-imagenet-200.zip (or its extracted folder tiny-imagenet-200)"
    splits = ("train", "val", "test")

    @classmethod
    def find(cls, directory):
        for folder in (directory / cls.folder, directory):
            if (folder / "wnids.txt").is_file():
                return folder
        archive = directory / cls.archive
        return archive if archive.is_file() else None

    def __init__(self, root=None, split="train", download=False, cache=True):
        if split not in self.splits:
            raise ValueError(f"TinyImageNet: split must be one of {self.splits}, got {split!r}")
        location, found = self._resolve(root, download)
        folder = storage.extract_zip(found, self.folder, "wnids.txt") if found.is_file() else found
        self.wnids = sorted(_read_lines(folder / "wnids.txt"))
        words = dict(line.split("\t", 1) for line in _read_lines(folder / "words.txt") if "\t" in line)
        missing = [wnid for wnid in self.wnids if wnid not in words]
        if missing:
            raise ValueError(f"{folder / 'words.txt'}: no name for {missing[0]} (listed in wnids.txt)")
        paths, labels = self._listing(folder, split)
        if not paths:
            raise ValueError(f"{folder}: no {split} images found")
        sources = [folder / "wnids.txt", folder / "words.txt", *paths]

        def decode():
            return {"images": read_images(paths, desc=f"decoding Tiny ImageNet {split}")}, {}

        arrays, _ = self._decode_once(location, f"{self.name}-{split}", sources, decode, cache, mmap_mode="r")
        super().__init__(arrays["images"], labels, [words[wnid] for wnid in self.wnids])
        self.split, self.source = split, folder
        self.filenames = [path.name for path in paths]

    def _listing(self, folder, split):
        """Image paths of ``split`` and their labels (None for test)."""
        index = {wnid: label for label, wnid in enumerate(self.wnids)}
        if split == "test":
            return image_files(folder / "test" / "images"), None
        if split == "val":
            return _val_listing(folder / "val", index)
        paths, labels = [], []
        for wnid in self.wnids:
            images_dir = folder / "train" / wnid / "images"
            if not images_dir.is_dir():
                raise FileNotFoundError(f"{images_dir}: training images of {wnid} (listed in wnids.txt) are missing")
            files = _class_files(images_dir, f"TinyImageNet: the training images of {wnid}")
            paths += files
            labels += [index[wnid]] * len(files)
        return paths, np.array(labels, dtype=np.int64)


def _val_listing(val_dir, index):
    """val/images/*.JPEG with labels from val/val_annotations.txt (file, wnid, box)."""
    annotations = val_dir / "val_annotations.txt"
    label_of = {}
    for number, line in enumerate(_read_lines(annotations), 1):
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in index:
            raise ValueError(f"{annotations}, line {number}: expected '<file>\\t<wnid>\\t<box>' "
                             f"with a wnid from wnids.txt, got {line!r}")
        label_of[fields[0]] = index[fields[1]]
    paths = image_files(val_dir / "images")
    for path in paths:
        if path.name not in label_of:
            raise ValueError(f"{path}: validation image has no annotation in {annotations}")
    missing = sorted(set(label_of) - {path.name for path in paths}, key=natural_key)
    if missing:
        raise FileNotFoundError(f"{val_dir / 'images' / missing[0]}: annotated in {annotations} "
                                f"but missing ({len(missing)} annotated images missing)")
    return paths, np.array([label_of[path.name] for path in paths], dtype=np.int64)


DATASETS = {cls.name: cls for cls in (CIFAR10, CIFAR100, MNIST, FashionMNIST, TinyImageNet)}
