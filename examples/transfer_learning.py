"""Transfer learning on Fashion-MNIST: what a network learnt on five classes is worth on five others.

A MiniVGG is trained on classes 0-4 (T-shirt, trouser, pullover, dress, coat), then used for
classes 5-9 (sandal, shirt, sneaker, bag, ankle boot) in two ways, against a MiniVGG trained
on classes 5-9 from scratch with the same images and as many epochs as fine-tuning takes:

- feature extraction: its convolutional features (``--layer``) of the new images, as arrays,
  and a softmax regression trained on them (tinycnn.train.extract_features, LogisticRegression);
- fine-tuning: a new head for the new classes (tinycnn.models.replace_head), trained with the
  features frozen, then everything unfrozen and trained further with a tenth of the lr.

    python examples/transfer_learning.py --per-task 6000 --epochs 2

Data: Debian's dataset-fashion-mnist package (/usr/share/datasets/fashion-mnist) or the files
in $TINYCNN_DATA/fashion-mnist (`tinycnn datasets` shows where it looks).
"""
import argparse
import sys
import time

import numpy as np

import tinycnn
from tinycnn import models
from tinycnn.data import ArrayDataset, DataLoader
from tinycnn.optim import SGD
from tinycnn.train import LogisticRegression, RecipeError, evaluate, extract_features, fit, load_split
from tinycnn.train.builders import preprocessing_of, transform_of

SOURCE, TARGET = range(0, 5), range(5, 10)


def task(dataset, classes, count, seed):
    """``count`` random images of ``classes`` (all of them if fewer), labelled 0..len(classes)-1."""
    keep = np.flatnonzero(np.isin(dataset.labels, list(classes)))
    keep = np.sort(np.random.default_rng(seed).permutation(keep)[:count])
    names = [dataset.classes[c] for c in classes]
    return ArrayDataset(dataset.images[keep], dataset.labels[keep] - classes[0], names)


def train(model, data, transform, epochs, lr, args, label):
    started = time.perf_counter()
    loader = DataLoader(data, batch_size=args.batch_size, shuffle=True, seed=args.seed, transform=transform)
    fit(model, loader, optimizer=SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True), epochs=epochs,
        verbose=2 if args.verbose else 0)
    print(f"  {label}: {epochs} epoch(s) on {len(data)} images in {time.perf_counter() - started:.0f}s", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-task", type=int, default=6000, help="training images per task (default %(default)s)")
    parser.add_argument("--test-per-task", type=int, default=5000, help="test images per task (default %(default)s: "
                                                                        "all of them)")
    parser.add_argument("--epochs", type=int, default=2,
                        help="epochs of each training phase (default %(default)s); fine-tuning has two phases, "
                             "so it and training from scratch take twice as many")
    parser.add_argument("--batch-size", type=int, default=64, help="default %(default)s")
    parser.add_argument("--lr", type=float, default=0.01, help="SGD's lr (default %(default)s)")
    parser.add_argument("--layer", default="features", help="the layer whose outputs are the features "
                                                            "(default %(default)s: MiniVGG's convolutions)")
    parser.add_argument("--seed", type=int, default=0, help="subsets, weights and order (default %(default)s)")
    parser.add_argument("--verbose", action="store_true", help="one line per epoch")
    args = parser.parse_args(argv)

    train_set, test_set = load_split("fashion-mnist", "train"), load_split("fashion-mnist", "test")
    source, target = (task(train_set, classes, args.per_task, args.seed) for classes in (SOURCE, TARGET))
    source_test, target_test = (task(test_set, classes, args.test_per_task, 1) for classes in (SOURCE, TARGET))
    transform = transform_of(preprocessing_of(source))     # the source task's means, for every model
    test_loader = lambda data: DataLoader(data, batch_size=256, transform=transform)
    results = {}

    print(f"1. MiniVGG on classes 0-4 ({', '.join(source.classes)})")
    tinycnn.manual_seed(args.seed)
    source_model = models.get("minivgg", num_classes=5, input_shape=(1, 28, 28))
    train(source_model, source, transform, args.epochs, args.lr, args, "trained")
    results["source"] = evaluate(source_model, test_loader(source_test))["accuracy"]

    print(f"2. Feature extraction for classes 5-9 ({', '.join(target.classes)}): {args.layer!r} + softmax regression")
    started = time.perf_counter()
    x, y = extract_features(source_model, args.layer, test_loader(target))
    x_test, y_test = extract_features(source_model, args.layer, test_loader(target_test))
    head = LogisticRegression(l2=1e-3, lr=0.05, epochs=100).fit(x, y)
    results["feature extraction"] = head.score(x_test, y_test)
    print(f"  {x.shape[1]} features of {len(x)} images, regression trained in {time.perf_counter() - started:.0f}s")

    print("3. Fine-tuning: a new head, features frozen, then everything with lr / 10")
    tuned = models.get("minivgg", num_classes=5, input_shape=(1, 28, 28))
    tuned.load_state_dict(source_model.state_dict())
    tinycnn.manual_seed(args.seed + 1)
    models.replace_head(tuned, len(TARGET))
    tuned.freeze("features")
    train(tuned, target, transform, args.epochs, args.lr, args, "head and fc1, features frozen")
    tuned.unfreeze("features")
    train(tuned, target, transform, args.epochs, args.lr / 10, args, "everything, lr / 10")
    results["fine-tuning"] = evaluate(tuned, test_loader(target_test))["accuracy"]

    print("4. From scratch on classes 5-9, the same images and epochs")
    tinycnn.manual_seed(args.seed + 2)
    scratch = models.get("minivgg", num_classes=5, input_shape=(1, 28, 28))
    train(scratch, target, transform, 2 * args.epochs, args.lr, args, "trained")
    results["from scratch"] = evaluate(scratch, test_loader(target_test))["accuracy"]

    print(f"\nTest accuracy ({len(source_test)} images of classes 0-4, {len(target_test)} of classes 5-9):")
    print(f"  {'source task, classes 0-4:':33} {results['source']:.4f}")
    for name in ("feature extraction", "fine-tuning", "from scratch"):
        print(f"  {name + ', classes 5-9:':33} {results[name]:.4f}")
    return results


if __name__ == "__main__":
    try:
        main()
    except (RecipeError, FileNotFoundError) as error:   # a missing dataset says where it was looked for
        sys.exit(f"error: {error}")
