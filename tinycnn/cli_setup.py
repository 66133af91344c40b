"""What the ``tinycnn`` command needs beyond tinycnn.train: its error, ``KEY=VALUE`` options,
argparse types, and models rebuilt from checkpoints (by ``tinycnn.load_model``'s code). Datasets, models, optimizers and
schedules are built by tinycnn.train.builders, as for any run.

    >>> parse_options(["dropout=0.3", "act=elu"])
    {'dropout': 0.3, 'act': 'elu'}
"""
import argparse
import ast

from .train import builders
from .train.builders import RecipeError


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
    """``(model, meta, classes)`` rebuilt from a checkpoint (tinycnn.train.builders.model_from_checkpoint,
    behind ``tinycnn.load_model``), or CLIError."""
    try:
        return builders.model_from_checkpoint(checkpoint, path)
    except RecipeError as error:
        raise CLIError(str(error)) from None


def preprocessing_from(checkpoint, path):
    """The checkpoint's preprocessing (the channel means), or CLIError."""
    preprocessing = checkpoint.get("preprocessing")
    if not isinstance(preprocessing, dict) or "mean" not in preprocessing:
        raise CLIError(f"{path}: the checkpoint holds no preprocessing (write checkpoints with `tinycnn train`)")
    return preprocessing
