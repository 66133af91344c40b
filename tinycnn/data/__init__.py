"""Datasets, batching, preprocessing and augmentation.

    from tinycnn.data import CIFAR10, DataLoader, Compose, RandomCrop, RandomHorizontalFlip, ToFloat
    train = CIFAR10(train=True)                      # images uint8 (50000, 3, 32, 32)
    augment = Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(), ToFloat()])
    for images, labels in DataLoader(train, batch_size=128, shuffle=True, seed=0, transform=augment):
        ...                                          # float32 (128, 3, 32, 32), int64 (128,)

Layout: images are NCHW uint8 in the datasets, float32 in the batches.
"""
from .augment import RandomAffine, RandomCrop, RandomHorizontalFlip, RandomTransform
from .datasets import ArrayDataset, ImageFolder
from .official import CIFAR10, CIFAR100, DATASETS, MNIST, FashionMNIST, TinyImageNet, locate
from .loader import DataLoader
from .storage import Location, download, md5sum, search_locations, verify_md5
from .transforms import (Compose, MeanSubtract, Standardize, ToFloat, Transform, apply_transform, channel_means,
                         channel_stats)

__all__ = [
    "ArrayDataset", "CIFAR10", "CIFAR100", "MNIST", "FashionMNIST", "TinyImageNet", "ImageFolder", "DATASETS",
    "locate", "Location", "search_locations", "download", "md5sum", "verify_md5",
    "DataLoader",
    "Transform", "Compose", "ToFloat", "MeanSubtract", "Standardize", "channel_means", "channel_stats",
    "apply_transform", "RandomTransform", "RandomHorizontalFlip", "RandomCrop", "RandomAffine",
]
