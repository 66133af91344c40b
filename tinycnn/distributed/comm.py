"""Processes and collectives: one process per device, MPI between them, NCCL for GPU arrays.

Start N processes with ``mpirun -np N python train.py``; each calls ``init()`` once. Host
(NumPy) arrays always travel over MPI (mpi4py); with ``backend="nccl"`` each process takes
the GPU numbered by its rank on its node, and device (CuPy) arrays travel over NCCL
(``cupy.cuda.nccl``), whose communicator is set up over MPI: rank 0 draws the NCCL unique
id and MPI broadcasts it, as ChainerMN does. Without mpirun, ``init()`` gives a world of one.

    >>> import numpy as np
    >>> from tinycnn import distributed as dist
    >>> dist.init("mpi")
    >>> x = np.full(3, float(dist.rank() + 1), np.float32)
    >>> dist.all_reduce(x, op="sum") is x      # in place: every rank now holds the sum
    True
    >>> x.tolist() == [dist.world_size() * (dist.world_size() + 1) / 2] * 3
    True

After ``init()`` an uncaught exception (ctrl+c included) in any process prints its error
and calls ``MPI_Abort``, which ends every process of the job: no peer is left waiting in a
collective for a process that has gone.
"""
import sys

import numpy as np

from ..backend import is_cupy_array, unwrap
from ..tensor import Tensor

OPS = ("sum", "mean", "max")


class _World:
    comm = None          # mpi4py's COMM_WORLD once init() ran
    backend = None
    local_rank = 0
    nccl = None          # _Nccl with backend="nccl"


_world = _World()


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError("tinycnn.distributed needs mpi4py and an MPI library: apt-get install openmpi-bin "
                          "libopenmpi-dev, then pip install -e '.[distributed]'") from error
    return MPI


def init(backend="mpi"):
    """Join the job started by mpirun (a world of one without it); call once per process.

    ``backend``: "mpi" (CPU processes) or "nccl" (one GPU per process, chosen by
    ``local_rank()``; needs CuPy with NCCL). Calling it again with the same backend does nothing.
    """
    if backend not in ("mpi", "nccl"):
        raise ValueError(f"distributed.init: backend must be 'mpi' or 'nccl', got {backend!r}")
    if _world.comm is not None:
        if backend != _world.backend:
            raise RuntimeError(f"distributed.init: already initialized with backend {_world.backend!r}, "
                               f"asked for {backend!r}")
        return
    comm = _mpi().COMM_WORLD
    node = comm.Split_type(_mpi().COMM_TYPE_SHARED)   # the processes sharing this machine's memory
    _world.local_rank = node.Get_rank()
    node.Free()
    if backend == "nccl":
        _world.nccl = _Nccl(comm, _world.local_rank)
    _world.comm, _world.backend = comm, backend
    _abort_on_uncaught_exception(comm)


def is_initialized():
    return _world.comm is not None


def backend():
    """"mpi" or "nccl" (None before ``init``)."""
    return _world.backend


def _comm():
    if _world.comm is None:
        raise RuntimeError("tinycnn.distributed: call tinycnn.distributed.init() first (once per process)")
    return _world.comm


def rank():
    """This process's number in the job, 0 .. world_size() - 1."""
    return _comm().Get_rank()


def world_size():
    return _comm().Get_size()


def local_rank():
    """This process's number among those on the same machine (the GPU it uses with NCCL)."""
    _comm()
    return _world.local_rank


def barrier():
    """Wait until every process gets here."""
    _comm().Barrier()


def abort(message, code=1):
    """Print ``message`` with this rank and end every process of the job (MPI_Abort)."""
    comm = _comm()
    sys.stderr.write(f"tinycnn.distributed: rank {comm.Get_rank()} of {comm.Get_size()}: {message}\n")
    sys.stderr.flush()
    comm.Abort(code)


def all_reduce(array, op="sum", async_op=False):
    """Reduce ``array`` over every process, in place: afterwards each holds the sum (mean, max).

    ``array``: a NumPy array (over MPI) or, with backend "nccl", a CuPy array (over NCCL),
    contiguous, the same shape and dtype on every rank; a Tensor's data is reduced in place.
    Returns ``array``, or with ``async_op=True`` a handle whose ``wait()`` returns the reduced
    raw array (the reduction then runs while this process goes on: leave the array alone until then).
    """
    if op not in OPS:
        raise ValueError(f"distributed.all_reduce: op must be one of {OPS}, got {op!r}")
    data = _checked("all_reduce", array)
    if op == "mean" and data.dtype.kind != "f":
        raise TypeError(f"distributed.all_reduce: op 'mean' needs a floating-point array, got {data.dtype}")
    if is_cupy_array(data):
        handle = _world.nccl.all_reduce(data, op)
    else:
        mpi = _mpi()
        request = _comm().Iallreduce(mpi.IN_PLACE, data, op=mpi.MAX if op == "max" else mpi.SUM)
        handle = _Pending(data, op, request)
    if isinstance(array, Tensor):
        array._bump_version("all_reduce")
    if async_op:
        return handle
    handle.wait()
    return array


