"""Reusable memory on the CPU: scratch buffers for convolutions, and freed memory kept.

A convolution needs an im2col column buffer for each chunk of the batch, and in backward a
second one for its gradient. Allocating them fresh for every layer costs page faults, so
each thread keeps one byte buffer per name, grows it when a larger one is asked for, and
hands out views of it. A view holds garbage until written, and stays valid only
until the next ``scratch`` call with the same name on the same thread.

    >>> import numpy as np
    >>> a = scratch("example", (2, 3), np.float32)
    >>> b = scratch("example", (3, 2), np.float32)
    >>> np.shares_memory(a, b)
    True

The rest of a training step's arrays (activations, gradients) are fresh NumPy arrays, freed
when the step ends. glibc returns large freed blocks to the OS at once, so the next step
faults every page in again; ``keep_freed_memory()``, which ``tinycnn.train.fit`` and the
benchmarks call, asks glibc to keep them for reuse.
"""
import ctypes
import math
import threading
import weakref

import numpy as np

_local = threading.local()
_every_thread = weakref.WeakSet()      # each living thread's buffers, for release_scratch
_lock = threading.Lock()


class _Buffers(dict):
    """One thread's buffers by name (a dict subclass, so a WeakSet can hold it)."""
    __hash__ = object.__hash__


def _buffers():
    buffers = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = _Buffers()
        with _lock:
            _every_thread.add(buffers)
    return buffers


def scratch(name, shape, dtype):
    """An uninitialised C-contiguous NumPy array of `shape` and `dtype`, reusing the memory
    of the previous call with the same `name` on this thread when it is large enough."""
    buffers = _buffers()
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    buffer = buffers.get(name)
    if buffer is None or buffer.nbytes < nbytes:
        buffers.pop(name, None)                 # free the old one before allocating
        buffer = buffers[name] = np.empty(max(nbytes, 1), np.uint8)
    return buffer[:nbytes].view(dtype).reshape(shape)


def release_scratch():
    """Free the scratch buffers of every thread (the convolution workers' too), and give
    freed memory kept by ``keep_freed_memory`` back to the OS; the next convolution
    allocates its buffers again. Views handed out earlier keep their memory alive."""
    with _lock:
        for buffers in list(_every_thread):
            buffers.clear()
    if _glibc is not None:
        _glibc.malloc_trim(0)


def _load_glibc():
    try:
        library = ctypes.CDLL("libc.so.6")
        library.mallopt, library.malloc_trim     # glibc's malloc, not another C library's
    except (OSError, AttributeError):
        return None
    return library


_glibc = _load_glibc()


def keep_freed_memory():
    """Keep memory freed by one training step for the next instead of returning it to the OS
    (glibc's ``mallopt``: large blocks come from the heap, which is never trimmed). Affects the
    whole process; the resident size stays at its peak until ``release_scratch()``. Returns
    False where the C library is not glibc (nothing changes).

        >>> import tinycnn
        >>> tinycnn.keep_freed_memory() in (True, False)
        True
    """
    if _glibc is None:
        return False
    m_trim_threshold, m_mmap_threshold, largest = -1, -3, 2**31 - 1
    return bool(_glibc.mallopt(m_mmap_threshold, largest)) and bool(_glibc.mallopt(m_trim_threshold, largest))
