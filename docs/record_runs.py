"""Record what the README's Fashion-MNIST run produces, for docs/training_recipes.md and docs/looking_inside.md.

    python docs/record_runs.py --work /tmp/record     # three epochs of MiniVGG on the full dataset

Runs the README's main job (one epoch of MiniVGG), then its resume command with a tenfold
lower learning rate up to epoch 3, in a scratch folder (``--work``, default the current one).
Writes ``docs/results/fashion_mnist.json`` (the commands, the date and machine, and for each
command its epochs' metrics and its test result) and copies the run's training curves and
confusion matrix to ``docs/images/``. A step whose run folder already holds its results is not
run again.

``tinycnn train`` holds ``--val-split`` of the training images out for validation: each
epoch's ``val_loss`` and ``val_accuracy`` are theirs, and best.npz is the epoch with the lowest
``val_loss``. The test split is evaluated once, after training, with those weights
(``results.json`` and ``report.txt`` in the run folder): that is each step's ``test``.
"""
import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tinycnn.train.recipe import Recipe

DOCS = Path(__file__).resolve().parent
VAL_SPLIT = Recipe.val_split          # tinycnn train's --val-split default, which the STEPS keep
RUN = "runs/minivgg_fashion"
STEPS = [
    f"tinycnn train --model minivgg --dataset fashion-mnist --out {RUN} --no-progress",
    f"tinycnn train --resume {RUN}/checkpoints/last.npz --epochs 3 --lr 1e-3 --no-progress",
]


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def read_report(folder):
    """rank-1 and rank-5 (fractions) from the run's report.txt."""
    ranks = {}
    for line in (folder / "report.txt").read_text().splitlines()[:2]:
        name, value = line.split(":")
        ranks[name.strip()] = round(float(value.strip().rstrip("%")) / 100, 4)
    return ranks


def read_step(folder, command, seconds):
    """One command's record from its run folder: the epochs (``val_*`` on the validation split)
    from history.json, the test result from results.json and report.txt."""
    history = json.loads((folder / "history.json").read_text())
    results = json.loads((folder / "results.json").read_text())
    epochs = [{key: round(values[i], 4) for key, values in history.items()
               if key in ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr")}
              for i in range(len(history["epoch"]))]
    test = {"weights": results["weights"], "images": results["test"]["images"],
            "loss": round(results["test"]["loss"], 4), "accuracy": round(results["test"]["accuracy"], 4),
            **read_report(folder)}
    return {"command": command, "wall_seconds": round(seconds), "epochs": epochs, "test": test}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=".", help="folder the commands run in (their runs/ goes there)")
    parser.add_argument("--out", default=str(DOCS / "results" / "fashion_mnist.json"))
    args = parser.parse_args(argv)
    work = Path(args.work)
    folder = work / RUN
    steps = []
    for index, command in enumerate(STEPS):
        done = work / f"record_step{index}.json"
        if not done.exists():
            started = time.perf_counter()
            subprocess.run(shlex.split(command), cwd=work, check=True)
            result = read_step(folder, command.replace(" --no-progress", ""), time.perf_counter() - started)
            done.write_text(json.dumps(result, indent=1))
        steps.append(json.loads(done.read_text()))
    record = {
        "what": "the README's MiniVGG run on Fashion-MNIST, then its resume command (lr 1e-3) to epoch 3",
        "recorded": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "machine": f"{cpu_name()}, {os.cpu_count()} cores (shared with other jobs), CPU only",
        "python": platform.python_version(),
        "validation": f"val_loss and val_accuracy: the {VAL_SPLIT:g} of the training images that tinycnn train "
                      "holds out (--val-split, stratified, seeded); best.npz is the epoch with the lowest val_loss",
        "test": "each step's test: the test split, evaluated once after the command with the weights it "
                "selected (test.weights says which: best.npz or the last epoch's; results.json, report.txt)",
        "steps": steps,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    images = DOCS / "images"
    images.mkdir(exist_ok=True)
    for name in ("monitor.png", "confusion_matrix.png"):
        shutil.copyfile(folder / name, images / f"readme_run_{name}")
    print(f"wrote {args.out} and {images}/readme_run_*.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
