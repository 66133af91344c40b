"""The ``tinycnn`` command (also ``python -m tinycnn``).

    tinycnn train --model minivgg --dataset fashion-mnist --epochs 5 --out runs/minivgg
    tinycnn train --resume runs/minivgg/checkpoints/interrupted.npz --lr 1e-3
    tinycnn evaluate --checkpoint runs/minivgg/checkpoints/best.npz
    tinycnn summary minigooglenet --input-shape 3 32 32
    tinycnn datasets
    tinycnn predict shoe.png --checkpoint runs/minivgg/checkpoints/best.npz
    tinycnn train --model resnet18 --dataset folder --data-root flowers --init-from resnet18.pth --freeze layer1
    tinycnn convert resnet18 resnet18-f37072fd.pth resnet18.npz
    tinycnn export runs/minivgg/checkpoints/best.npz minivgg.onnx
    mpirun -np 2 tinycnn train --model minivgg --dataset fashion-mnist --distributed

A run folder (``--out``) holds ``checkpoints/`` (epoch_5.npz, ..., best.npz,
last.npz, interrupted.npz after ctrl+c), ``monitor.png`` and ``history.json`` (the
training curves; ``val_*`` are the validation split's, ``--val-split`` of the training
images), ``log.csv``, and after training ``report.txt`` (rank-1/5 and the classification
report on the test split, evaluated once with best.npz's weights) with
``confusion_matrix.png`` and ``results.json`` (validation and test metrics, each named). Each
checkpoint stores the model name and options, the dataset and the preprocessing,
so ``evaluate`` and ``predict`` rebuild everything from the checkpoint alone.

``tinycnn train`` is ``tinycnn.train.run(tinycnn.train.Recipe(...))``: its options are the
Recipe's settings, and a script can do the same (see examples/).

Mistakes on the command line (an unknown model or dataset, a model that does not
fit the dataset's images, a missing or damaged checkpoint, an ``--out`` that cannot
be a folder, ``--device cuda`` without a usable GPU) print one line on stderr and
exit with status 2, before any data is read where they can be found that early.

``train --resume CHECKPOINT`` continues the run in the folder holding that
checkpoint (``runs/x`` for ``runs/x/checkpoints/last.npz``), or in ``--out``;
``--epochs`` is the total to reach, as Keras's ``epochs`` with ``initial_epoch``,
so it must be more than the epochs the checkpoint has done.
"""
import argparse
import os
import sys
from dataclasses import asdict

import numpy as np

from . import nn
from .cli_setup import CLIError, model_from_checkpoint, parse_options, positive_int, preprocessing_from, \
    read_checkpoint_or_fail
from .train.builders import (DATASET_NAMES, OPTIMIZERS, SCHEDULES, RecipeError, build_model, check_device,
                             check_folder, dataset_name, load_split, model_by_name, shape_text, transform_of)
from .train.recipe import (RESUME_CHANGES, Recipe, epochs_done, resume_conflicts, run, run_folder_of, saved_recipe,
                           write_report)

USAGE_ERROR = 2
INTERRUPTED = 130  # the shell's code for a process stopped by ctrl+c

# what `tinycnn train` uses for an option not given (and not in the checkpoint it resumes)
TRAIN_DEFAULTS = asdict(Recipe())
# what a resumed run may change (--lr: a new lr from there on); anything else must match the checkpoint
RESUME_OVERRIDES = set(RESUME_CHANGES) | {"lr"}


