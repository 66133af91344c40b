"""The real run's PyTorch twin: the same MiniVGG, data, preprocessing and recipe as

    tinycnn train --model minivgg --dataset fashion-mnist --epochs 8 --batch-size 64 \\
        --lr 0.01 --optimizer sgd --momentum 0.9 --schedule cosine

so the two final test accuracies can be compared (PyTorch is the oracle, not a dependency).

    python -m bench.fashion_mnist_torch --epochs 8
"""
import argparse
import os
import time

import numpy as np
import torch

from tinycnn.data import FashionMNIST

from .torch_models import minivgg


def preprocess(images, mean):
    """uint8 (N, 1, 28, 28) -> float32 scaled to [0, 1] minus the training set's mean, as tinycnn's CLI."""
    return torch.from_numpy(images.astype(np.float32) / 255 - mean)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(args.seed)
    train, test = FashionMNIST(train=True), FashionMNIST(train=False)
    mean = (train.images.astype(np.float64) / 255).mean(axis=(0, 2, 3)).astype(np.float32)[None, :, None, None]
    x_test, y_test = preprocess(test.images, mean), torch.from_numpy(test.labels)
    model = minivgg(in_channels=1, num_classes=10, size=28)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        order = rng.permutation(len(train.labels))
        for first in range(0, len(order), args.batch_size):
            batch = order[first:first + args.batch_size]
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(preprocess(train.images[batch], mean)),
                                                     torch.from_numpy(train.labels[batch]))
            loss.backward()
            optimizer.step()
        schedule.step()
        model.eval()
        with torch.no_grad():
            predictions = torch.cat([model(x_test[i:i + 1000]).argmax(1) for i in range(0, len(x_test), 1000)])
        accuracy = (predictions == y_test).float().mean().item()
        print(f"epoch {epoch + 1}/{args.epochs}: test accuracy {accuracy:.4f}, "
              f"{time.perf_counter() - start:.0f} s so far", flush=True)


if __name__ == "__main__":
    main()
