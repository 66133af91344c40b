"""Reusable scratch memory for the column buffers of convolutions on the CPU.

A convolution needs an im2col column buffer for each chunk of the batch, and in backward a
second one for its gradient. Allocating them fresh for every layer costs page faults: on
the development machine first-touching a new 75 MB buffer took longer than filling it with
im2col. So each thread keeps one byte buffer per name, grows it when a larger one is asked
for, and hands out views of it. A view holds garbage until written, and stays valid only
until the next ``scratch`` call with the same name on the same thread.

    >>> import numpy as np
    >>> a = scratch("example", (2, 3), np.float32)
    >>> b = scratch("example", (3, 2), np.float32)
    >>> np.shares_memory(a, b)
    True
"""
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
    """Free the scratch buffers of every thread (the convolution workers' too); the next
    convolution allocates them again. Views handed out earlier keep their memory alive."""
    with _lock:
        for buffers in list(_every_thread):
            buffers.clear()
