"""Engine-wide settings: the convolution workspace limit.

The limit starts at 256 MiB, or at the TINYCNN_WORKSPACE environment variable: a number of
bytes, optionally with a K, M or G suffix meaning KiB, MiB or GiB (powers of 1024), e.g.
``TINYCNN_WORKSPACE=512M``.

    >>> import tinycnn
    >>> tinycnn.set_workspace_limit("64M")
    >>> tinycnn.get_workspace_limit()
    67108864
    >>> tinycnn.set_workspace_limit(0)
    Traceback (most recent call last):
    ValueError: set_workspace_limit: expected a positive number of bytes (K, M, G suffixes mean KiB, MiB, GiB), got 0
    >>> tinycnn.set_workspace_limit(DEFAULT_WORKSPACE)
"""
import numbers
import os
import re

DEFAULT_WORKSPACE = 256 * 2**20
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}
_SIZE = re.compile(r"\s*(\d+)\s*([KMG]?)(?:iB)?\s*", re.IGNORECASE)


class WorkspaceWarning(UserWarning):
    """One image of a convolution needs more workspace than the limit (conv.Conv2d explains)."""


def parse_bytes(source, value):
    """Bytes from an int or a string such as "1048576", "512K", "256M", "1G" or "256MiB"
    (binary units); `source` names the setting in the error for anything else or below 1."""
    if isinstance(value, str):
        match = _SIZE.fullmatch(value)
        nbytes = int(match[1]) * _UNITS[match[2].upper()] if match else None
    elif isinstance(value, numbers.Integral) and not isinstance(value, bool):
        nbytes = int(value)
    else:
        raise TypeError(f"{source}: expected a number of bytes (an int, or a string such as '256M'), "
                        f"got {value!r}")
    if nbytes is None or nbytes <= 0:
        raise ValueError(f"{source}: expected a positive number of bytes (K, M, G suffixes mean KiB, MiB, GiB), "
                         f"got {value!r}")
    return nbytes


def set_workspace_limit(nbytes):
    """Bound the im2col column buffer (bytes, or a string such as "256M"); convolutions process
    the batch in chunks below it. On the CPU the chunks are smaller still (a few MiB, to stay in
    cache). One image is never split: an image that alone needs more uses what it needs, with a
    WorkspaceWarning. The buffers are kept for reuse until ``tinycnn.release_scratch()``."""
    global _workspace_limit
    _workspace_limit = parse_bytes("set_workspace_limit", nbytes)


def get_workspace_limit():
    return _workspace_limit


_workspace_limit = parse_bytes("TINYCNN_WORKSPACE", os.environ.get("TINYCNN_WORKSPACE", DEFAULT_WORKSPACE))
