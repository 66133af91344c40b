"""Training checkpoints: everything a run needs to continue exactly where it stopped.

A checkpoint is one ``.npz`` written atomically by ``tinycnn.save`` (temp file, then
rename) with these top-level keys:

    model          parameters and buffers (e.g. BatchNorm running statistics)
    optimizer      the optimizer's state_dict (lrs, momentum buffers, Adam moments)
    schedule       the lr schedule's position and base lrs, or None
    epoch          epochs completed
    batch          batches already done in the next epoch (non-zero after ctrl+c)
    progress       the running sums of that partly done epoch
    rng            tinycnn's generator, NumPy's global one and the training loader's
    history        the metrics of every epoch so far (dict of lists)
    preprocessing  how the training data was prepared (e.g. channel means), or None
    meta           free-form facts about the run (model name and options, dataset, ...)

``read_checkpoint`` gives back the same structure.

    >>> import numpy as np, os, tempfile, tinycnn
    >>> path = os.path.join(tempfile.mkdtemp(), "weights.npz")
    >>> tinycnn.save({"model": {"fc.weight": np.ones(2)}, "epoch": 3}, path)
    >>> read_checkpoint(path)["epoch"]
    3
"""
import os

import numpy as np

from .. import random as tinycnn_random
from ..io import CheckpointError, load

_BIG_INT = "bigint:"  # Python ints wider than 64 bits (PCG64 states) are stored as strings
_INT64 = np.iinfo(np.int64)


def to_savable(value):
    """A copy of ``value`` that ``tinycnn.save`` can store: wide ints become strings, tuples lists."""
    if isinstance(value, dict):
        return {key: to_savable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_savable(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and not _INT64.min <= value <= _INT64.max:
        return _BIG_INT + str(value)
    return value


def from_saved(value):
    """Undo ``to_savable``: ``"bigint:123..."`` strings become ints again."""
    if isinstance(value, dict):
        return {key: from_saved(item) for key, item in value.items()}
    if isinstance(value, list):
        return [from_saved(item) for item in value]
    if isinstance(value, str) and value.startswith(_BIG_INT):
        return int(value[len(_BIG_INT):])
    return value


def capture_rng(loader=None):
    """The state of every generator a training run draws from, ready for ``tinycnn.save``."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state = {
        "tinycnn": tinycnn_random.get_state(),
        "numpy": {"name": name, "keys": keys, "position": position,
                  "has_gauss": has_gauss, "cached_gaussian": cached_gaussian},
        "loader": loader.state_dict() if hasattr(loader, "state_dict") else None,
    }
    return to_savable(state)


def restore_rng(state, loader=None, include_loader=True):
    """Put back generators saved by ``capture_rng`` (the loader's only when ``include_loader``)."""
    state = from_saved(state)
    tinycnn_random.set_state(state["tinycnn"])
    saved = state["numpy"]
    np.random.set_state((saved["name"], np.asarray(saved["keys"], dtype=np.uint32), int(saved["position"]),
                         int(saved["has_gauss"]), float(saved["cached_gaussian"])))
    if include_loader:
        restore_loader(state.get("loader"), loader)


def restore_loader(loader_state, loader):
    """Give ``loader`` back its saved state (shuffling order, augmentation generator)."""
    loader_state = from_saved(loader_state)
    if loader_state is not None and hasattr(loader, "load_state_dict"):
        loader.load_state_dict(loader_state)


def history_to_savable(history):
    """Dict of lists -> dict of float64 arrays (one npz entry per metric rather than one per value)."""
    return {key: np.asarray(values, dtype=np.float64) for key, values in history.items()}


def history_from_saved(saved):
    return {key: [float(v) for v in np.atleast_1d(values)] for key, values in (saved or {}).items()}


def read_checkpoint(path, max_bytes=None):
    """Load a checkpoint written by ``fit``'s callbacks (or any ``tinycnn.save`` file with a ``model`` key).

    Raises FileNotFoundError for a missing file and ``tinycnn.io.CheckpointError`` (a
    ValueError) for a damaged file or one that is not a checkpoint, each naming the
    path. ``max_bytes`` is passed to ``tinycnn.load``.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint {path!r} is a folder, not a .npz file")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")
    state = load(path, max_bytes=max_bytes)
    if "model" not in state:
        raise CheckpointError(f"checkpoint {path!r} holds no model state (keys: {sorted(state)})")
    return state
