"""The ``tinycnn`` command (also ``python -m tinycnn``).

    tinycnn train --model minivgg --dataset fashion-mnist --epochs 5 --out runs/minivgg
    tinycnn train --resume runs/minivgg/checkpoints/interrupted.npz --lr 1e-3
    tinycnn evaluate --checkpoint runs/minivgg/checkpoints/best.npz
    tinycnn summary minigooglenet --input-shape 3 32 32
    tinycnn datasets
    tinycnn predict shoe.png --checkpoint runs/minivgg/checkpoints/best.npz

A run folder (``--out``) holds ``checkpoints/`` (epoch_5.npz, ..., best.npz,
last.npz, interrupted.npz after ctrl+c), ``monitor.png`` and ``history.json`` (the
training curves), ``log.csv``, and after training ``report.txt`` (rank-1/5 and the
classification report on the test split) with ``confusion_matrix.png``. Each
checkpoint stores the model name and options, the dataset and the preprocessing,
so ``evaluate`` and ``predict`` rebuild everything from the checkpoint alone.

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

import numpy as np

from .cli_setup import (DATASET_NAMES, OPTIMIZERS, SCHEDULES, CLIError, _model_by_name, _shape_text,
                        augmentation, build_model, canonical_model_name, check_device, check_folder, dataset_name,
                        load_split, load_weights, make_optimizer, make_schedule, model_from_checkpoint, parse_options,
                        positive_int, preprocessing_from, preprocessing_of, read_checkpoint_or_fail, transform_of)

USAGE_ERROR = 2
INTERRUPTED = 130  # the shell's code for a process stopped by ctrl+c


# what `tinycnn train` uses for an option not given (and not in the checkpoint it resumes);
# one epoch of MiniVGG on Fashion-MNIST takes about 5 minutes on 2 cores (the README's main job)
TRAIN_DEFAULTS = {
    "model": "minivgg", "model_options": {}, "dataset": "fashion-mnist", "data_root": None,
    "epochs": 1, "batch_size": 64, "lr": 0.01, "optimizer": "sgd", "momentum": 0.9, "nesterov": False,
    "weight_decay": 0.0, "schedule": "none", "step_size": 10, "gamma": 0.5, "power": 1.0,
    "boundaries": None, "values": None, "augment": False, "limit": None, "seed": 0,
    "checkpoint_every": 5, "device": "cpu", "out": None, "progress": True,
}
# what a resumed run may change; anything else must match the checkpoint
RESUME_OVERRIDES = {"epochs", "lr", "device", "out", "progress"}


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
        saved = (checkpoint.get("meta") or {}).get("config") if isinstance(checkpoint.get("meta"), dict) else None
        saved = dict(saved) if isinstance(saved, dict) else {}
        if not saved:
            raise CLIError(f"{args.resume}: the checkpoint holds no training settings (write it with `tinycnn train`)")
        for key, value in given.items():
            if key not in RESUME_OVERRIDES and _differs(value, saved.get(key)):
                raise CLIError(f"--{key.replace('_', '-')} {value} differs from the resumed run's "
                               f"{saved.get(key)!r}; only {', '.join(sorted(RESUME_OVERRIDES))} may change")
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


def epochs_done(checkpoint, path):
    """The epochs a checkpoint has completed (a partly done epoch does not count)."""
    try:
        done = int(checkpoint.get("epoch") or 0)
    except (TypeError, ValueError):
        done = -1
    if done < 0:
        raise CLIError(f"{path}: the checkpoint's epoch {checkpoint.get('epoch')!r} is not a count of epochs")
    return done


def _differs(given, saved):
    if isinstance(given, (list, tuple, dict)) or isinstance(saved, (list, tuple, dict)):
        return repr(_plain(given)) != repr(_plain(saved))
    return given != saved


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def command_train(args):
    from .data import DataLoader
    from .random import manual_seed
    from .train import CSVLogger, ModelCheckpoint, TrainingMonitor, fit

    checkpoint = read_checkpoint_or_fail(args.resume) if args.resume else None
    config = train_config(args, checkpoint)
    canonical_model_name(config["model"])  # an unknown model fails before the dataset is decoded
    check_device(config["device"])
    check_folder(config["out"])
    train_set = load_split(config["dataset"], "train", config["data_root"], config["limit"], config["seed"],
                           args.download)
    test_set = load_split(config["dataset"], "test", config["data_root"], config["limit"], config["seed"],
                          args.download)
    image_shape = tuple(train_set.images.shape[1:])
    manual_seed(int(config["seed"]))
    model = build_model(config["model"], len(train_set.classes), image_shape, config["model_options"])
    if checkpoint is not None:
        load_weights(model, checkpoint, args.resume)  # a mismatch is one line here, not a traceback in fit
    model.to(config["device"])
    preprocessing = preprocessing_of(train_set)
    augment = augmentation(config["dataset"], image_shape) if config["augment"] else []
    train_loader = DataLoader(train_set, batch_size=int(config["batch_size"]), shuffle=True, seed=int(config["seed"]),
                              transform=transform_of(preprocessing, augment), device=config["device"])
    test_loader = DataLoader(test_set, batch_size=256, transform=transform_of(preprocessing), device=config["device"])
    optimizer = make_optimizer(config, model.parameters())
    schedule = make_schedule(config, optimizer)
    if args.resume and args.lr is not None and schedule is not None and not schedule.uses_base_lr:
        raise CLIError("--lr cannot change a piecewise schedule, whose lrs come from --values")

    out = config["out"]
    meta = {"model": config["model"], "model_options": config["model_options"], "dataset": config["dataset"],
            "classes": list(train_set.classes), "input_shape": list(image_shape), "config": config}
    checkpoints = os.path.join(out, "checkpoints")
    callbacks = [ModelCheckpoint(checkpoints, every=int(config["checkpoint_every"]), save_best="val_loss",
                                 save_last=True),
                 TrainingMonitor(os.path.join(out, "monitor.png"), os.path.join(out, "history.json")),
                 CSVLogger(os.path.join(out, "log.csv"))]
    print(f"Training {config['model']} on {config['dataset']} ({len(train_set)} images, "
          f"test {len(test_set)}) for {config['epochs']} epochs; run folder {out}", flush=True)
    history = fit(model, train_loader, test_loader, optimizer=optimizer, epochs=int(config["epochs"]),
                  callbacks=callbacks, schedule=schedule, resume=checkpoint,
                  lr=args.lr if args.resume else None, verbose=1 if config["progress"] else 2,
                  preprocessing=preprocessing, meta=meta, resume_command="tinycnn train --resume {path}")
    if history.interrupted:
        return INTERRUPTED
    from .train import predict
    scores, labels = predict(model, test_loader)
    write_report(scores, labels, list(train_set.classes), out)
    return 0


def write_report(scores, labels, classes, out):
    """Print rank-1/rank-5 and the classification report; write report.txt and confusion_matrix.png."""
    from .train import classification_report, confusion_matrix, plot_confusion_matrix, rank_k_accuracy

    ks = (1, min(5, scores.shape[1]))
    rank1, rank5 = rank_k_accuracy(scores, labels, k=ks)
    predictions = scores.argmax(axis=1)
    text = (f"rank-1: {rank1:.2%}\nrank-{ks[1]}: {rank5:.2%}\n\n"
            + classification_report(labels, predictions, classes))
    print(text)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "report.txt"), "w") as f:
        f.write(text)
    plot_confusion_matrix(confusion_matrix(labels, predictions, len(classes)), classes,
                          os.path.join(out, "confusion_matrix.png"))
    print(f"Wrote {os.path.join(out, 'report.txt')} and {os.path.join(out, 'confusion_matrix.png')}")


# ----- evaluate, predict, summary, datasets ---------------------------------------------------
def command_evaluate(args):
    from .data import DataLoader
    from .train import predict

    checkpoint = read_checkpoint_or_fail(args.checkpoint)
    check_device(args.device)
    out = args.out or run_folder_of(args.checkpoint)
    check_folder(out)
    model, meta, classes = model_from_checkpoint(checkpoint, args.checkpoint)
    preprocessing = preprocessing_from(checkpoint, args.checkpoint)
    model.to(args.device)
    name = dataset_name(args.dataset or meta.get("dataset"))
    config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    root = args.data_root if args.data_root is not None else config.get("data_root")
    test_set = load_split(name, "test", root, args.limit, seed=0, download=args.download)
    if tuple(test_set.images.shape[1:]) != tuple(meta["input_shape"]) or len(test_set.classes) != len(classes):
        raise CLIError(f"the checkpoint's model takes {_shape_text(meta['input_shape'])} images in {len(classes)} "
                       f"classes; {name} has {_shape_text(test_set.images.shape[1:])} in {len(test_set.classes)}")
    loader = DataLoader(test_set, batch_size=args.batch_size, transform=transform_of(preprocessing),
                        device=args.device)
    scores, labels = predict(model, loader)
    write_report(scores, labels, classes, out)
    return 0


def run_folder_of(checkpoint_path):
    """``runs/x`` for ``runs/x/checkpoints/best.npz``; else the checkpoint's folder."""
    folder = os.path.dirname(os.path.abspath(checkpoint_path))
    return os.path.dirname(folder) if os.path.basename(folder) == "checkpoints" else folder