# ----- train ----------------------------------------------------------------------------
def train_config(args, checkpoint=None):
    """The run's settings: the command line over the resumed checkpoint's settings over TRAIN_DEFAULTS.

    ``checkpoint`` is what ``--resume`` names, when the caller has read it already.
    """
    given = {key: value for key, value in vars(args).items() if key in TRAIN_DEFAULTS and value is not None}
    if "model_options" in given:
        given["model_options"] = parse_options(given["model_options"])
    if not args.resume:
        config = {**TRAIN_DEFAULTS, **given}
    else:
        if checkpoint is None:
            checkpoint = read_checkpoint_or_fail(args.resume)
        saved = {key: value for key, value in saved_recipe(checkpoint, args.resume).items() if key in TRAIN_DEFAULTS}
        conflicts = resume_conflicts(given, saved, RESUME_OVERRIDES)
        if conflicts:
            key, value, before = conflicts[0]
            raise CLIError(f"--{key.replace('_', '-')} {value} differs from the resumed run's "
                           f"{before!r}; only {', '.join(sorted(RESUME_OVERRIDES))} may change")
        config = {**TRAIN_DEFAULTS, **saved, **{k: v for k, v in given.items() if k in RESUME_OVERRIDES}}
        if "lr" in given:
            config["lr"] = saved.get("lr", TRAIN_DEFAULTS["lr"])  # the optimizer is rebuilt as it was
        # the folder of the checkpoint resumed (maybe a copy), never the path recorded in it
        config["out"] = given.get("out") or run_folder_of(args.resume)
    config["dataset"] = dataset_name(config["dataset"])
    config["out"] = config["out"] or os.path.join("runs", f"{config['model']}_{config['dataset']}")
    for key in ("epochs", "batch_size", "checkpoint_every"):
        if int(config[key]) < 1:
            raise CLIError(f"--{key.replace('_', '-')} must be >= 1, got {config[key]}")
    if config["limit"] is not None and int(config["limit"]) < 1:
        raise CLIError(f"--limit must be >= 1, got {config['limit']}")
    if config["schedule"] == "piecewise" and not (config["boundaries"] and config["values"]):
        raise CLIError("--schedule piecewise needs --boundaries and --values, e.g. "
                       "--boundaries 20 30 --values 1e-3 1e-4 1e-5")
    if args.resume:
        done = epochs_done(checkpoint, args.resume)
        if int(config["epochs"]) <= done:
            raise CLIError(f"{args.resume} has done {done} epochs; --epochs is the total to reach (as Keras's "
                           f"epochs with initial_epoch), so pass --epochs {done + 1} or more to train further")
    return config


def command_train(args):
    checkpoint = read_checkpoint_or_fail(args.resume) if args.resume else None
    recipe = Recipe(**train_config(args, checkpoint))     # an unknown model fails here, before any data
    check_device(recipe.device, "--device")
    check_folder(recipe.out, "--out")
    if recipe.cuda_graph and recipe.device != "cuda":
        raise CLIError("--cuda-graph replays CUDA graphs: add --device cuda")
    distributed = distributed_options(args, recipe.device)
    if distributed["distributed"] and (recipe.amp or recipe.cuda_graph):
        raise CLIError(f"{'--amp' if recipe.amp else '--cuda-graph'} does not run with --distributed yet")
    history = run(recipe, resume=args.resume, lr=args.lr if args.resume else None, download=args.download,
                  resume_command=resume_hint(distributed), **distributed)
    return INTERRUPTED if history.interrupted else 0


def distributed_options(args, device):
    """run()'s ``distributed``, ``backend`` and ``sync_batchnorm``, or CLIError for flags that do not fit."""
    if not args.distributed and (args.backend or args.sync_bn):
        raise CLIError(f"{'--backend' if args.backend else '--sync-bn'} needs --distributed "
                       "(mpirun -np N tinycnn train ... --distributed)")
    backend = args.backend or "mpi"
    if backend == "nccl" and device != "cuda":
        raise CLIError("--backend nccl runs on GPUs: add --device cuda")
    return {"distributed": bool(args.distributed), "backend": backend, "sync_batchnorm": bool(args.sync_bn)}


def resume_hint(distributed):
    """The command printed after ctrl+c, with ``{path}``."""
    if not distributed["distributed"]:
        return "tinycnn train --resume {path}"
    processes = os.environ.get("OMPI_COMM_WORLD_SIZE", "N")        # set by Open MPI's mpirun
    return (f"mpirun -np {processes} tinycnn train --resume {{path}} --distributed"
            + (" --backend nccl" if distributed["backend"] == "nccl" else "")
            + (" --sync-bn" if distributed["sync_batchnorm"] else ""))


