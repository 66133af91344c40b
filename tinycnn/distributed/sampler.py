"""Each rank's share of every batch: every sample seen exactly once per epoch across the ranks.

All ranks draw the same shuffled order (it depends on ``(seed, epoch)`` only), cut it into
global batches of ``batch_size * world_size`` samples and take their own contiguous part of
each. So two ranks with ``batch_size=32`` see, step by step, the very batches one process
with ``batch_size=64`` and the same seed would see. At the end of an epoch the parts differ
by at most one sample; a last global batch smaller than the number of ranks is merged into
the one before, so that no rank gets an empty batch and every rank takes the same number of
steps (a rank stepping alone would wait forever for its peers).

    >>> [part.tolist() for part in shard_batches(range(7), batch_size=2, rank=0, world_size=2)]
    [[0, 1], [4, 5]]
    >>> [part.tolist() for part in shard_batches(range(7), batch_size=2, rank=1, world_size=2)]
    [[2, 3], [6]]
"""
import numpy as np

from ..data.loader import DataLoader
from . import comm


def shard_batches(order, batch_size, rank, world_size, drop_last=False):
    """The batches of ``rank``: its part of each global batch of ``batch_size * world_size``."""
    order = np.asarray(order)
    size = batch_size * world_size
    steps = count_steps(len(order), batch_size, world_size, drop_last)
    bounds = [step * size for step in range(steps)] + [steps * size if drop_last else len(order)]
    return [np.array_split(order[start:stop], world_size)[rank] for start, stop in zip(bounds[:-1], bounds[1:])]


def count_steps(count, batch_size, world_size, drop_last=False):
    """How many batches each rank gets from ``count`` samples."""
    size = batch_size * world_size
    if drop_last:
        return count // size
    if count < world_size:
        raise ValueError(f"DistributedDataLoader: {count} samples cannot feed {world_size} ranks "
                         "(each needs at least one per step)")
    steps = -(-count // size)
    if steps > 1 and count - (steps - 1) * size < world_size:
        steps -= 1                      # too few for every rank: they join the batch before
    return steps


class DistributedDataLoader(DataLoader):
    """A DataLoader serving this rank's share (see ``shard_batches``); ``batch_size`` is per rank.

    The arguments are DataLoader's; ``rank`` and ``world_size`` default to this process's
    (``tinycnn.distributed.init()`` first). Every rank must use the same ``seed``: with
    ``shuffle=True`` pass one (a seed drawn per process would give each its own order). The
    transform's generator also depends on the rank, so ranks augment independently.
    ``state_dict`` is the same on every rank, so rank 0's checkpoint resumes them all.
    """

    def __init__(self, data, batch_size=32, shuffle=False, drop_last=False, seed=None, transform=None,
                 device="cpu", prefetch=True, rank=None, world_size=None):
        if shuffle and seed is None:
            raise ValueError("DistributedDataLoader: shuffle=True needs a seed shared by every rank")
        super().__init__(data, batch_size, shuffle, drop_last, 0 if seed is None else seed, transform,
                         device, prefetch)
        self.world_size = comm.world_size() if world_size is None else int(world_size)
        self.rank = comm.rank() if rank is None else int(rank)
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"DistributedDataLoader: rank must be in 0..{self.world_size - 1}, got {self.rank}")
        len(self)           # refuses fewer samples than ranks

    def __len__(self):
        return count_steps(len(self.images), self.batch_size, self.world_size, self.drop_last)

    def batch_indices(self, epoch):
        return shard_batches(self.order(epoch), self.batch_size, self.rank, self.world_size, self.drop_last)

    def batch_rng(self, epoch, number):
        return np.random.default_rng([self.seed, epoch, 1, number, self.rank])
