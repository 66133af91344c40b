"""Engine-wide settings.

    >>> import tinycnn
    >>> tinycnn.set_workspace_limit(64 * 2**20)
    >>> tinycnn.get_workspace_limit()
    67108864
"""
import os

DEFAULT_WORKSPACE = 256 * 2**20
_workspace_limit = int(os.environ.get("TINYCNN_WORKSPACE", DEFAULT_WORKSPACE))


def set_workspace_limit(nbytes):
    """Bound the im2col column buffer (bytes); convolutions process the batch in chunks below it.
    On the CPU the chunks are smaller still (a few MiB, to stay in cache) unless one image
    needs more; the buffers are kept for reuse until ``tinycnn.release_scratch()``."""
    global _workspace_limit
    nbytes = int(nbytes)
    if nbytes <= 0:
        raise ValueError(f"set_workspace_limit: expected a positive number of bytes, got {nbytes}")
    _workspace_limit = nbytes


def get_workspace_limit():
    return _workspace_limit
