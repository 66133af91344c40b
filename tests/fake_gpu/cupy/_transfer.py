"""Every crossing between host and device memory, counted, and syncs refused on request.

A copy to the host (``.get()``, ``.item()``, ``float(a)``, printing, ...) makes the host wait
for the GPU; ``cupyx.allow_synchronize(False)`` turns each one into ``DeviceSynchronized``, as
CuPy's detector does (the stand-in also counts ``cuda.Device().synchronize()`` as one).
Copies to the device are asynchronous in CuPy and always allowed; both kinds are counted in
``counts``.
"""
import contextlib

counts = {"host_to_device": 0, "device_to_host": 0}
_allowed = True


class DeviceSynchronized(RuntimeError):
    """Raised when the host waits for the device inside ``allow_synchronize(False)``."""

    def __init__(self, message=None):
        super().__init__(message or "Device synchronization was detected while disallowed.")


def declare_synchronize(what):
    """The host is about to wait for the device because of `what`."""
    if not _allowed:
        raise DeviceSynchronized(f"Device synchronization was detected while disallowed: {what}")


@contextlib.contextmanager
def allow_synchronize(allow):
    """Allow or refuse host synchronisation inside the block (cupyx.allow_synchronize)."""
    global _allowed
    previous, _allowed = _allowed, bool(allow)
    try:
        yield
    finally:
        _allowed = previous


def to_host(array, what):
    """A host copy of the NumPy array behind a device array."""
    declare_synchronize(what)
    counts["device_to_host"] += 1
    return array.copy()


def count_host_to_device():
    counts["host_to_device"] += 1
