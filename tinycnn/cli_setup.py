"""What the ``tinycnn`` command builds from names and checkpoints (datasets, models, optimizers,
schedules), and the checks it makes before any data is read.

    >>> dataset_name("Fashion_MNIST")
    'fashion-mnist'
    >>> parse_options(["dropout=0.3", "act=elu"])
    {'dropout': 0.3, 'act': 'elu'}
"""
import argparse
import ast
import os
import sys

import numpy as np

DATASET_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "cifar-10": "cifar10",
                   "cifar-100": "cifar100", "tinyimagenet": "tiny-imagenet", "tiny_imagenet": "tiny-imagenet"}
DATASET_NAMES = ("mnist", "fashion-mnist", "cifar10", "cifar100", "tiny-imagenet", "folder")
SCHEDULES = ("none", "step", "poly", "cosine", "piecewise")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")


class CLIError(Exception):
    """A mistake in the command line: printed as one line on stderr, exit status 2."""


# ----- datasets -----------------------------------------------------------------------
def dataset_name(name):
    """The canonical dataset name (``fashion_mnist`` -> ``fashion-mnist``), or CLIError."""
    canonical = DATASET_ALIASES.get(str(name).lower(), str(name).lower())
    if canonical not in DATASET_NAMES:
        raise CLIError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASET_NAMES)}")
    return canonical


def load_split(name, split, root=None, limit=None, seed=0, download=False):
    """The ``"train"`` or ``"test"`` split of a dataset (Tiny ImageNet's test split is its labelled val).

    ``limit`` keeps a random subset of that many images (the same one for a given seed);
    ``download`` fetches a missing official dataset.
    """
    from . import data

    train = split == "train"
    if name == "folder":
        if root is None:
            raise CLIError("--dataset folder needs --data-root DIR with DIR/train/<class>/... and DIR/test/<class>/...")
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
    from .data import RandomAffine, RandomCrop, RandomHorizontalFlip

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
    from .data import channel_means
    return {"scale": "1/255", "mean": (channel_means(train_set) / 255).astype(np.float32)}


def transform_of(preprocessing, augment=()):
    """Augmentation (on uint8 images), then ToFloat and the mean subtraction."""
    from .data import Compose, MeanSubtract, ToFloat
    return Compose(list(augment) + [ToFloat(), MeanSubtract(np.asarray(preprocessing["mean"], dtype=np.float32))])


# ----- models ---------------------------------------------------------------------------
def build_model(name, num_classes, image_shape, options=None):
    """``tinycnn.models.get(name, ...)``, adapted to the dataset's image shape where the builder allows.

    Raises CLIError for an unknown model or one whose input does not fit ``image_shape``.
    """
    from . import models
    from .tensor import Tensor, no_grad

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
    try:
        model = models.get(name, num_classes=num_classes, **options)
    except (TypeError, ValueError) as error:
        raise CLIError(f"cannot build {name!r} with options {options}: {error}") from None
    expected = tuple(getattr(model, "input_shape", image_shape))
    if expected != image_shape:
        try:  # some models (global pooling) take other sizes: try one image
            model.eval()
            with no_grad():
                model(Tensor(np.zeros((1, *image_shape), dtype=np.float32)))
            model.train()
        except (ValueError, TypeError) as error:
            raise CLIError(f"model {name!r} takes {_shape_text(expected)} images, the dataset has "
                           f"{_shape_text(image_shape)} ({error})") from None
        print(f"note: {name} was designed for {_shape_text(expected)} images; "
              f"running it on {_shape_text(image_shape)}", file=sys.stderr)
    return model


def canonical_model_name(name):
    """The registered name for ``name`` (case and aliases resolved), or CLIError."""
    from . import models
    try:
        return models.resolve(name)
    except ValueError:
        raise CLIError(f"unknown model {name!r}; available: {', '.join(models.available())}") from None


def builder_parameters(name):
    """Names of the keyword arguments the model's builder accepts."""
    import inspect
    from .models import registry
    return set(inspect.signature(registry._builders[canonical_model_name(name)]).parameters)


def _shape_text(shape):
    return "x".join(str(s) for s in shape)


def _model_by_name(name, num_classes, options):
    from . import models
    name = canonical_model_name(name)
    try:
        return models.get(name, num_classes=num_classes, **options)
    except (TypeError, ValueError) as error:
        raise CLIError(f"cannot build {name!r} with options {options}: {error}") from None


