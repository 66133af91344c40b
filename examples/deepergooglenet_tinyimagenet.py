"""DeeperGoogLeNet on Tiny ImageNet (200 classes of 64x64 images), the seeds' experiments.

    --experiment 1   SGD (momentum 0.9) at lr 1e-3 for 40 epochs, inception 4a-4e removed
    --experiment 2   the same with the lr lowered by hand: 1e-3 for epochs 1-20, 1e-4 for 21-30,
                     1e-5 for 31-40 (a piecewise schedule)
    --experiment 3   Adam: 1e-2 for epochs 1-25, 1e-3 for 26-35, 1e-4 for 36-65, 4a-4e removed
    --experiment 4   Adam: 1e-3 for epochs 1-40, 1e-4 for 41-60, 1e-5 for 61-70, 4a-4e enabled

All use batch 64, weight decay 2e-4, mean subtraction and the course's augmentation
(rotations, zooms, shifts, shears, flips). The seeds ran experiment 2 by hand: train at
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
import sys

from tinycnn.cli import run_recipe

RECIPE = {"model": "deepergooglenet", "dataset": "tiny-imagenet", "batch_size": 64, "weight_decay": 2e-4,
          "momentum": 0.9, "augment": True, "out": "runs/deepergooglenet_tinyimagenet"}
WITHOUT_4 = {"inception_4": False}
EXPERIMENTS = {
    "1": {"optimizer": "sgd", "lr": 1e-3, "epochs": 40, "model_options": WITHOUT_4},
    "2": {"optimizer": "sgd", "lr": 1e-3, "epochs": 40, "model_options": WITHOUT_4, "schedule": "piecewise",
          "boundaries": [20, 30], "values": [1e-3, 1e-4, 1e-5]},
    "3": {"optimizer": "adam", "lr": 1e-2, "epochs": 65, "model_options": WITHOUT_4, "schedule": "piecewise",
          "boundaries": [25, 35], "values": [1e-2, 1e-3, 1e-4]},
    "4": {"optimizer": "adam", "lr": 1e-3, "epochs": 70, "model_options": {"inception_4": True},
          "schedule": "piecewise", "boundaries": [40, 60], "values": [1e-3, 1e-4, 1e-5]},
}

if __name__ == "__main__":
    sys.exit(run_recipe(RECIPE, __doc__, experiments=EXPERIMENTS))
