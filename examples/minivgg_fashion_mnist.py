"""MiniVGG on Fashion-MNIST: 28x28 grey clothing photos in 10 classes.

The lecture notes' recipe: SGD (lr 0.01, momentum 0.9, Nesterov), batch 32, 25 epochs;
MiniVGG adapts its first layer to 1x28x28 images. A quick look first:

    python examples/minivgg_fashion_mnist.py --limit 5000 --epochs 2

Data: Debian's dataset-fashion-mnist package (/usr/share/datasets/fashion-mnist), or the
four *-ubyte.gz files from https://github.com/zalandoresearch/fashion-mnist in
$TINYCNN_DATA/fashion-mnist or ~/.tinycnn/datasets/fashion-mnist (`tinycnn datasets`
shows where it looks).
"""
import sys

from tinycnn.train import Recipe, run_script

RECIPE = Recipe(model="minivgg", dataset="fashion-mnist", epochs=25, batch_size=32, lr=0.01, optimizer="sgd",
                momentum=0.9, nesterov=True, out="runs/minivgg_fashion_mnist")


def main(argv=None):
    return run_script(RECIPE, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
