"""MiniVGG on CIFAR-10 (the seeds' 82% network: 2,171,178 parameters).

SGD (lr 0.01, momentum 0.9, Nesterov), batch 64, 40 epochs, the lr halved every
5 epochs (step decay), checkpoints every 5 epochs. Stop with ctrl+c at any time: the
run saves checkpoints/interrupted.npz and prints the command that resumes it (add
--lr to continue with a new learning rate).

    python examples/minivgg_cifar10.py
    python examples/minivgg_cifar10.py --resume runs/minivgg_cifar10/checkpoints/epoch_20.npz --lr 1e-3

Data: cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html, placed in
$TINYCNN_DATA/cifar10 or ~/.tinycnn/datasets/cifar10 (the archive is read directly).
"""
import sys

from tinycnn.cli import run_recipe

RECIPE = {"model": "minivgg", "dataset": "cifar10", "epochs": 40, "batch_size": 64, "lr": 0.01,
          "optimizer": "sgd", "momentum": 0.9, "nesterov": True, "schedule": "step", "step_size": 5,
          "gamma": 0.5, "checkpoint_every": 5, "out": "runs/minivgg_cifar10"}

if __name__ == "__main__":
    sys.exit(run_recipe(RECIPE, __doc__))
