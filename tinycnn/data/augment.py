"""Random augmentation of whole batches, vectorised: no Python loop over the images.

Each transform draws its per-image parameters as arrays (``sample(...)``), then
applies them to the batch at once (``apply(images, params)``); calling it does both.
Images keep their shape and dtype, so augmenting uint8 batches before ``ToFloat`` is
cheap.

    >>> import numpy as np
    >>> batch = np.arange(2 * 1 * 4 * 4, dtype=np.uint8).reshape(2, 1, 4, 4)
    >>> flip = RandomHorizontalFlip(p=1.0)
    >>> bool(np.array_equal(flip(flip(batch)), batch))
    True
    >>> RandomAffine(rotation_range=10, zoom_range=0.1, rng=0)(batch).shape
    (2, 1, 4, 4)

Randomness comes from ``rng`` (a seed or np.random.Generator) given to the
constructor, unless a call passes its own ``rng`` (the DataLoader does, per batch).
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .transforms import Transform, check_batch

FILL_MODES = ("nearest", "constant", "reflect", "wrap")


def _pair(name, value):
    """An int or a (height, width) pair, as a pair."""
    values = (value, value) if np.isscalar(value) else tuple(value)
    if len(values) != 2:
        raise ValueError(f"{name}: expected a number or a (height, width) pair, got {value!r}")
    return values


def _check_fill_mode(name, fill_mode):
    if fill_mode not in FILL_MODES:
        raise ValueError(f"{name}: fill_mode must be one of {FILL_MODES}, got {fill_mode!r}")


class RandomTransform(Transform):
    """Base of the random transforms: holds the default generator."""

    def __init__(self, rng=None):
        self.rng = np.random.default_rng(rng)

    def __call__(self, images, rng=None):
        images = check_batch(type(self).__name__, images)
        generator = self.rng if rng is None else rng
        return self.apply(images, self.sample(images.shape, generator))

    def sample(self, shape, rng):
        """Per-image random parameters (a dict of arrays) for a batch of ``shape``."""
        raise NotImplementedError

    def apply(self, images, params):
        """Apply the parameters drawn by ``sample``; deterministic."""
        raise NotImplementedError


class RandomHorizontalFlip(RandomTransform):
    """Mirror each image left-right with probability ``p``."""

    def __init__(self, p=0.5, rng=None):
        super().__init__(rng)
        if not 0 <= p <= 1:
            raise ValueError(f"RandomHorizontalFlip: p must lie in [0, 1], got {p}")
        self.p = p

    def sample(self, shape, rng):
        return {"flip": rng.random(shape[0]) < self.p}

    def apply(self, images, params):
        flip = params["flip"]
        out = images.copy()
        out[flip] = images[flip, :, :, ::-1]
        return out


class RandomCrop(RandomTransform):
    """Pad each side by ``padding`` pixels, then cut a ``size`` window at a random place.

    ``RandomCrop(32, padding=4)`` is the usual CIFAR augmentation. The padding is
    zeros (``fill_mode="constant"``, value ``cval``), the edge pixel ("nearest") or a
    mirror image ("reflect").
    """
    _pad_modes = {"constant": "constant", "nearest": "edge", "reflect": "reflect"}

    def __init__(self, size, padding=0, fill_mode="constant", cval=0, rng=None):
        super().__init__(rng)
        self.size = tuple(int(s) for s in _pair("RandomCrop", size))
        self.padding = tuple(int(p) for p in _pair("RandomCrop", padding))
        if min(self.size) < 1 or min(self.padding) < 0:
            raise ValueError(f"RandomCrop: size must be positive and padding non-negative, "
                             f"got size={size!r}, padding={padding!r}")
        if fill_mode not in self._pad_modes:
            raise ValueError(f"RandomCrop: fill_mode must be one of {tuple(self._pad_modes)}, got {fill_mode!r}")
        self.fill_mode, self.cval = fill_mode, cval

    def sample(self, shape, rng):
        padded_height = shape[2] + 2 * self.padding[0]
        padded_width = shape[3] + 2 * self.padding[1]
        if self.size[0] > padded_height or self.size[1] > padded_width:
            raise ValueError(f"RandomCrop: crop {self.size} is larger than the padded image "
                             f"({padded_height}, {padded_width})")
        return {"top": rng.integers(0, padded_height - self.size[0] + 1, size=shape[0]),
                "left": rng.integers(0, padded_width - self.size[1] + 1, size=shape[0])}

    def apply(self, images, params):
        pad_h, pad_w = self.padding
        extra = {"constant_values": self.cval} if self.fill_mode == "constant" else {}
        padded = np.pad(images, ((0, 0), (0, 0), (pad_h, pad_h), (pad_w, pad_w)),
                        mode=self._pad_modes[self.fill_mode], **extra)
        # every window of the crop size, as a view: (N, C, positions_y, positions_x, height, width)
        windows = sliding_window_view(padded, self.size, axis=(2, 3))
        return windows[np.arange(len(images)), :, params["top"], params["left"]]  # (N, C, height, width)


class RandomAffine(RandomTransform):
    """Keras ImageDataGenerator-style geometric augmentation.

    Per image: a rotation by up to ``rotation_range`` degrees, a shear by up to
    ``shear_range`` degrees and a zoom in ``[1 - zoom_range, 1 + zoom_range]`` (or a
    ``(lower, upper)`` pair; as in Keras, a factor above 1 shows more of the scene),
    all about the image centre, then a shift by up to ``height_shift_range`` /
    ``width_shift_range`` (a fraction of the image size if below 1, else pixels), and a
    left-right flip half of the time with ``horizontal_flip``. The whole batch is one
    inverse mapping: each output pixel computes where it comes from and takes the
    nearest input pixel. Samples from outside the image take the nearest edge pixel
    (``fill_mode="nearest"``), ``cval`` ("constant"), a mirror ("reflect") or the
    opposite side ("wrap").
    """

    def __init__(self, rotation_range=0.0, width_shift_range=0.0, height_shift_range=0.0, zoom_range=0.0,
                 shear_range=0.0, horizontal_flip=False, fill_mode="nearest", cval=0, rng=None):
        super().__init__(rng)
        ranges = {"rotation_range": rotation_range, "width_shift_range": width_shift_range,
                  "height_shift_range": height_shift_range, "shear_range": shear_range}
        for name, value in ranges.items():
            if not np.isscalar(value) or value < 0:
                raise ValueError(f"RandomAffine: {name} must be a non-negative number, got {value!r}")
        zoom = (1 - zoom_range, 1 + zoom_range) if np.isscalar(zoom_range) else tuple(zoom_range)
        if len(zoom) != 2 or not 0 < zoom[0] <= zoom[1]:
            raise ValueError(f"RandomAffine: zoom_range must be a number in [0, 1) or a pair "
                             f"0 < lower <= upper, got {zoom_range!r}")
        _check_fill_mode("RandomAffine", fill_mode)
        self.rotation_range, self.shear_range = rotation_range, shear_range
        self.width_shift_range, self.height_shift_range = width_shift_range, height_shift_range
        self.zoom_range, self.horizontal_flip = zoom, horizontal_flip
        self.fill_mode, self.cval = fill_mode, cval

    def sample(self, shape, rng):
        """Angles in degrees, shifts in pixels (positive: content moves down / right),
        zoom as in Keras (output-to-input scale), flip as booleans; one of each per image."""
        n, _, height, width = shape

        def symmetric(limit):
            return rng.uniform(-limit, limit, size=n)

        def shift(limit, size):
            return symmetric(limit) * (size if limit < 1 else 1)

        return {"angle": symmetric(self.rotation_range),
                "shear": symmetric(self.shear_range),
                "zoom_y": rng.uniform(*self.zoom_range, size=n),
                "zoom_x": rng.uniform(*self.zoom_range, size=n),
                "shift_y": shift(self.height_shift_range, height),
                "shift_x": shift(self.width_shift_range, width),
                "flip": rng.random(n) < 0.5 if self.horizontal_flip else np.zeros(n, dtype=bool)}

    def apply(self, images, params):
        n, channels, height, width = images.shape
        rows, cols = self.source_coordinates(params, height, width)  # (N, H*W) each
        nearest_rows = np.floor(rows + 0.5).astype(np.intp)
        nearest_cols = np.floor(cols + 0.5).astype(np.intp)
        outside = (nearest_rows < 0) | (nearest_rows >= height) | (nearest_cols < 0) | (nearest_cols >= width)
        rows_inside = _fill_index(nearest_rows, height, self.fill_mode)
        flat = rows_inside * width + _fill_index(nearest_cols, width, self.fill_mode)  # (N, H*W)
        out = np.take_along_axis(images.reshape(n, channels, height * width), flat[:, None, :], axis=2)
        if self.fill_mode == "constant":
            out[np.broadcast_to(outside[:, None, :], out.shape)] = self.cval
        return out.reshape(n, channels, height, width)

    @staticmethod
    def source_coordinates(params, height, width):
        """Input (row, column) of every output pixel: two (N, H*W) float arrays.

        The inverse of the forward steps, in reverse order, about the centre:
        undo the flip, then the shift, then map through rotation @ shear @ zoom.
        """
        center_y, center_x = (height - 1) / 2, (width - 1) / 2
        grid_rows, grid_cols = np.meshgrid(np.arange(height) - center_y, np.arange(width) - center_x, indexing="ij")
        rows = grid_rows.ravel() - params["shift_y"][:, None]  # (N, H*W)
        cols = np.where(params["flip"][:, None], -grid_cols.ravel(), grid_cols.ravel()) - params["shift_x"][:, None]
        angle, shear = np.deg2rad(params["angle"]), np.deg2rad(params["shear"])
        zeros, ones = np.zeros_like(angle), np.ones_like(angle)
        # (N, 2, 2) matrices acting on (row, column); a positive angle turns the content anticlockwise
        rotation = _matrices(np.cos(angle), np.sin(angle), -np.sin(angle), np.cos(angle))
        shearing = _matrices(ones, -np.sin(shear), zeros, np.cos(shear))
        zoom = _matrices(params["zoom_y"], zeros, zeros, params["zoom_x"])
        source = rotation @ shearing @ zoom @ np.stack([rows, cols], axis=1)  # (N, 2, H*W)
        return source[:, 0] + center_y, source[:, 1] + center_x


def _matrices(a, b, c, d):
    """Stack per-image 2x2 matrices [[a, b], [c, d]] into an (N, 2, 2) array."""
    return np.stack([np.stack([a, b], axis=-1), np.stack([c, d], axis=-1)], axis=-2)


def _fill_index(index, size, fill_mode):
    """Map integer positions outside [0, size) back inside, as ``fill_mode`` says."""
    if fill_mode == "wrap":
        return index % size
    if fill_mode == "reflect":  # d c b a | a b c d | d c b a
        folded = index % (2 * size)
        return np.where(folded < size, folded, 2 * size - 1 - folded)
    return np.clip(index, 0, size - 1)  # nearest; constant overwrites these afterwards
