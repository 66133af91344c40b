"""DataLoader: batches of (float32 images, int64 labels), prepared in a background thread.

    >>> import numpy as np
    >>> images = np.zeros((10, 1, 4, 4), np.uint8)
    >>> loader = DataLoader((images, np.arange(10)), batch_size=4, shuffle=True, seed=0)
    >>> len(loader), [labels.size for _, labels in loader]
    (3, [4, 4, 2])

The order is a pure function of ``(seed, epoch)``, and the random numbers handed to
the transform of a batch of ``(seed, epoch, batch)``, so ``state_dict()`` — three
ints — is all a checkpoint needs to resume the exact same batches.
"""
import collections
import queue
import threading

import numpy as np

from ..backend import normalize_device, to_device
from .transforms import apply_transform


class DataLoader:
    """Iterate over a dataset (anything with ``images`` and ``labels``) or an
    ``(images, labels)`` pair in batches.

    Each batch is ``(images, labels)``: the images indexed from the data, passed
    through ``transform`` (e.g. augmentation then ``ToFloat``), made float32 and moved
    to ``device``; the labels int64 (None when the data have no labels). Without a
    transform the pixel values are kept as they are (0..255 for uint8 data).
    ``shuffle`` draws a new order every epoch; ``drop_last`` skips a final partial
    batch. With ``prefetch`` a background thread prepares the next batch while the
    current one is used.
    """

    def __init__(self, data, batch_size=32, shuffle=False, drop_last=False, seed=None,
                 transform=None, device="cpu", prefetch=True):
        self.images, self.labels = _arrays_of(data)
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if seed is not None and (not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"DataLoader: seed must be a non-negative int or None, got {seed!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be callable, got {transform!r}")
        self.batch_size, self.shuffle, self.drop_last = int(batch_size), shuffle, drop_last
        self.seed = int(np.random.default_rng().integers(2**63)) if seed is None else int(seed)
        self.transform, self.device, self.prefetch = transform, normalize_device(device), prefetch
        self.epoch = 0      # the epoch being served (or the next one)
        self.position = 0   # batches of that epoch already handed out
        self._resuming = False

    def __len__(self):
        count = len(self.images)
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)

    def state_dict(self):
        """Where the loader stands: ``{"seed", "epoch", "position"}``, plain ints."""
        return {"seed": self.seed, "epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state):
        """Resume from ``state_dict()``: the next iteration continues that epoch at that batch."""
        seed, epoch, position = (int(state[key]) for key in ("seed", "epoch", "position"))
        if seed < 0 or epoch < 0 or not 0 <= position <= len(self):
            raise ValueError(f"DataLoader.load_state_dict: invalid state {dict(state)!r} "
                             f"for a loader of {len(self)} batches")
        self.seed, self.epoch, self.position = seed, epoch, position
        self._resuming = True

    def order(self, epoch):
        """Sample indices of ``epoch`` in the order they are served."""
        if not self.shuffle:
            return np.arange(len(self.images))
        return np.random.default_rng([self.seed, epoch, 0]).permutation(len(self.images))

    def __iter__(self):
        if self.position and not self._resuming:  # the last epoch was abandoned: start a new one
            self.epoch, self.position = self.epoch + 1, 0
        self._resuming = False
        epoch, start = self.epoch, self.position
        batches = self._batches(epoch, start)
        if self.prefetch:
            batches = _Prefetcher(batches)
        try:
            for batch in batches:
                self.position += 1
                if self.device == "cuda":
                    self._copies.ready()
                yield batch
        finally:
            if self.prefetch:
                batches.close()
        self.epoch, self.position = epoch + 1, 0

    def batch_indices(self, epoch):
        """The sample indices of each batch of ``epoch``, in the order served (a subclass, such as
        tinycnn.distributed.DistributedDataLoader, may cut them otherwise)."""
        order = self.order(epoch)
        return [order[number * self.batch_size:(number + 1) * self.batch_size] for number in range(len(self))]

    def batch_rng(self, epoch, number):
        """The generator handed to the transform of batch ``number`` of ``epoch``."""
        return np.random.default_rng([self.seed, epoch, 1, number])

    def _batches(self, epoch, start):
        batches = self.batch_indices(epoch)
        for number in range(start, len(batches)):
            yield self._prepare(batches[number], self.batch_rng(epoch, number))

    def _prepare(self, index, rng):
        images = self.images[index]
        if self.transform is not None:
            images = apply_transform(self.transform, images, rng)
        images = np.ascontiguousarray(images, dtype=np.float32)
        labels = None if self.labels is None else self.labels[index].astype(np.int64)
        if self.device == "cuda":
            if getattr(self, "_copies", None) is None:
                self._copies = _CopyStream()
            return self._copies.to_gpu(images), None if labels is None else self._copies.to_gpu(labels)
        return to_device(images, self.device), None if labels is None else to_device(labels, self.device)


class _CopyStream:
    """Host -> device copies of batches from pinned (page-locked) host memory on a stream of their
    own, so a copy runs while the compute stream's kernels do; the compute stream waits for the
    copies on the device (an event), the host never waits."""

    def __init__(self):
        import cupy
        import cupyx
        self.cupy, self.cupyx = cupy, cupyx
        self.stream = cupy.cuda.Stream(non_blocking=True)
        self.pinned = collections.deque(maxlen=8)   # the copies read them after to_gpu returns

    def to_gpu(self, host):
        pinned = self.cupyx.empty_pinned(host.shape, host.dtype)
        pinned[...] = host
        with self.stream:       # from the pool's blocks of this stream: none a kernel may still read
            device = self.cupy.empty(host.shape, host.dtype)
            device.set(pinned, stream=self.stream)
        self.pinned.append(pinned)
        return device

    def ready(self):
        """Make the caller's current stream wait for every copy issued so far."""
        self.cupy.cuda.get_current_stream().wait_event(self.stream.record())


def _arrays_of(data):
    """(images, labels) from a dataset or a pair of arrays; labels may be None."""
    if hasattr(data, "images") and hasattr(data, "labels"):
        images, labels = data.images, data.labels
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        images, labels = data
    else:
        raise TypeError(f"DataLoader: expected a dataset with .images and .labels or a pair "
                        f"(images, labels), got {type(data).__name__}")
    images = images if isinstance(images, np.ndarray) else np.asarray(images)
    if images.ndim == 0:
        raise ValueError("DataLoader: images must have a leading sample axis, got a scalar")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(f"DataLoader: got labels of shape {labels.shape} for {len(images)} images")
    return images, labels


class _Failure:
    def __init__(self, error):
        self.error = error


class _Prefetcher:
    """Run a generator in a background thread, keeping up to ``depth`` items ready."""
    _END = object()

    def __init__(self, generator, depth=2):
        self._queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(generator,), daemon=True)
        self._thread.start()

    def _produce(self, generator):
        try:
            for item in generator:
                if not self._put(item):
                    return
            self._put(self._END)
        except BaseException as error:  # handed to the consumer, raised there
            self._put(_Failure(error))

    def _put(self, item):
        """Queue ``item`` unless the consumer has gone; True when queued."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self):
        return self

    def __next__(self):
        item = self._queue.get()
        if item is self._END:
            raise StopIteration
        if isinstance(item, _Failure):
            raise item.error
        return item

    def close(self):
        self._stop.set()
        self._thread.join()
