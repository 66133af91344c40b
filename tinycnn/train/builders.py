"""The pieces of a training run, built from names: datasets, models, optimizers and lr schedules,
and the checks a run makes before it reads any data. ``tinycnn.train.run`` and the ``tinycnn``
command build every run with them; a hand-written script can too.

    >>> dataset_name("Fashion_MNIST")
    'fashion-mnist'
    >>> model = build_model("minivgg", num_classes=10, image_shape=(3, 32, 32))
    >>> optimizer = make_optimizer("sgd", model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    >>> make_schedule("step", optimizer, epochs=40, step_size=5, gamma=0.5).per
    'epoch'

Each function raises ``RecipeError`` (a ValueError) naming what it cannot build.
"""
import inspect
import os
import sys

import numpy as np

DATASET_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "cifar-10": "cifar10",
                   "cifar-100": "cifar100", "tinyimagenet": "tiny-imagenet", "tiny_imagenet": "tiny-imagenet"}
DATASET_NAMES = ("mnist", "fashion-mnist", "cifar10", "cifar100", "tiny-imagenet", "folder")
SCHEDULES = ("none", "step", "poly", "cosine", "piecewise")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")


class RecipeError(ValueError):
    """A run that cannot be built: an unknown model or dataset, a model that does not fit the
    images, a folder that cannot be written, a checkpoint that does not match its recipe."""


# ----- datasets -----------------------------------------------------------------------
def dataset_name(name):
    """The canonical dataset name (``fashion_mnist`` -> ``fashion-mnist``), or RecipeError."""
    canonical = DATASET_ALIASES.get(str(name).lower(), str(name).lower())
    if canonical not in DATASET_NAMES:
        raise RecipeError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASET_NAMES)}")
    return canonical


def load_split(name, split, root=None, limit=None, seed=0, download=False):
    """The ``"train"`` or ``"test"`` split of a dataset (Tiny ImageNet's test split is its labelled val).

    ``root`` is the folder holding the dataset (else the usual search: ``tinycnn datasets``
    lists it); the ``folder`` dataset reads ``root/train/<class>/*`` and ``root/test/<class>/*``
    (or ``root/val``). ``limit`` keeps a random subset of that many images (the same one for a
    given seed); ``download`` fetches a missing official dataset.
    """
    from .. import data

    name, train = dataset_name(name), split == "train"
    if split not in ("train", "test"):
        raise RecipeError(f"load_split: split must be 'train' or 'test', got {split!r}")
    if name == "folder":
        if root is None:
            raise RecipeError("the folder dataset needs its root folder (--data-root DIR) holding "
                              "DIR/train/<class>/... and DIR/test/<class>/...")
        folder = os.path.join(root, "train" if train else "test")
        if not train and not os.path.isdir(folder):
            folder = os.path.join(root, "val")
        dataset = data.ImageFolder(folder)
    elif name == "tiny-imagenet":
        dataset = data.TinyImageNet(root, split="train" if train else "val", download=download)
    else:
        dataset = data.DATASETS[name](root, train=train, download=download)
    if limit is not None and limit < len(dataset):
        keep = np.sort(np.random.default_rng([seed, int(train)]).choice(len(dataset), size=limit, replace=False))
        dataset = data.ArrayDataset(dataset.images[keep], dataset.labels[keep], dataset.classes)
    return dataset