def parse_options(pairs):
    """``["aux=False", "widths=(32, 64)"]`` -> ``{"aux": False, "widths": (32, 64)}`` (Python literals or text)."""
    options = {}
    for pair in pairs:
        if isinstance(pair, dict):
            options.update(pair)
            continue
        key, sep, text = str(pair).partition("=")
        if not sep or not key.isidentifier():
            raise CLIError(f"--model-option expects KEY=VALUE, got {pair!r}")
        try:
            options[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            options[key] = text
    return options


def make_optimizer(config, parameters):
    from . import optim
    name, lr, decay = config["optimizer"], float(config["lr"]), float(config["weight_decay"])
    if name == "sgd":
        return optim.SGD(parameters, lr=lr, momentum=float(config["momentum"]), nesterov=bool(config["nesterov"]),
                         weight_decay=decay)
    if name == "rmsprop":
        return optim.RMSprop(parameters, lr=lr, momentum=float(config["momentum"]), weight_decay=decay)
    return (optim.Adam if name == "adam" else optim.AdamW)(parameters, lr=lr, weight_decay=decay)


def make_schedule(config, optimizer):
    from . import optim
    name, epochs = config["schedule"], int(config["epochs"])
    if name == "none":
        return None
    if name == "step":
        return optim.StepDecay(optimizer, step_size=int(config["step_size"]), gamma=float(config["gamma"]))
    if name == "poly":
        return optim.PolynomialDecay(optimizer, max_epochs=epochs, power=float(config["power"]))
    if name == "cosine":
        return optim.CosineAnnealing(optimizer, T_max=epochs)
    return optim.PiecewiseConstant(optimizer, boundaries=config["boundaries"], values=config["values"])


# ----- checks made before any data is read ----------------------------------------------------
def positive_int(text):
    """argparse type for sizes and counts: an int >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {value}")
    return value


def check_folder(path, option="--out"):
    """CLIError unless ``path`` is a folder or can become one (no file in the way, writable)."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):  # the nearest part of the path that is there
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        where = "is a file" if existing == os.path.abspath(path) else f"is under the file {existing}"
        raise CLIError(f"{option} {path} {where}, so it cannot be a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CLIError(f"{option} {path}: no permission to write in {existing}")


def check_device(device):
    """CLIError for ``cuda`` when CuPy or a CUDA device is missing (before the data is loaded)."""
    from .cuda import is_available
    if device == "cuda" and not is_available():
        raise CLIError("--device cuda: no usable CUDA GPU (CuPy not installed, no driver or no device); "
                       "use --device cpu")


def read_checkpoint_or_fail(path):
    """The checkpoint at ``path``, or CLIError naming it (missing, unreadable, damaged, not a checkpoint)."""
    from .train import read_checkpoint
    try:
        return read_checkpoint(path)
    except (OSError, ValueError) as error:
        raise CLIError(str(error)) from None


def model_from_checkpoint(checkpoint, path):
    """Rebuild the trained model (weights loaded) from the facts a checkpoint stores."""
    meta = checkpoint.get("meta") or {}
    if not isinstance(meta, dict) or "model" not in meta or "input_shape" not in meta:
        raise CLIError(f"{path}: the checkpoint does not name its model (write checkpoints with `tinycnn train`)")
    shape, classes = meta["input_shape"], meta.get("classes")
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(s, (int, np.integer)) and s > 0
                                                                for s in shape)):
        raise CLIError(f"{path}: the checkpoint's input shape {shape!r} is not three positive ints")
    if not isinstance(classes, list) or not classes:
        raise CLIError(f"{path}: the checkpoint lists no classes")
    model = build_model(meta["model"], len(classes), shape, meta.get("model_options"))
    load_weights(model, checkpoint, path)
    return model, meta, classes


def load_weights(model, checkpoint, path):
    """Load the checkpoint's weights into ``model``, or CLIError naming the file."""
    try:
        model.load_state_dict(checkpoint["model"])
    except (KeyError, ValueError, TypeError) as error:
        raise CLIError(f"{path}: the checkpoint's weights do not fit the model {type(model).__name__}: "
                       f"{error}") from None


def preprocessing_from(checkpoint, path):
    """The checkpoint's preprocessing (the channel means), or CLIError."""
    preprocessing = checkpoint.get("preprocessing")
    if not isinstance(preprocessing, dict) or "mean" not in preprocessing:
        raise CLIError(f"{path}: the checkpoint holds no preprocessing (write checkpoints with `tinycnn train`)")
    return preprocessing