def command_predict(args):
    from PIL import Image

    from .functions import softmax
    from .tensor import Tensor, no_grad

    checkpoint = read_checkpoint_or_fail(args.checkpoint)
    model, meta, classes = model_from_checkpoint(checkpoint, args.checkpoint)
    model.eval()
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
            probabilities = softmax(model(Tensor(batch)), axis=1)
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
        model = _model_by_name(args.model, args.num_classes, options)
    print(summary(model, args.input_shape))
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
    parser = argparse.ArgumentParser(prog="tinycnn", description="Train and inspect CNNs with tinycnn.")
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
    evaluate.add_argument("--batch-size", type=positive_int, default=256)
    evaluate.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    evaluate.add_argument("--out", help="where report.txt and confusion_matrix.png go (default: the run folder)")
    evaluate.set_defaults(run=command_evaluate)

    summary = commands.add_parser("summary", help="layer table of a model: shapes, parameters, MACs")
    summary.add_argument("model")
    summary.add_argument("--input-shape", type=positive_int, nargs=3, metavar=("C", "H", "W"))
    summary.add_argument("--num-classes", type=positive_int, help="default: the builder's")
    summary.add_argument("--model-option", "-o", action="append", metavar="KEY=VALUE")
    summary.set_defaults(run=command_summary)

    datasets = commands.add_parser("datasets", help="where each dataset is looked for and what was found")
    datasets.add_argument("--data-root", help="also look in this folder first")
    datasets.set_defaults(run=command_datasets)

    predict = commands.add_parser("predict", help="classify image files with a trained checkpoint")
    predict.add_argument("images", nargs="+", metavar="IMAGE")
    predict.add_argument("--checkpoint", required=True)
    predict.add_argument("--top", type=positive_int, default=5,
                         help="how many classes to show (default 5; more than the classes shows them all)")
    predict.set_defaults(run=command_predict)
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


