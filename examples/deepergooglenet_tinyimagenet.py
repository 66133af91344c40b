"""DeeperGoogLeNet on Tiny ImageNet (200 classes of 64x64 images): the four experiments of
Rosebrock's "Deep Learning for Computer Vision with Python" (Practitioner Bundle).

    --experiment 1   SGD (momentum 0.9) at lr 1e-3 for 40 epochs, inception 4a-4e removed
    --experiment 2   the same with the lr lowered by hand: 1e-3 for epochs 1-20, 1e-4 for 21-30,
                     1e-5 for 31-40 (a piecewise schedule)
    --experiment 3   Adam: 1e-2 for epochs 1-25, 1e-3 for 26-35, 1e-4 for 36-65, 4a-4e removed
    --experiment 4   Adam: 1e-3 for epochs 1-40, 1e-4 for 41-60, 1e-5 for 61-70, 4a-4e enabled

All use batch 64, weight decay 2e-4, mean subtraction and the book's augmentation
(rotations, zooms, shifts, shears, flips). The book runs experiment 2 by hand: train at
1e-3, press ctrl+c after epoch 20, then resume with a lower lr. That works here too:

    python examples/deepergooglenet_tinyimagenet.py --experiment 1
    (ctrl+c once epoch 20 is saved)
    python examples/deepergooglenet_tinyimagenet.py --resume runs/deepergooglenet_tinyimagenet/checkpoints/epoch_20.npz --lr 1e-4

The report gives rank-1 and rank-5 accuracy on the validation split (the test split has
no published labels).

Data: tiny-imagenet-200.zip from http://cs231n.stanford.edu/tiny-imagenet-200.zip, placed in
$TINYCNN_DATA/tiny-imagenet or ~/.tinycnn/datasets/tiny-imagenet (it is extracted and
decoded once, then cached).
"""
import argparse
import sys

from tinycnn.train import Recipe, RecipeError, run

COMMON = Recipe(model="deepergooglenet", dataset="tiny-imagenet", batch_size=64, weight_decay=2e-4, momentum=0.9,
                augment=True, out="runs/deepergooglenet_tinyimagenet")
WITHOUT_4 = {"inception_4": False}
EXPERIMENTS = {
    "1": COMMON.replace(optimizer="sgd", lr=1e-3, epochs=40, model_options=WITHOUT_4),
    "2": COMMON.replace(optimizer="sgd", lr=1e-3, epochs=40, model_options=WITHOUT_4, schedule="piecewise",
                        boundaries=[20, 30], values=[1e-3, 1e-4, 1e-5]),
    "3": COMMON.replace(optimizer="adam", lr=1e-2, epochs=65, model_options=WITHOUT_4, schedule="piecewise",
                        boundaries=[25, 35], values=[1e-2, 1e-3, 1e-4]),
    "4": COMMON.replace(optimizer="adam", lr=1e-3, epochs=70, model_options={"inception_4": True},
                        schedule="piecewise", boundaries=[40, 60], values=[1e-3, 1e-4, 1e-5]),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", choices=list(EXPERIMENTS), default="1", help="default %(default)s")
    parser.add_argument("--epochs", type=int, help="total epochs (default: the experiment's)")
    parser.add_argument("--limit", type=int, help="train and test on random subsets of this many images")
    parser.add_argument("--resume", metavar="CHECKPOINT", help="continue from a checkpoint of this run "
                                                              "(its own experiment's settings)")
    parser.add_argument("--lr", type=float, help="with --resume: the learning rate from there on")
    args = parser.parse_args(argv)

    recipe = Recipe.from_checkpoint(args.resume) if args.resume else EXPERIMENTS[args.experiment]
    recipe = recipe.replace(epochs=args.epochs or recipe.epochs, limit=args.limit or recipe.limit)
    history = run(recipe, resume=args.resume, lr=args.lr, resume_command=f"python {sys.argv[0]} --resume {{path}}")
    return 130 if history.interrupted else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RecipeError, FileNotFoundError) as error:   # a missing dataset says where it was looked for
        sys.exit(f"error: {error}")
