"""cupy.cuda.nccl of the stand-in: an NCCL communicator whose collectives run over MPI.

NCCL reduces device memory given by pointer; here the "device" memory is the NumPy array
behind a stand-in cupy.ndarray (``MemoryPointer.ptr`` is its address), so each call views
that memory and sums it across the ranks with mpi4py, as NCCL sums across GPUs. The
communicator checks what a real one relies on: every rank passes the same unique id (which
tinycnn broadcasts over MPI), the rank and size of the MPI world, and known types and ops.
"""
import ctypes

import numpy
from mpi4py import MPI

NCCL_INT8, NCCL_UINT8, NCCL_INT32, NCCL_UINT32, NCCL_INT64, NCCL_UINT64 = 0, 1, 2, 3, 4, 5
NCCL_FLOAT16, NCCL_FLOAT32, NCCL_FLOAT64 = 6, 7, 8
NCCL_SUM, NCCL_PROD, NCCL_MAX, NCCL_MIN = 0, 1, 2, 3
_TYPES = {NCCL_INT8: numpy.int8, NCCL_UINT8: numpy.uint8, NCCL_INT32: numpy.int32, NCCL_UINT32: numpy.uint32,
          NCCL_INT64: numpy.int64, NCCL_UINT64: numpy.uint64, NCCL_FLOAT16: numpy.float16,
          NCCL_FLOAT32: numpy.float32, NCCL_FLOAT64: numpy.float64}
_OPS = {NCCL_SUM: MPI.SUM, NCCL_PROD: MPI.PROD, NCCL_MAX: MPI.MAX, NCCL_MIN: MPI.MIN}
available = True


class NcclError(RuntimeError):
    pass


def get_unique_id():
    """128 random bytes, as ncclGetUniqueId's (a different one in every process)."""
    return tuple(int(b) for b in numpy.random.default_rng().integers(-128, 128, 128))


def _memory(pointer, count, datatype):
    if datatype not in _TYPES:
        raise NcclError(f"invalid NCCL datatype {datatype}")
    dtype = numpy.dtype(_TYPES[datatype])
    raw = (ctypes.c_char * (count * dtype.itemsize)).from_address(pointer)
    return numpy.frombuffer(raw, dtype=dtype)


def _check_stream(stream):
    if not isinstance(stream, int):
        raise TypeError(f"stand-in NCCL: stream must be a stream's pointer (Stream.ptr), got {type(stream).__name__}")


class NcclCommunicator:
    def __init__(self, ndev, commId, rank):  # noqa: N803 (CuPy's names)
        world = MPI.COMM_WORLD
        if (ndev, rank) != (world.Get_size(), world.Get_rank()):
            raise NcclError(f"stand-in NCCL: communicator of {ndev} ranks, rank {rank}, in an MPI world of "
                            f"{world.Get_size()}, rank {world.Get_rank()}")
        if len(set(world.allgather(tuple(commId)))) != 1:
            raise NcclError("stand-in NCCL: the ranks passed different unique ids (broadcast rank 0's)")
        self._comm, self._rank = world.Dup(), rank

    def size(self):
        return self._comm.Get_size()

    def rank_id(self):
        return self._rank

    def allReduce(self, sendbuf, recvbuf, count, datatype, op, stream):  # noqa: N802
        _check_stream(stream)
        send, receive = _memory(sendbuf, count, datatype), _memory(recvbuf, count, datatype)
        self._comm.Allreduce(MPI.IN_PLACE if sendbuf == recvbuf else send, receive, op=_OPS[op])

    def bcast(self, buff, count, datatype, root, stream):
        _check_stream(stream)
        self._comm.Bcast(_memory(buff, count, datatype), root=root)

    def destroy(self):
        self._comm.Free()

    def abort(self):
        self._comm.Abort(1)