def augmentation(name, image_shape):
    """The dataset's usual augmentation, as in the course: shifts for digits, crops and flips for photos."""
    from ..data import RandomAffine, RandomCrop, RandomHorizontalFlip

    if name == "mnist":  # no flips: a mirrored digit is another symbol
        return [RandomAffine(rotation_range=10, width_shift_range=0.1, height_shift_range=0.1, zoom_range=0.1)]
    if name == "fashion-mnist":
        return [RandomAffine(width_shift_range=0.1, height_shift_range=0.1, horizontal_flip=True)]
    if name == "tiny-imagenet":  # DeeperGoogLeNet's ImageDataGenerator settings
        return [RandomAffine(rotation_range=18, zoom_range=0.15, width_shift_range=0.2, height_shift_range=0.2,
                             shear_range=0.15, horizontal_flip=True)]
    size = tuple(image_shape[1:])
    return [RandomCrop(size, padding=max(1, size[0] // 8)), RandomHorizontalFlip()]


def preprocessing_of(train_set):
    """Scale pixels to [0, 1] and subtract the training set's per-channel means (stored in checkpoints)."""
    from ..data import channel_means
    return {"scale": "1/255", "mean": (channel_means(train_set) / 255).astype(np.float32)}


def transform_of(preprocessing, augment=()):
    """Augmentation (on uint8 images), then ToFloat and the mean subtraction, or Standardize
    ((x - mean) / std) when the preprocessing has a ``std`` (converted torchvision checkpoints)."""
    from ..data import Compose, MeanSubtract, Standardize, ToFloat
    mean = np.asarray(preprocessing["mean"], dtype=np.float32)
    if preprocessing.get("std") is not None:
        last = Standardize(mean, np.asarray(preprocessing["std"], dtype=np.float32))
    else:
        last = MeanSubtract(mean)
    return Compose(list(augment) + [ToFloat(), last])


# ----- models ---------------------------------------------------------------------------
def build_model(name, num_classes, image_shape, options=None):
    """``tinycnn.models.get(name, ...)``, adapted to the dataset's image shape where the builder allows.

    Raises RecipeError for an unknown model or one whose input does not fit ``image_shape``.
    """
    from .. import models
    from ..tensor import Tensor, no_grad

    name = canonical_model_name(name)
    options = {key: tuple(value) if isinstance(value, list) else value for key, value in (options or {}).items()}
    image_shape = tuple(int(s) for s in image_shape)
    accepted = builder_parameters(name)
    if "input_shape" in accepted:
        options.setdefault("input_shape", image_shape)
    else:
        if "in_channels" in accepted:
            options.setdefault("in_channels", image_shape[0])
        if "input_size" in accepted and image_shape[1] == image_shape[2]:
            options.setdefault("input_size", image_shape[1])
    model = model_by_name(name, num_classes, options)
    expected = tuple(getattr(model, "input_shape", image_shape))
    if expected != image_shape:
        try:  # some models (global pooling) take other sizes: try one image
            model.eval()
            with no_grad():
                model(Tensor(np.zeros((1, *image_shape), dtype=np.float32)))
            model.train()
        except (ValueError, TypeError) as error:
            raise RecipeError(f"model {name!r} takes {shape_text(expected)} images, the dataset has "
                              f"{shape_text(image_shape)} ({error})") from None
        print(f"note: {name} was designed for {shape_text(expected)} images; "
              f"running it on {shape_text(image_shape)}", file=sys.stderr)
    return model


def model_by_name(name, num_classes, options):
    """``tinycnn.models.get(name, num_classes=..., **options)``, or RecipeError."""
    from .. import models
    name = canonical_model_name(name)
    try:
        return models.get(name, num_classes=num_classes, **options)
    except (TypeError, ValueError) as error:
        raise RecipeError(f"cannot build {name!r} with options {options}: {error}") from None


def canonical_model_name(name):
    """The registered name for ``name`` (case and aliases resolved), or RecipeError."""
    from .. import models
    try:
        return models.resolve(name)
    except ValueError:
        raise RecipeError(f"unknown model {name!r}; available: {', '.join(models.available())}") from None


def builder_parameters(name):
    """Names of the keyword arguments the model's builder accepts."""
    from ..models import registry
    return set(inspect.signature(registry._builders[canonical_model_name(name)]).parameters)


def builder_defaults(name):
    """``{option: default}`` of the model's builder."""
    from ..models import registry
    parameters = inspect.signature(registry._builders[canonical_model_name(name)]).parameters
    return {key: p.default for key, p in parameters.items() if p.default is not inspect.Parameter.empty}


def shape_text(shape):
    """``(3, 32, 32)`` -> ``"3x32x32"``."""
    return "x".join(str(s) for s in shape)


def model_from_checkpoint(checkpoint, path=None):
    """``(model, meta, classes)``: the trained model rebuilt from the facts a checkpoint of
    ``tinycnn train`` (or ``convert_torchvision``) stores, its weights loaded; RecipeError naming
    the file otherwise. ``checkpoint``: a path or what ``read_checkpoint`` returned."""
    from .checkpoint import read_checkpoint
    from .recipe import load_weights
    if not isinstance(checkpoint, dict):
        path, checkpoint = os.fspath(checkpoint), read_checkpoint(checkpoint)
    path = path or "the checkpoint"
    meta = checkpoint.get("meta") or {}
    if not isinstance(meta, dict) or "model" not in meta or "input_shape" not in meta:
        raise RecipeError(f"{path}: the checkpoint does not name its model (write checkpoints with `tinycnn train`)")
    shape, classes = meta["input_shape"], meta.get("classes")
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(s, (int, np.integer)) and s > 0
                                                                for s in shape)):
        raise RecipeError(f"{path}: the checkpoint's input shape {shape!r} is not three positive ints")
    if not isinstance(classes, list) or not classes:
        raise RecipeError(f"{path}: the checkpoint lists no classes")
    model = build_model(meta["model"], len(classes), shape, meta.get("model_options"))
    load_weights(model, checkpoint, path)
    return model, meta, classes


def load_model(checkpoint):
    """The model of a checkpoint written by ``tinycnn train``/``tinycnn.train.run`` (or by
    ``tinycnn.models.convert_torchvision``), rebuilt from its meta with its weights loaded,
    in training mode as every builder returns it (``.eval()`` to predict).
    ``model.classes`` lists the class names and ``model.preprocessing`` the input preparation.

        model = tinycnn.load_model("runs/minivgg_fashion-mnist/checkpoints/best.npz").eval()
    """
    from .checkpoint import read_checkpoint
    path = None
    if not isinstance(checkpoint, dict):
        path, checkpoint = os.fspath(checkpoint), read_checkpoint(checkpoint)
    model, _, classes = model_from_checkpoint(checkpoint, path)
    model.classes, model.preprocessing = list(classes), checkpoint.get("preprocessing")
    return model


# ----- optimizers and schedules -----------------------------------------------------------
def make_optimizer(name, parameters, lr, momentum=0.9, nesterov=False, weight_decay=0.0):
    """One of OPTIMIZERS by name: SGD (momentum, nesterov), RMSprop (momentum), Adam, AdamW."""
    from .. import optim
    if name not in OPTIMIZERS:
        raise RecipeError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")
    lr, decay = float(lr), float(weight_decay)
    if name == "sgd":
        return optim.SGD(parameters, lr=lr, momentum=float(momentum), nesterov=bool(nesterov), weight_decay=decay)
    if name == "rmsprop":
        return optim.RMSprop(parameters, lr=lr, momentum=float(momentum), weight_decay=decay)
    return (optim.Adam if name == "adam" else optim.AdamW)(parameters, lr=lr, weight_decay=decay)


def make_schedule(name, optimizer, epochs, step_size=10, gamma=0.5, power=1.0, boundaries=None, values=None):
    """One of SCHEDULES by name, stepped once per epoch; None for ``"none"``.

    ``step``: the lr times ``gamma`` every ``step_size`` epochs; ``poly``: to 0 at ``epochs``
    along a power ``power`` curve; ``cosine``: a half cosine to 0 at ``epochs``;
    ``piecewise``: ``values[i]`` from epoch ``boundaries[i - 1]`` on.
    """
    from .. import optim
    if name not in SCHEDULES:
        raise RecipeError(f"unknown schedule {name!r}; choose one of: {', '.join(SCHEDULES)}")
    if name == "none":
        return None
    if name == "step":
        return optim.StepDecay(optimizer, step_size=int(step_size), gamma=float(gamma))
    if name == "poly":
        return optim.PolynomialDecay(optimizer, max_epochs=int(epochs), power=float(power))
    if name == "cosine":
        return optim.CosineAnnealing(optimizer, T_max=int(epochs))
    if not (boundaries and values):
        raise RecipeError("the piecewise schedule needs boundaries and values, e.g. boundaries=[20, 30], "
                          "values=[1e-3, 1e-4, 1e-5]")
    return optim.PiecewiseConstant(optimizer, boundaries=boundaries, values=values)


# ----- checks made before any data is read ----------------------------------------------------
def check_folder(path, option="out"):
    """RecipeError unless ``path`` is a folder or can become one (no file in the way, writable);
    ``option`` names the setting in the message."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):  # the nearest part of the path that is there
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        where = "is a file" if existing == os.path.abspath(path) else f"is under the file {existing}"
        raise RecipeError(f"{option} {path} {where}, so it cannot be a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RecipeError(f"{option} {path}: no permission to write in {existing}")


def check_device(device, option="device"):
    """RecipeError for ``cuda`` when CuPy or a CUDA device is missing (before the data is loaded)."""
    from ..cuda import is_available
    if device not in ("cpu", "cuda"):
        raise RecipeError(f"{option} must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not is_available():
        raise RecipeError(f"{option} cuda: no usable CUDA GPU (CuPy not installed, no driver or no device); "
                          "use cpu")
