"""Grad mode: whether ops record the graph, per thread (as PyTorch).

Each thread has its own switch and every new thread starts with gradients on, so a
``no_grad`` block in one thread (an evaluation loop, a data-loading thread) never turns
recording off in another, and overlapping blocks in two threads each restore their own.

    >>> import tinycnn
    >>> with tinycnn.no_grad():
    ...     tinycnn.is_grad_enabled()
    False
    >>> tinycnn.is_grad_enabled()
    True
"""
import contextlib
import threading


class _GradMode(threading.local):
    enabled = True   # the class value is every new thread's starting value


_mode = _GradMode()


def is_grad_enabled():
    """Whether ops called in this thread record the graph."""
    return _mode.enabled


@contextlib.contextmanager
def _grad_mode(enabled):
    """Record the graph inside the block if ``enabled``, not otherwise (this thread only)."""
    previous = _mode.enabled
    _mode.enabled = enabled
    try:
        yield
    finally:
        _mode.enabled = previous


def no_grad():
    """Record no graph inside the block (inference, parameter updates), in this thread.

        >>> import tinycnn
        >>> with no_grad():
        ...     y = tinycnn.Tensor([1.0], requires_grad=True) * 2
        >>> y.requires_grad
        False
    """
    return _grad_mode(False)


def enable_grad():
    """Re-enable graph recording inside a ``no_grad`` block, in this thread."""
    return _grad_mode(True)
