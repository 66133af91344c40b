"""LeNet on MNIST, written out with the library: datasets, DataLoader, SGD, fit, callbacks, report.

The lecture notes' recipe: SGD with lr 0.01, batch 128, 20 epochs, pixels scaled to [0, 1].
The other examples run the same steps through a tinycnn.train.Recipe; this one shows them.

    python examples/lenet_mnist.py --epochs 20
    python examples/lenet_mnist.py --limit 5000 --epochs 2      # a quick look

Data: the four MNIST files (train-images-idx3-ubyte.gz, ...) from
https://ossci-datasets.s3.amazonaws.com/mnist/ in $TINYCNN_DATA/mnist or
~/.tinycnn/datasets/mnist; `tinycnn datasets` shows where they are looked for.
"""
import argparse
import os
import sys

import tinycnn
from tinycnn import models
from tinycnn.data import DataLoader, ToFloat
from tinycnn.optim import SGD
from tinycnn.train import (CSVLogger, ModelCheckpoint, TrainingMonitor, classification_report, fit, load_split,
                           predict, rank_k_accuracy)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--limit", type=int, help="train and test on random subsets of this many images")
    parser.add_argument("--out", default="runs/lenet_mnist")
    parser.add_argument("--resume", metavar="CHECKPOINT", help="continue from a checkpoint of this run")
    args = parser.parse_args(argv)

    try:
        train_set = load_split("mnist", "train", limit=args.limit)
        test_set = load_split("mnist", "test", limit=args.limit)
    except FileNotFoundError as error:
        sys.exit(str(error))

    tinycnn.manual_seed(0)
    model = models.get("lenet", num_classes=10, input_size=28)  # conv1 pads 28x28 digits to 32x32
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, seed=0, transform=ToFloat())
    test_loader = DataLoader(test_set, batch_size=256, transform=ToFloat())
    optimizer = SGD(model.parameters(), lr=args.lr)
    callbacks = [ModelCheckpoint(os.path.join(args.out, "checkpoints"), every=5, save_best="val_loss"),
                 TrainingMonitor(os.path.join(args.out, "monitor.png"), os.path.join(args.out, "history.json")),
                 CSVLogger(os.path.join(args.out, "log.csv"))]
    history = fit(model, train_loader, test_loader, optimizer=optimizer, epochs=args.epochs, callbacks=callbacks,
                  resume=args.resume, resume_command=f"python {sys.argv[0]} --resume {{path}}")
    if history.interrupted:
        return 130

    scores, labels = predict(model, test_loader)
    rank1, rank5 = rank_k_accuracy(scores, labels, k=(1, 5))
    print(f"rank-1: {rank1:.2%}  rank-5: {rank5:.2%}")
    print(classification_report(labels, scores.argmax(axis=1), test_set.classes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
