"""cupy.cuda of the stand-in: one device (id 0), device pointers, the null stream (cupy.cuda.nccl: nccl.py)."""
from .. import _transfer
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


class Stream:
    """A CUDA stream; the stand-in runs everything in order on the host, so only the null one exists."""

    ptr = 0


Stream.null = Stream()


def get_current_stream():
    return Stream.null
