"""cupy.cuda of the stand-in: one device (id 0), device pointers, streams and events (cupy.cuda.nccl: nccl.py)."""
import contextlib

from .. import _launches, _transfer
from . import runtime


class Device:
    """The only device; ``synchronize()`` makes the host wait for it (a host sync)."""

    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)
        if not 0 <= self.id < runtime.getDeviceCount():
            raise runtime.CUDARuntimeError(101)          # cudaErrorInvalidDevice

    def synchronize(self):
        _transfer.declare_synchronize("cuda.Device().synchronize()")

    def use(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False


class MemoryPointer:
    """What ``ndarray.data`` is in CuPy: the array's device memory, not its values."""

    __module__ = "cupy.cuda.memory"

    def __init__(self, array):
        self.device_id = 0
        self.ptr = array._array.__array_interface__["data"][0]


class Event:
    """A point in a stream; the stand-in has run everything before it already."""

    def record(self, stream=None):
        return self

    def synchronize(self):
        _transfer.declare_synchronize("cuda.Event().synchronize()")


class Stream:
    """A CUDA stream. The stand-in runs every kernel at once, in order, on the host: waiting
    on an event has nothing left to wait for."""

    def __init__(self, null=False, non_blocking=False, ptds=False):
        self.ptr = 0 if null else id(self)

    def record(self, event=None):
        return (event or Event()).record(self)

    def wait_event(self, event):
        if not isinstance(event, Event):
            raise TypeError(f"Stream.wait_event: expected a cupy.cuda.Event, got {type(event).__name__}")


    def begin_capture(self, mode=None):
        """Start capturing this stream's work into a graph (see cupy/_launches.py for what the
        stand-in records); the work does not run until the graph is launched."""
        _launches.begin_capture()

    def end_capture(self):
        return Graph(_launches.end_capture())

    def is_capturing(self):
        return _launches.capturing()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False


class Graph:
    """A captured graph: ``launch()`` runs its work again, in order, as one launch."""

    def __init__(self, records):
        self._records = records

    def launch(self, stream=None):
        _launches.replay(self._records)


class MemoryPool:
    """A device memory pool (the stand-in's arrays are NumPy's; the pool only gives them out)."""

    def malloc(self, size):
        return size

    def used_bytes(self):
        return 0


@contextlib.contextmanager
def using_allocator(allocator=None):
    """Allocate from ``allocator`` inside the block (cupy.cuda.using_allocator)."""
    yield


Stream.null = Stream(null=True)


def get_current_stream():
    return Stream.null