# ----- evaluate, predict, summary, datasets ---------------------------------------------------
def command_evaluate(args):
    from .data import DataLoader
    from .train import predict

    checkpoint = read_checkpoint_or_fail(args.checkpoint)
    check_device(args.device, "--device")
    out = args.out or run_folder_of(args.checkpoint)
    check_folder(out, "--out")
    model, meta, classes = model_from_checkpoint(checkpoint, args.checkpoint)
    preprocessing = preprocessing_from(checkpoint, args.checkpoint)
    nn.fuse(model).to(args.device)          # BatchNorm + ReLU as one op: the same scores, sooner
    name = dataset_name(args.dataset or meta.get("dataset"))
    config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    root = args.data_root if args.data_root is not None else config.get("data_root")
    test_set = load_split(name, "test", root, args.limit, seed=0, download=args.download)
    if tuple(test_set.images.shape[1:]) != tuple(meta["input_shape"]) or len(test_set.classes) != len(classes):
        raise CLIError(f"the checkpoint's model takes {shape_text(meta['input_shape'])} images in {len(classes)} "
                       f"classes; {name} has {shape_text(test_set.images.shape[1:])} in {len(test_set.classes)}")
    loader = DataLoader(test_set, batch_size=args.batch_size, transform=transform_of(preprocessing),
                        device=args.device)
    scores, labels = predict(model, loader)
    write_report(scores, labels, classes, out)
    return 0


def command_predict(args):
    from PIL import Image

    from .functions import softmax
    from .tensor import Tensor, no_grad

    checkpoint = read_checkpoint_or_fail(args.checkpoint)
    check_device(args.device, "--device")
    model, meta, classes = model_from_checkpoint(checkpoint, args.checkpoint)
    model.eval().to(args.device)
    channels, height, width = meta["input_shape"]
    transform = transform_of(preprocessing_from(checkpoint, args.checkpoint))
    top_count = min(args.top, len(classes))  # --top above the number of classes shows them all
    for path in args.images:
        if not os.path.isfile(path):
            raise CLIError(f"image {path!r} does not exist")
        try:
            with Image.open(path) as image:
                image = image.convert("L" if channels == 1 else "RGB").resize((width, height))
                pixels = np.asarray(image, dtype=np.uint8).reshape(height, width, channels)
        except OSError as error:
            raise CLIError(f"cannot read image {path!r}: {error}") from None
        batch = transform(pixels.transpose(2, 0, 1)[None])  # (1, C, H, W)
        with no_grad():
            probabilities = softmax(model(Tensor(batch).to(args.device)), axis=1)
        probabilities = probabilities.numpy()[0]
        top = np.argsort(-probabilities, kind="stable")[:top_count]
        print(f"{path}: " + ", ".join(f"{classes[k]} {probabilities[k]:.1%}" for k in top))
    return 0


def command_summary(args):
    from .summary import summary
    options = parse_options(args.model_option or [])
    if args.input_shape:  # adapt the model to that shape where its builder allows
        model = build_model(args.model, args.num_classes, args.input_shape, options)
    else:
        model = model_by_name(args.model, args.num_classes, options)
    print(summary(model, args.input_shape))
    return 0


def command_convert(args):
    from .models import TORCHVISION_MODELS, convert_torchvision
    if args.name not in TORCHVISION_MODELS:
        raise CLIError(f"unknown torchvision model {args.name!r}; choose one of: {', '.join(TORCHVISION_MODELS)}")
    if not os.path.isfile(args.src):
        raise CLIError(f"{args.src}: no such file")
    check_folder(os.path.dirname(os.path.abspath(args.dst)), "DST's folder")
    classes = None
    if args.classes:
        with open(args.classes) as f:
            classes = [line.strip() for line in f if line.strip()]
    try:
        convert_torchvision(args.name, args.src, args.dst, classes=classes, **parse_options(args.model_option or []))
    except (KeyError, ValueError, TypeError) as error:
        raise CLIError(f"{args.src}: {error}") from None
    print(f"Wrote {args.dst} (tinycnn evaluate/predict/export read it)")
    return 0


def command_export(args):
    from .onnx import export_checkpoint
    check_folder(os.path.dirname(os.path.abspath(args.out)), "OUT's folder")
    export_checkpoint(args.checkpoint, args.out)
    print(f"Wrote {args.out}")
    return 0


def command_datasets(args):
    from .data import DATASETS, locate
    for name, dataset in DATASETS.items():
        locations = locate(name, args.data_root)
        found = next((location for location in locations if location.found is not None), None)
        status = f"found: {found.found}" if found else f"not found (get it from {dataset.url})"
        print(f"{name} ({dataset.title}) - {status}")
        for location in locations:
            print(f"  {location}")
    return 0


