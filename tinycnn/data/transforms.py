"""Preprocessing on whole batches: callables mapping an (N, C, H, W) array to a new one.

    >>> import numpy as np
    >>> batch = np.full((2, 3, 4, 4), 255, dtype=np.uint8)
    >>> prepare = Compose([ToFloat(), Standardize(mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])])
    >>> prepare(batch)[0, :, 0, 0]
    array([2., 2., 2.], dtype=float32)

Mean subtraction as in the course: the per-channel means of the training set, in the
pixel units of the stored images (0..255), are subtracted from each uint8 batch::

    means = channel_means(train)          # float32 array (C,), save it with the model
    loader = DataLoader(train, transform=MeanSubtract(means))

Random augmentations (tinycnn.data.augment) are Transforms too. Every Transform takes
an optional ``rng``: the DataLoader passes one per batch, derived from its seed, so a
run resumed from a checkpoint replays the same augmentations.
"""
import numpy as np


class Transform:
    """Base of the batch transforms: ``transform(images, rng=None) -> images``."""

    def __call__(self, images, rng=None):
        raise NotImplementedError

    def __repr__(self):
        settings = ", ".join(f"{key}={value!r}" for key, value in vars(self).items() if key != "rng")
        return f"{type(self).__name__}({settings})"


def apply_transform(transform, images, rng=None):
    """Call ``transform`` on a batch, handing ``rng`` to tinycnn Transforms (plain callables get none)."""
    return transform(images, rng=rng) if isinstance(transform, Transform) else transform(images)


def check_batch(name, images):
    """The batch as a NumPy array, or a ValueError naming ``name`` unless it is (N, C, H, W)."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"{name}: expected a batch of images (N, C, H, W), got shape {images.shape}")
    return images


def _per_channel(name, values, images):
    """``values`` (a scalar or one per channel) shaped (1, C, 1, 1) to broadcast over a batch."""
    values = np.asarray(values, dtype=np.float32).reshape(-1)
    channels = images.shape[1]
    if values.size not in (1, channels):
        raise ValueError(f"{name}: images have {channels} channels, but {values.size} values were given")
    return values.reshape(1, -1, 1, 1)


class Compose(Transform):
    """Apply transforms in order: ``Compose([RandomCrop(32, 4), ToFloat()])``."""

    def __init__(self, transforms):
        self.transforms = list(transforms)
        for transform in self.transforms:
            if not callable(transform):
                raise TypeError(f"Compose: every transform must be callable, got {transform!r}")

    def __call__(self, images, rng=None):
        for transform in self.transforms:
            images = apply_transform(transform, images, rng)
        return images


class ToFloat(Transform):
    """float32 images; uint8 pixels (0..255) are divided by 255 to lie in [0, 1].

    Float input is only cast to float32, so applying ToFloat twice is harmless.
    """

    def __call__(self, images, rng=None):
        images = check_batch("ToFloat", images)
        if images.dtype == np.uint8:
            return np.divide(images, np.float32(255), dtype=np.float32)
        if images.dtype.kind != "f":
            raise TypeError(f"ToFloat: expected uint8 or floating-point images, got {images.dtype}")
        return images.astype(np.float32, copy=False)


class MeanSubtract(Transform):
    """Subtract per-channel means (in the units of the images it receives); returns float32."""

    def __init__(self, means):
        self.means = np.asarray(means, dtype=np.float32)

    def __call__(self, images, rng=None):
        images = check_batch("MeanSubtract", images)
        return np.subtract(images, _per_channel("MeanSubtract", self.means, images), dtype=np.float32)


class Standardize(Transform):
    """``(images - mean) / std`` per channel; returns float32."""

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        if np.any(self.std <= 0):
            raise ValueError(f"Standardize: std must be positive, got {self.std}")

    def __call__(self, images, rng=None):
        images = check_batch("Standardize", images)
        centred = np.subtract(images, _per_channel("Standardize", self.mean, images), dtype=np.float32)
        return centred / _per_channel("Standardize", self.std, images)


def channel_stats(data, chunk_size=2048):
    """Per-channel mean and standard deviation of a dataset (or an (N, C, H, W) array).

    Computed in float64 over chunks of images, in the units the images are stored in
    (0..255 for uint8). Returns two float32 arrays of shape (C,).
    """
    images = check_batch("channel_stats", getattr(data, "images", data))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    if count == 0:
        raise ValueError("channel_stats: the dataset has no pixels")
    total = np.zeros(images.shape[1])
    total_squares = np.zeros(images.shape[1])
    for start in range(0, len(images), chunk_size):
        chunk = images[start:start + chunk_size].astype(np.float64)
        total += chunk.sum(axis=(0, 2, 3))
        total_squares += np.square(chunk).sum(axis=(0, 2, 3))
    mean = total / count
    variance = np.maximum(total_squares / count - mean ** 2, 0.0)
    return mean.astype(np.float32), np.sqrt(variance).astype(np.float32)


def channel_means(data):
    """Per-channel means of a dataset, float32 (C,): the argument of MeanSubtract."""
    return channel_stats(data)[0]
