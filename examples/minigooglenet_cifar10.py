"""MiniGoogLeNet on CIFAR-10 (Zhang et al. 2017's Inception-small; about 90% test accuracy in
Rosebrock's "Deep Learning for Computer Vision with Python", Practitioner Bundle).

As in that book: SGD with momentum 0.9 from lr 5e-3, polynomial decay
(power 1: a straight line to 0 at the last epoch), 70 epochs, batch 64, weight decay
5e-4, augmentation (random crops and flips), per-channel mean subtraction.

    python examples/minigooglenet_cifar10.py
    python examples/minigooglenet_cifar10.py --limit 2000 --epochs 2     # a quick look

Data: cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html, placed in
$TINYCNN_DATA/cifar10 or ~/.tinycnn/datasets/cifar10.
"""
import sys

from tinycnn.train import Recipe, run_script

RECIPE = Recipe(model="minigooglenet", dataset="cifar10", epochs=70, batch_size=64, lr=5e-3, optimizer="sgd",
                momentum=0.9, weight_decay=5e-4, schedule="poly", power=1.0, augment=True,
                out="runs/minigooglenet_cifar10")


def main(argv=None):
    return run_script(RECIPE, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
