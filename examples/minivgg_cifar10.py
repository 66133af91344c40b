"""MiniVGG on CIFAR-10 (Rosebrock, "Deep Learning for Computer Vision with Python", Starter
Bundle: about 82% test accuracy; 2,171,178 parameters).

SGD (lr 0.01, momentum 0.9, Nesterov), batch 64, 40 epochs, the lr halved every
5 epochs (step decay), checkpoints every 5 epochs. Stop with ctrl+c at any time: the
run saves checkpoints/interrupted.npz and prints the command that resumes it (add
--lr to continue with a new learning rate).

    python examples/minivgg_cifar10.py
    python examples/minivgg_cifar10.py --limit 2000 --epochs 2     # a quick look
    python examples/minivgg_cifar10.py --resume runs/minivgg_cifar10/checkpoints/epoch_20.npz --lr 1e-3

Data: cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html, placed in
$TINYCNN_DATA/cifar10 or ~/.tinycnn/datasets/cifar10 (the archive is read directly).
"""
import argparse
import sys

from tinycnn.train import Recipe, RecipeError, run

RECIPE = Recipe(model="minivgg", dataset="cifar10", epochs=40, batch_size=64, lr=0.01, optimizer="sgd",
                momentum=0.9, nesterov=True, schedule="step", step_size=5, gamma=0.5, checkpoint_every=5,
                out="runs/minivgg_cifar10")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=RECIPE.epochs, help="total epochs (default %(default)s)")
    parser.add_argument("--limit", type=int, help="train and test on random subsets of this many images")
    parser.add_argument("--resume", metavar="CHECKPOINT", help="continue from a checkpoint of this run")
    parser.add_argument("--lr", type=float, help="with --resume: the learning rate from there on")
    args = parser.parse_args(argv)

    recipe = Recipe.from_checkpoint(args.resume) if args.resume else RECIPE
    recipe = recipe.replace(epochs=args.epochs, limit=args.limit or recipe.limit)
    history = run(recipe, resume=args.resume, lr=args.lr, resume_command=f"python {sys.argv[0]} --resume {{path}}")
    return 130 if history.interrupted else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RecipeError, FileNotFoundError) as error:   # a missing dataset says where it was looked for
        sys.exit(f"error: {error}")