# ----- the parser -------------------------------------------------------------------------
def build_parser():
    from . import __version__
    parser = argparse.ArgumentParser(prog="tinycnn", description="Train and inspect CNNs with tinycnn.")
    parser.add_argument("--version", action="version", version=f"tinycnn {__version__}",
                        help="print tinycnn's version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    train = commands.add_parser("train", help="train a model on a dataset",
                                description="Train a model; ctrl+c saves interrupted.npz and prints how to resume.")
    add_train_arguments(train)
    train.set_defaults(run=command_train)

    evaluate = commands.add_parser("evaluate", help="rank-1/5, report and confusion matrix of a checkpoint")
    evaluate.add_argument("--checkpoint", required=True, help="a .npz written by `tinycnn train`")
    evaluate.add_argument("--dataset", help="default: the dataset the checkpoint was trained on")
    evaluate.add_argument("--data-root", help="folder holding the dataset (else the usual search, see `datasets`)")
    evaluate.add_argument("--limit", type=positive_int, help="evaluate on a random subset of this many test images")
    evaluate.add_argument("--download", action="store_true", help="download the dataset if it is missing")
    evaluate.add_argument("--batch-size", type=positive_int, default=256, help="images per batch (default 256)")
    evaluate.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where to run (default cpu)")
    evaluate.add_argument("--out", help="where report.txt and confusion_matrix.png go (default: the run folder)")
    evaluate.set_defaults(run=command_evaluate)

    summary = commands.add_parser("summary", help="layer table of a model: shapes, parameters, MACs")
    summary.add_argument("model", help="a name from tinycnn.models.available()")
    summary.add_argument("--input-shape", type=positive_int, nargs=3, metavar=("C", "H", "W"),
                         help="the input's channels, height and width (default: the model's own)")
    summary.add_argument("--num-classes", type=positive_int, help="default: the builder's")
    summary.add_argument("--model-option", "-o", action="append", metavar="KEY=VALUE",
                         help="an option of the model builder, e.g. -o dropout=0.3 (repeatable)")
    summary.set_defaults(run=command_summary)

    datasets = commands.add_parser("datasets", help="where each dataset is looked for and what was found")
    datasets.add_argument("--data-root", help="also look in this folder first")
    datasets.set_defaults(run=command_datasets)

    predict = commands.add_parser("predict", help="classify image files with a trained checkpoint")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...)")
    predict.add_argument("--checkpoint", required=True, help="a .npz written by `tinycnn train` or `tinycnn convert`")
    predict.add_argument("--top", type=positive_int, default=5,
                         help="how many classes to show (default 5; more than the classes shows them all)")
    predict.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where to run (default cpu)")
    predict.set_defaults(run=command_predict)

    convert = commands.add_parser("convert", help="torchvision weights (.pth) -> a tinycnn checkpoint",
                                  description="Build the zoo model in torchvision's variant and write torchvision's "
                                              "weights as a checkpoint that evaluate, predict and export read.")
    convert.add_argument("name", help="a torchvision model name, e.g. resnet18, vgg16_bn, mobilenet_v2")
    convert.add_argument("src", help="the torch.save file (read without torch and without running pickled code)")
    convert.add_argument("dst", help="the tinycnn checkpoint (.npz) to write")
    convert.add_argument("--classes", metavar="FILE", help="class names, one a line (default 0, 1, ...)")
    convert.add_argument("--model-option", "-o", action="append", metavar="KEY=VALUE",
                         help="an option of the model builder, e.g. -o transform_input=True (repeatable)")
    convert.set_defaults(run=command_convert)

    export = commands.add_parser("export", help="a checkpoint's model as ONNX")
    export.add_argument("checkpoint", help="a .npz written by `tinycnn train` or `tinycnn convert`")
    export.add_argument("out", help="the .onnx file to write")
    export.set_defaults(run=command_export)
    return parser


