"""A validation split held out of the training set: stratified (each class keeps its share) and
seeded (the same split for the same seed, so a resumed run validates on the same images).

    >>> import numpy as np
    >>> labels = np.repeat([0, 1], [30, 10])
    >>> train, val = stratified_split(labels, 0.1, seed=0)
    >>> len(train), len(val), np.bincount(labels[val]).tolist()
    (36, 4, [3, 1])

Keras' ``validation_split`` holds out the last fraction of the data as given; here the held-out
rows are drawn per class, so a sorted dataset still validates on every class.
"""
import numpy as np


def stratified_split(labels, fraction, seed=0):
    """``(train_indices, val_indices)`` (sorted) with ``round(fraction * N)`` validation rows (at least one),
    shared among the classes in proportion to their sizes (largest remainders, ties drawn with ``seed``)."""
    labels = np.asarray(labels)
    if labels.ndim == 2:          # one-hot
        labels = labels.argmax(axis=1)
    if labels.ndim != 1:
        raise ValueError(f"validation split: expected labels of shape (N,), got {labels.shape}")
    fraction = float(fraction)
    if not 0 < fraction < 1:
        raise ValueError(f"validation split: the fraction must be between 0 and 1 (exclusive), got {fraction}")
    total = max(1, int(round(fraction * len(labels))))
    if total >= len(labels):
        raise ValueError(f"validation split: {fraction} of {len(labels)} images leaves none to train on")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    shares = counts * (total / len(labels))
    take = np.floor(shares).astype(int)
    remainders = shares - take + rng.random(len(classes)) * 1e-9   # ties broken by the seed
    take[np.argsort(-remainders, kind="stable")[:total - take.sum()]] += 1
    val = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take)])
    mask = np.zeros(len(labels), dtype=bool)
    mask[val] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def split_dataset(dataset, fraction, seed=0):
    """``(train, validation)`` ArrayDatasets of a dataset with ``images``, ``labels`` (and ``classes``)."""
    from ..data import ArrayDataset
    train, val = stratified_split(dataset.labels, fraction, seed)
    classes = getattr(dataset, "classes", None)
    return (ArrayDataset(dataset.images[train], dataset.labels[train], classes),
            ArrayDataset(dataset.images[val], dataset.labels[val], classes))


def split_loader(loader, fraction):
    """``(train_loader, val_loader)``: two DataLoaders over a stratified split of ``loader``'s data, seeded
    with its seed. The training one keeps every setting; the validation one keeps the transform without
    its random augmentations, does not shuffle and keeps no partial batch out."""
    from ..data import DataLoader
    from ..data.augment import RandomTransform
    from ..data.transforms import Compose

    if not isinstance(loader, DataLoader) or loader.labels is None:
        raise TypeError(f"fit: validation_split needs a tinycnn.data.DataLoader over labelled data, got "
                        f"{type(loader).__name__}; pass val_loader instead")
    train, val = stratified_split(loader.labels, fraction, loader.seed)
    transform = loader.transform
    if isinstance(transform, Compose):
        transform = Compose([t for t in transform.transforms if not isinstance(t, RandomTransform)])
    elif isinstance(transform, RandomTransform):
        transform = None
    train_loader = DataLoader((loader.images[train], loader.labels[train]), loader.batch_size, loader.shuffle,
                              loader.drop_last, loader.seed, loader.transform, loader.device, loader.prefetch)
    val_loader = DataLoader((loader.images[val], loader.labels[val]), loader.batch_size, False, False, loader.seed,
                            transform, loader.device, loader.prefetch)
    return train_loader, val_loader
