"""Data-parallel training over MPI (CPU processes) and NCCL (GPUs): ``mpirun -np N``, one process per device.

    mpirun -np 2 python train.py

with, in train.py::

    from tinycnn import distributed as dist
    dist.init("mpi")                                     # or "nccl": one GPU per process
    model = dist.DistributedDataParallel(net)            # rank 0's weights everywhere
    loader = dist.DistributedDataLoader(data, batch_size=64, shuffle=True, seed=0)   # 64 per rank
    for images, labels in loader:
        loss = F.softmax_cross_entropy(model(tinycnn.Tensor(images)), labels)
        optimizer.zero_grad()
        loss.backward()                                  # gradients averaged over the ranks
        optimizer.step()

mpi4py (and an MPI library) is needed only once ``init`` runs: ``pip install -e '.[distributed]'``.
"""
from .comm import (init, is_initialized, backend, rank, world_size, local_rank, barrier, abort,
                   all_reduce, broadcast, gather)
from .ddp import DistributedDataParallel
from .sampler import DistributedDataLoader, shard_batches
from .sync_batchnorm import SyncBatchNorm, convert_sync_batchnorm

__all__ = ["init", "is_initialized", "backend", "rank", "world_size", "local_rank", "barrier", "abort",
           "all_reduce", "broadcast", "gather", "DistributedDataParallel", "DistributedDataLoader", "shard_batches",
           "SyncBatchNorm", "convert_sync_batchnorm"]
