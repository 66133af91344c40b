"""What the ``tinycnn`` command needs beyond tinycnn.train: its error, ``KEY=VALUE`` options,
argparse types, and models rebuilt from checkpoints. Datasets, models, optimizers and
schedules are built by tinycnn.train.builders, as for any run.

    >>> parse_options(["dropout=0.3", "act=elu"])
    {'dropout': 0.3, 'act': 'elu'}
"""
import argparse
import ast

import numpy as np

from .train.builders import RecipeError, build_model
from .train.recipe import load_weights


class CLIError(Exception):
    """A mistake in the command line: printed as one line on stderr, exit status 2."""


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


# ----- argparse types and checkpoints ----------------------------------------------------------
def positive_int(text):
    """argparse type for sizes and counts: an int >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {value}")
    return value


def read_checkpoint_or_fail(path):
    """The checkpoint at ``path``, or CLIError naming it (missing, unreadable, damaged, not a checkpoint)."""
    from .train import read_checkpoint
    try:
        return read_checkpoint(path)
    except (OSError, ValueError) as error:
        raise CLIError(str(error)) from None


def model_from_checkpoint(checkpoint, path):
    """Rebuild the trained model (weights loaded) from the facts a checkpoint stores, or CLIError."""
    meta = checkpoint.get("meta") or {}
    if not isinstance(meta, dict) or "model" not in meta or "input_shape" not in meta:
        raise CLIError(f"{path}: the checkpoint does not name its model (write checkpoints with `tinycnn train`)")
    shape, classes = meta["input_shape"], meta.get("classes")
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(s, (int, np.integer)) and s > 0
                                                                for s in shape)):
        raise CLIError(f"{path}: the checkpoint's input shape {shape!r} is not three positive ints")
    if not isinstance(classes, list) or not classes:
        raise CLIError(f"{path}: the checkpoint lists no classes")
    try:
        model = build_model(meta["model"], len(classes), shape, meta.get("model_options"))
        load_weights(model, checkpoint, path)
    except RecipeError as error:
        raise CLIError(str(error)) from None
    return model, meta, classes


def preprocessing_from(checkpoint, path):
    """The checkpoint's preprocessing (the channel means), or CLIError."""
    preprocessing = checkpoint.get("preprocessing")
    if not isinstance(preprocessing, dict) or "mean" not in preprocessing:
        raise CLIError(f"{path}: the checkpoint holds no preprocessing (write checkpoints with `tinycnn train`)")
    return preprocessing