def add_train_arguments(parser):
    d = TRAIN_DEFAULTS
    parser.add_argument("--model", help=f"a name from tinycnn.models.available() (default {d['model']})")
    parser.add_argument("--model-option", "-o", dest="model_options", action="append", metavar="KEY=VALUE",
                        help="an option of the model builder, e.g. -o dropout=0.3 (repeatable)")
    parser.add_argument("--dataset", help=f"{', '.join(DATASET_NAMES)} (default {d['dataset']})")
    parser.add_argument("--data-root", help="folder holding the dataset (else the usual search, see `datasets`)")
    parser.add_argument("--epochs", type=positive_int, help=f"total epochs (default {d['epochs']})")
    parser.add_argument("--batch-size", type=positive_int, help=f"default {d['batch_size']}")
    parser.add_argument("--lr", type=float, help=f"learning rate (default {d['lr']}); with --resume, the new lr "
                                                 "from the resumed epoch on")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, help=f"default {d['optimizer']}")
    parser.add_argument("--momentum", type=float, help=f"SGD/RMSprop momentum (default {d['momentum']})")
    parser.add_argument("--nesterov", action="store_true", default=None, help="Nesterov momentum (SGD)")
    parser.add_argument("--weight-decay", type=float, help=f"default {d['weight_decay']}")
    parser.add_argument("--schedule", choices=SCHEDULES, help=f"lr schedule per epoch (default {d['schedule']})")
    parser.add_argument("--step-size", type=positive_int, help=f"step: epochs between drops (default {d['step_size']})")
    parser.add_argument("--gamma", type=float, help=f"step: factor at each drop (default {d['gamma']})")
    parser.add_argument("--power", type=float, help=f"poly: the power (default {d['power']}, a straight line)")
    parser.add_argument("--boundaries", type=int, nargs="+", help="piecewise: epochs where the lr changes")
    parser.add_argument("--values", type=float, nargs="+", help="piecewise: the lrs, one more than boundaries")
    parser.add_argument("--augment", action="store_true", default=None, help="random shifts/crops/flips")
    parser.add_argument("--limit", type=positive_int, help="use a random subset of this many images per split (quick runs)")
    parser.add_argument("--seed", type=int, help=f"weights, order and augmentation (default {d['seed']})")
    parser.add_argument("--checkpoint-every", type=positive_int, help=f"epochs between checkpoints (default "
                                                              f"{d['checkpoint_every']})")
    parser.add_argument("--device", choices=("cpu", "cuda"), help=f"default {d['device']}")
    parser.add_argument("--out", help="run folder (default runs/MODEL_DATASET)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                        help="no progress bars, only one line per epoch")
    parser.add_argument("--download", action="store_true", help="download the dataset if it is missing")
    parser.add_argument("--resume", metavar="CHECKPOINT", help="continue a run from one of its checkpoints")
    parser.add_argument("--val-split", type=float, metavar="FRACTION",
                        help=f"training images held out for validation, stratified and seeded; model selection "
                             f"uses them, the test set is evaluated once at the end (default {d['val_split']}; "
                             f"0: none)")
    parser.add_argument("--init-from", metavar="WEIGHTS",
                        help="start from these weights: a tinycnn checkpoint, .safetensors, PyTorch .pth or Keras "
                             ".h5/.keras (a head for another number of classes is replaced)")
    parser.add_argument("--freeze", nargs="+", action="extend", metavar="PREFIX",
                        help="leave the parameters under these names untrained, e.g. --freeze features")
    parser.add_argument("--amp", action="store_true", default=None,
                        help="mixed precision on the GPU: float16 GEMMs on tensor cores, float32 master weights, "
                             "a GradScaler (a no-op on the CPU)")
    parser.add_argument("--cuda-graph", action="store_true", default=None,
                        help="with --device cuda: capture one training step in a CUDA graph and replay it for "
                             "every full batch")
    parser.add_argument("--distributed", action="store_true",
                        help="data-parallel on every process of `mpirun -np N tinycnn train ...`; --batch-size "
                             "stays the whole batch, split across the processes")
    parser.add_argument("--backend", choices=("mpi", "nccl"),
                        help="with --distributed: mpi (CPU processes, the default) or nccl (one GPU per process, "
                             "with --device cuda)")
    parser.add_argument("--sync-bn", action="store_true",
                        help="with --distributed: BatchNorm statistics over every process's part of the batch")


def main(argv=None):
    """Run the command line; returns the exit status (0, 2 for usage errors, 130 after ctrl+c)."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (CLIError, RecipeError) as error:
        print(f"tinycnn {args.command}: error: {error}", file=sys.stderr)
        return USAGE_ERROR
    except FileNotFoundError as error:  # a dataset that is not there: the message says where it was looked for
        message = str(error).replace("pass download=True", "pass --download")
        print(f"tinycnn {args.command}: error: {message}", file=sys.stderr)
        return USAGE_ERROR
