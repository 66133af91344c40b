"""Datasets held in memory: ``images`` uint8 (N, C, H, W), ``labels`` int64 (N,), ``classes``.

Images are stored channels-first (NCHW), the layout the whole engine uses, and as
uint8 so CIFAR-10 takes 150 MB rather than 600; the DataLoader turns each batch into
float32.

    >>> import numpy as np
    >>> data = ArrayDataset(np.zeros((4, 3, 8, 8), np.uint8), [0, 1, 0, 1], ["cat", "dog"])
    >>> image, label = data[1]
    >>> image.shape, data.classes[label]
    ((3, 8, 8), 'dog')

This file holds ``ArrayDataset`` (your own arrays) and ``ImageFolder`` (your own image
files, one folder per class). The official datasets (CIFAR-10/100, MNIST, Fashion-MNIST,
Tiny ImageNet), which find, download and decode their files, are in official.py and can
be imported from here as well.

Errors: ``FileNotFoundError`` when a folder is missing or a class folder holds no image;
``ValueError`` for a bad argument or a damaged file, naming the file (see
tinycnn.data.formats for the readers' errors and size limits).
"""
from pathlib import Path

import numpy as np

from . import storage
from .formats import IMAGE_EXTENSIONS, image_files, read_images


class ArrayDataset:
    """Images and labels as arrays; ``labels`` may be None for unlabelled data."""

    def __init__(self, images, labels, classes=None):
        name = type(self).__name__
        images = np.asarray(images)
        if images.ndim != 4:
            raise ValueError(f"{name}: images must be a 4-D (N, C, H, W) array, got shape {images.shape}")
        if labels is not None:
            labels = np.asarray(labels, dtype=np.int64)
            if labels.shape != (len(images),):
                raise ValueError(f"{name}: got {labels.size} labels for {len(images)} images")
            if classes is None:
                classes = [str(k) for k in range(int(labels.max(initial=-1)) + 1)]
        self.images, self.labels = images, labels
        self.classes = list(classes) if classes is not None else []

    @property
    def num_classes(self):
        return len(self.classes)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        """``(image, label)``; a slice or index array gives a batch of each."""
        if self.labels is None:
            return self.images[index], None
        label = self.labels[index]
        return self.images[index], (int(label) if np.ndim(label) == 0 else label)

    def __repr__(self):
        _, channels, height, width = self.images.shape
        return (f"{type(self).__name__}({len(self)} images, {channels}x{height}x{width}, "
                f"{self.num_classes} classes)")


def _class_files(folder, what):
    """The image files of one class folder; none is an error, as in torchvision and Keras."""
    files = image_files(folder)
    if not files:
        raise FileNotFoundError(f"{what}: {folder} holds no image file (extensions {', '.join(IMAGE_EXTENSIONS)})")
    return files


class ImageFolder(ArrayDataset):
    """Images sorted into one folder per class: ``root/<class>/<image>.png|jpg|...``.

    ``classes`` are the sorted folder names. Images are converted to ``mode`` ("RGB",
    or "L" for grey) and, with ``size=(height, width)``, resized; without it all images
    must share one size. Every class folder must hold at least one image file (as in
    torchvision and Keras): an empty one is a FileNotFoundError naming it. The decoded
    arrays are cached in ~/.tinycnn/cache, leaving ``root`` untouched.
    Example: ``ImageFolder("flowers/train", size=(64, 64))``.
    """

    def __init__(self, root, size=None, mode="RGB", cache=True):
        root = Path(root).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"ImageFolder: {root} is not a folder")
        if mode not in ("RGB", "L"):
            raise ValueError(f"ImageFolder: mode must be 'RGB' or 'L', got {mode!r}")
        if size is not None:
            size = (size, size) if isinstance(size, int) else tuple(size)
            if len(size) != 2 or min(size) < 1:
                raise ValueError(f"ImageFolder: size must be an int or (height, width), got {size!r}")
        classes = sorted(entry.name for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith("."))
        if not classes:
            raise ValueError(f"ImageFolder: {root} has no class folders (expected root/<class>/<image>)")
        paths, labels = [], []
        for label, name in enumerate(classes):
            files = _class_files(root / name, f"ImageFolder: class {name!r}")
            paths += files
            labels += [label] * len(files)

        def decode():
            return {"images": read_images(paths, mode, size, desc=f"decoding {root.name}")}, {}

        if cache:
            key = f"images-{mode}" + (f"-{size[0]}x{size[1]}" if size else "")
            dirs = storage.cache_dirs(root, beside_data=False)
            arrays, _ = storage.load_cached(dirs, key, storage.file_signature(paths), decode)
        else:
            arrays, _ = decode()
        super().__init__(arrays["images"], labels, classes)
        self.source = root
        self.filenames = [str(path.relative_to(root)) for path in paths]


# official.py builds on ArrayDataset, so it comes last; its datasets stay importable from here too.
from .official import CIFAR10, CIFAR100, DATASETS, MNIST, FashionMNIST, TinyImageNet, locate  # noqa: E402,F401