def broadcast(array, root=0):
    """Copy rank ``root``'s ``array`` into every other rank's, in place; returns it."""
    data = _checked("broadcast", array)
    if not 0 <= root < world_size():
        raise ValueError(f"distributed.broadcast: root must be a rank in 0..{world_size() - 1}, got {root!r}")
    if is_cupy_array(data):
        _world.nccl.broadcast(data, root)
    else:
        _comm().Bcast(data, root=root)
    if isinstance(array, Tensor):
        array._bump_version("broadcast")
    return array


def gather(value, root=0):
    """The Python objects (pickled) of every rank, as a list in rank order on ``root``; None elsewhere."""
    return _comm().gather(value, root=root)


def test_all(handles):
    """Let MPI progress the pending reductions (Open MPI moves nonblocking collectives only
    inside MPI calls); True when all are done. NCCL handles progress on the GPU by themselves."""
    requests = [h.request for h in handles if getattr(h, "request", None) is not None]
    return _mpi().Request.Testall(requests) if requests else True


class _Pending:
    """A reduction under way: ``wait()`` returns the array once every rank has contributed."""

    def __init__(self, array, op, request=None):
        self.array, self.op, self.request = array, op, request

    def wait(self):
        if self.request is not None:
            self.request.Wait()
            self.request = None
            if self.op == "mean":
                self.array /= world_size()
        return self.array


class _NcclPending:
    """An NCCL reduction queued on the communication stream; ``wait()`` makes the current
    stream wait for it (the host does not wait) and returns the array."""

    def __init__(self, cupy, array, op, done, size):
        self.cupy, self.array, self.op, self.done, self.size = cupy, array, op, done, size

    def wait(self):
        if self.done is not None:
            self.cupy.cuda.get_current_stream().wait_event(self.done)
            self.done = None
            if self.op == "mean":
                self.array /= self.size
        return self.array


class _Nccl:
    """An NCCL communicator of every rank, each on GPU ``local_rank``, built over MPI."""

    TYPES = {"float16": "NCCL_FLOAT16", "float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64",
             "int32": "NCCL_INT32", "int64": "NCCL_INT64", "uint8": "NCCL_UINT8"}

    def __init__(self, comm, local_rank):
        try:
            import cupy
            from cupy.cuda import nccl
        except ImportError as error:
            raise ImportError("distributed.init(backend='nccl') needs CuPy built with NCCL: pip install -e "
                              "'.[cuda]' (on CPUs use backend='mpi')") from error
        count = cupy.cuda.runtime.getDeviceCount()
        if local_rank >= count:
            raise RuntimeError(f"distributed.init(backend='nccl'): this is process {local_rank} on its machine, "
                               f"which has {count} GPU(s); start one process per GPU")
        cupy.cuda.Device(local_rank).use()
        unique_id = comm.bcast(nccl.get_unique_id() if comm.Get_rank() == 0 else None, root=0)
        self.cupy, self.nccl = cupy, nccl
        self.comm = nccl.NcclCommunicator(comm.Get_size(), unique_id, comm.Get_rank())
        self.stream = cupy.cuda.Stream(non_blocking=True)

    def _type(self, array):
        name = self.TYPES.get(array.dtype.name)
        if name is None:
            raise TypeError(f"distributed (nccl): arrays of dtype {array.dtype} cannot be reduced; "
                            f"expected one of {sorted(self.TYPES)}")
        return getattr(self.nccl, name)

    def all_reduce(self, array, op):
        # on a stream of its own, after the kernels queued so far (those that wrote `array`):
        # the GPU reduces while it runs the rest of backward on the compute stream
        compute = self.cupy.cuda.get_current_stream()
        self.stream.wait_event(compute.record())
        nccl_op = self.nccl.NCCL_MAX if op == "max" else self.nccl.NCCL_SUM
        self.comm.allReduce(array.data.ptr, array.data.ptr, array.size, self._type(array), nccl_op, self.stream.ptr)
        return _NcclPending(self.cupy, array, op, self.stream.record(), self.comm.size())

    def broadcast(self, array, root):
        self.comm.bcast(array.data.ptr, array.size, self._type(array), root,
                        self.cupy.cuda.get_current_stream().ptr)


def _checked(op, array):
    """The raw array behind ``array`` (a Tensor or an array), checked for the collectives."""
    data = unwrap(array)
    if not isinstance(data, np.ndarray) and not is_cupy_array(data):
        raise TypeError(f"distributed.{op}: expected a NumPy/CuPy array or a Tensor, got {type(array).__name__}")
    if is_cupy_array(data) and _world.backend != "nccl":
        raise TypeError(f"distributed.{op}: a GPU (CuPy) array needs init(backend='nccl'); this process "
                        f"was initialized with backend {_world.backend!r}")
    if not data.flags.c_contiguous:
        raise ValueError(f"distributed.{op}: the array must be C-contiguous (collectives work in place); "
                         "pass np.ascontiguousarray(x) and use what comes back")
    _comm()
    return data


def _abort_on_uncaught_exception(comm):
    """An uncaught exception in any rank ends the whole job instead of leaving its peers hung."""
    if comm.Get_size() == 1:
        return
    previous = sys.excepthook

    def hook(kind, value, traceback):
        previous(kind, value, traceback)
        what = "interrupted (ctrl+c)" if issubclass(kind, KeyboardInterrupt) else f"{kind.__name__}: {value}"
        abort(f"{what}; stopping every rank of the job (MPI_Abort)")

    sys.excepthook = hook
