"""MiniVGG on Fashion-MNIST: 28x28 grey clothing photos in 10 classes.

The lecture notes' recipe: SGD (lr 0.01, momentum 0.9, Nesterov), batch 32, 25 epochs;
MiniVGG adapts its first layer to 1x28x28 images. A quick look first:

    python examples/minivgg_fashion_mnist.py --limit 5000 --epochs 2

Data: Debian's dataset-fashion-mnist package (/usr/share/datasets/fashion-mnist), or the
four *-ubyte.gz files from https://github.com/zalandoresearch/fashion-mnist in
$TINYCNN_DATA/fashion-mnist or ~/.tinycnn/datasets/fashion-mnist (`tinycnn datasets`
shows where it looks).
"""
import argparse
import sys

from tinycnn.train import Recipe, RecipeError, run

RECIPE = Recipe(model="minivgg", dataset="fashion-mnist", epochs=25, batch_size=32, lr=0.01, optimizer="sgd",
                momentum=0.9, nesterov=True, out="runs/minivgg_fashion_mnist")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=RECIPE.epochs, help="total epochs (default %(default)s)")
    parser.add_argument("--limit", type=int, help="train and test on random subsets of this many images")
    parser.add_argument("--resume", metavar="CHECKPOINT", help="continue from a checkpoint of this run")
    args = parser.parse_args(argv)

    recipe = Recipe.from_checkpoint(args.resume) if args.resume else RECIPE
    recipe = recipe.replace(epochs=args.epochs, limit=args.limit or recipe.limit)
    history = run(recipe, resume=args.resume, resume_command=f"python {sys.argv[0]} --resume {{path}}")
    return 130 if history.interrupted else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RecipeError, FileNotFoundError) as error:   # a missing dataset says where it was looked for
        sys.exit(f"error: {error}")
