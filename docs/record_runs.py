"""Record what the README's Fashion-MNIST run produces, for docs/training_recipes.md and docs/looking_inside.md.

    python docs/record_runs.py --work /tmp/record     # three epochs of MiniVGG on the full dataset

Runs the README's main job (one epoch of MiniVGG), then its resume command with a tenfold
lower learning rate up to epoch 3, in a scratch folder (``--work``, default the current one).
Writes ``docs/results/fashion_mnist.json`` (the commands, the date and machine, each epoch's
metrics and the final test accuracy) and copies the run's training curves and confusion
matrix to ``docs/images/``. A step whose run folder already holds its results is not run again.
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

DOCS = Path(__file__).resolve().parent
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
            history = json.loads((folder / "history.json").read_text())
            result = {"command": command.replace(" --no-progress", ""),
                      "wall_seconds": round(time.perf_counter() - started),
                      "epochs": [{key: round(values[i], 4) for key, values in history.items()
                                  if key in ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr")}
                                 for i in range(len(history["epoch"]))],
                      **read_report(folder)}
            done.write_text(json.dumps(result, indent=1))
        steps.append(json.loads(done.read_text()))
    record = {
        "what": "the README's MiniVGG run on Fashion-MNIST, then its resume command (lr 1e-3) to epoch 3",
        "recorded": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "machine": f"{cpu_name()}, {os.cpu_count()} cores (shared with other jobs), CPU only",
        "python": platform.python_version(),
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