def main(argv=None):
    """Run the command line; returns the exit status (0, 2 for usage errors, 130 after ctrl+c)."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except CLIError as error:
        print(f"tinycnn {args.command}: error: {error}", file=sys.stderr)
        return USAGE_ERROR
    except FileNotFoundError as error:  # a dataset that is not there: the message says where it was looked for
        message = str(error).replace("pass download=True", "pass --download")
        print(f"tinycnn {args.command}: error: {message}", file=sys.stderr)
        return USAGE_ERROR


# ----- recipes (the examples/ scripts) -------------------------------------------------------
RECIPE_OVERRIDES = (("epochs", positive_int), ("batch_size", positive_int), ("lr", float),
                    ("limit", positive_int), ("seed", int), ("device", str), ("out", str), ("data_root", str))


def run_recipe(recipe, description, argv=None, experiments=None):
    """Run ``tinycnn train`` with a recipe (a dict of train settings); returns the exit status.

    The command line may change the common settings (``--epochs``, ``--lr``, ``--limit``,
    ...) and ``--resume`` a run; ``experiments`` maps ``--experiment`` choices to extra
    settings.

        >>> run_recipe({"model": "minivgg", "dataset": "cifar10", "epochs": 40}, "MiniVGG", ["--help"])  # doctest: +SKIP
    """
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    if experiments:
        parser.add_argument("--experiment", choices=list(experiments), default=next(iter(experiments)),
                            help="which experiment's settings (default %(default)s)")
    for name, kind in RECIPE_OVERRIDES:
        default = recipe.get(name, TRAIN_DEFAULTS[name])
        parser.add_argument("--" + name.replace("_", "-"), type=kind, help=f"default {default}")
    parser.add_argument("--no-augment", action="store_true", help="train without augmentation")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--resume", metavar="CHECKPOINT", help="continue from a checkpoint of this run "
                                                              "(with --lr: a new lr from there on)")
    args = parser.parse_args(argv)
    overrides = {name: getattr(args, name) for name, _ in RECIPE_OVERRIDES if getattr(args, name) is not None}
    if args.no_progress:
        overrides["progress"] = False
    if args.resume:  # the checkpoint holds the recipe; only what was typed changes
        argv = ["train", "--resume", args.resume] + _train_arguments(overrides)
    else:
        settings = {**recipe, **(experiments[args.experiment] if experiments else {}), **overrides}
        if args.no_augment:
            settings["augment"] = False
        argv = ["train"] + _train_arguments(settings)
    print("tinycnn " + " ".join(argv), flush=True)
    return main(argv)


def _train_arguments(settings):
    """Train settings -> `tinycnn train` arguments."""
    arguments = []
    for key, value in settings.items():
        flag = "--" + key.replace("_", "-")
        if key == "model_options":
            for option, option_value in value.items():
                arguments += ["--model-option", f"{option}={option_value!r}"]
        elif key == "progress":
            arguments += [] if value else ["--no-progress"]
        elif isinstance(value, bool):
            arguments += [flag] if value else []
        elif isinstance(value, (list, tuple)):
            arguments += [flag] + [str(v) for v in value]
        elif value is not None:
            arguments += [flag, str(value)]
    return arguments
