"""A whole training run in one object: ``Recipe`` holds the settings, ``run`` carries them out.

    from tinycnn.train import Recipe, run
    recipe = Recipe(model="minivgg", dataset="cifar10", epochs=40, batch_size=64, lr=0.01,
                    momentum=0.9, nesterov=True, schedule="step", step_size=5, gamma=0.5)
    history = run(recipe)                      # as `tinycnn train --model minivgg ...`

``run`` reads the dataset's train and test splits, holds ``val_split`` of the training images
out for validation (stratified, seeded), builds the model for their images, trains it with
``fit`` (BatchNorm + ReLU fused) and writes the run folder ``recipe.out``: ``checkpoints/``
(every ``checkpoint_every`` epochs, best.npz with the lowest validation loss, last.npz,
interrupted.npz after ctrl+c), ``monitor.png`` and ``history.json`` (the curves: ``val_*`` are
the validation split's), ``log.csv``. Then the test split is evaluated once, with best.npz's
weights: ``report.txt``, ``confusion_matrix.png`` and ``results.json`` (validation and test
metrics, each named). Each checkpoint stores the recipe, so ``Recipe.from_checkpoint`` and
``run(recipe, resume=path)`` continue a run.
The ``tinycnn train`` command is this function; ``run_script`` gives an examples/ script its options.
"""
import argparse
import os
import sys
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from .builders import (RecipeError, augmentation, build_model, canonical_model_name, check_device, check_folder,
                       dataset_name, load_split, make_optimizer, make_schedule, preprocessing_of, transform_of)
from .split import split_dataset
from .weights import init_from, weights_format

RESUME_CHANGES = ("epochs", "device", "out", "progress", "amp", "cuda_graph")    # what a resumed run may change


@dataclass
class Recipe:
    """The settings of one training run, with the ``tinycnn train`` command's defaults.

    ``model``/``model_options``: a name from ``tinycnn.models.available()`` and options of its
    builder; ``dataset``: mnist, fashion-mnist, cifar10, cifar100, tiny-imagenet or folder
    (read from ``data_root``); ``optimizer``: sgd, adam, adamw or rmsprop; ``schedule``: none,
    step (``step_size``, ``gamma``), poly (``power``), cosine or piecewise (``boundaries``,
    ``values``); ``augment``: the dataset's usual augmentation; ``limit``: random subsets of
    that many images per split (quick runs); ``out``: the run folder (None:
    ``runs/MODEL_DATASET``); ``progress``: progress bars, else one line per epoch;
    ``val_split``: the fraction of the training images held out for validation (0: none, and the
    last weights are tested); ``init_from``: weights to start from (tinycnn.train.weights);
    ``freeze``: names of parameters (prefixes, e.g. ``["features"]``) left untrained;
    ``amp``: mixed precision on the GPU (tinycnn.amp; a no-op on the CPU); ``cuda_graph``: each
    full batch's step replayed from a CUDA graph (GPU only; see ``fit``).

        >>> Recipe(model="lenet", dataset="MNIST", epochs=2).replace(lr=0.1).dataset
        'mnist'
    """
    model: str = "minivgg"
    model_options: dict = field(default_factory=dict)
    dataset: str = "fashion-mnist"
    data_root: str = None
    epochs: int = 1
    batch_size: int = 64
    lr: float = 0.01
    optimizer: str = "sgd"
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "none"
    step_size: int = 10
    gamma: float = 0.5
    power: float = 1.0
    boundaries: list = None
    values: list = None
    augment: bool = False
    limit: int = None
    seed: int = 0
    checkpoint_every: int = 5
    device: str = "cpu"
    out: str = None
    progress: bool = True
    val_split: float = 0.1
    init_from: str = None
    freeze: list = None
    amp: bool = False
    cuda_graph: bool = False

    def __post_init__(self):
        self.dataset = dataset_name(self.dataset)
        if not 0 <= float(self.val_split) < 1:
            raise RecipeError(f"Recipe: val_split must be in [0, 1), got {self.val_split}")
        canonical_model_name(self.model)        # an unknown model fails here, not after the data is read
        for name in ("epochs", "batch_size", "checkpoint_every") + (("limit",) if self.limit is not None else ()):
            if int(getattr(self, name)) < 1:
                raise RecipeError(f"Recipe: {name} must be >= 1, got {getattr(self, name)}")
        if self.schedule == "piecewise" and not (self.boundaries and self.values):
            raise RecipeError("Recipe: schedule 'piecewise' needs boundaries and values, e.g. "
                              "boundaries=[20, 30], values=[1e-3, 1e-4, 1e-5]")

    def replace(self, **changes):
        """A copy with ``changes``, e.g. ``recipe.replace(epochs=2, limit=1000)`` for a quick look."""
        return replace(self, **changes)

    @classmethod
    def from_checkpoint(cls, checkpoint):
        """The recipe a checkpoint of ``run`` was trained with (a path or what read_checkpoint returned);
        given a path, its run folder becomes ``out`` (``runs/x`` for ``runs/x/checkpoints/last.npz``)."""
        path = None
        if not isinstance(checkpoint, dict):
            from .checkpoint import read_checkpoint
            path, checkpoint = os.fspath(checkpoint), read_checkpoint(checkpoint)
        saved = saved_recipe(checkpoint, path)
        known = {name: value for name, value in saved.items() if name in cls.__dataclass_fields__}
        return cls(**{**known, **({"out": run_folder_of(path)} if path else {})})


def run(recipe, resume=None, lr=None, download=False, resume_command=None, distributed=False, backend="mpi",
        sync_batchnorm=False):
    """Train ``recipe``'s model on its dataset and write its run folder; returns fit's History
    (``history.interrupted`` after ctrl+c, which saves ``checkpoints/interrupted.npz``).

    ``resume``: a checkpoint of this recipe's run (a path or what read_checkpoint returned),
    continued up to ``recipe.epochs`` (a total, as Keras' ``epochs``); only the settings in
    RESUME_CHANGES may differ from the recipe it was trained with. ``lr``: a new learning
    rate from the resumed epoch on. ``download``: fetch a missing official dataset.
    ``resume_command``: the hint printed after ctrl+c, with ``{path}``.
    ``distributed=True``: data-parallel training on every process of an ``mpirun -np N`` job
    (``backend`` "mpi" or "nccl", ``sync_batchnorm``: tinycnn.train.distributed). ``batch_size``
    stays the whole batch, ``batch_size / N`` per process, so N processes train as one would;
    rank 0 writes the run folder and evaluates the test split.
    Mistakes found before the data is read (an unknown model, a folder that cannot be written,
    a device or a checkpoint that does not fit) raise RecipeError.
    """
    from ..data import DataLoader
    from ..random import manual_seed
    from .callbacks import CSVLogger, ModelCheckpoint, TrainingMonitor
    from .checkpoint import read_checkpoint
    from .fit import fit

    if not isinstance(recipe, Recipe):
        raise TypeError(f"run: expected a tinycnn.train.Recipe, got {type(recipe).__name__}")
    out = recipe.out or os.path.join("runs", f"{recipe.model}_{recipe.dataset}")
    check_device(recipe.device)
    check_folder(out)
    world = join_job(recipe, backend) if distributed else None
    lead = world is None or world.rank() == 0       # the process that prints and writes the run folder
    path, checkpoint = None, resume
    if resume is not None and not isinstance(resume, dict):
        path, checkpoint = os.fspath(resume), read_checkpoint(resume)
    if checkpoint is not None:
        check_resumable(recipe, checkpoint, path or "the checkpoint")
    if recipe.init_from is not None and checkpoint is None:
        weights_format(recipe.init_from)                          # an unreadable file fails before the data
    train_set = load_split(recipe.dataset, "train", recipe.data_root, recipe.limit, recipe.seed, download)
    test_set = load_split(recipe.dataset, "test", recipe.data_root, recipe.limit, recipe.seed, download)
    val_set = None
    if recipe.val_split:
        train_set, val_set = split_dataset(train_set, recipe.val_split, recipe.seed)
    image_shape = tuple(train_set.images.shape[1:])
    manual_seed(int(recipe.seed))
    model = build_model(recipe.model, len(train_set.classes), image_shape, recipe.model_options)
    if checkpoint is not None:
        load_weights(model, checkpoint, path or "the checkpoint")  # a mismatch is one line here, not in fit
    elif recipe.init_from is not None:
        kind, kept = init_from(model, recipe.init_from, canonical_model_name(recipe.model), recipe.model_options)
        if lead:
            print(f"Initialised from {recipe.init_from} ({kind})" + (f"; new head: {', '.join(kept)}" if kept else ""))
    if recipe.freeze:
        try:
            frozen = model.freeze(*recipe.freeze)
        except ValueError as error:
            raise RecipeError(str(error)) from None
        if lead:
            print(f"Frozen: {len(frozen)} parameter arrays under {', '.join(recipe.freeze)}")
    model.to(recipe.device)
    preprocessing = preprocessing_of(train_set)
    augment = augmentation(recipe.dataset, image_shape) if recipe.augment else []
    # the same seed on every rank: one shuffled order, each rank its part of every batch
    loader_class = DataLoader if world is None else world.DistributedDataLoader
    per_process = int(recipe.batch_size) // (1 if world is None else world.world_size())
    train_loader = loader_class(train_set, batch_size=per_process, shuffle=True, seed=int(recipe.seed),
                                transform=transform_of(preprocessing, augment), device=recipe.device)
    val_loader = None if val_set is None else loader_class(val_set, batch_size=256, device=recipe.device,
                                                           transform=transform_of(preprocessing))
    test_loader = DataLoader(test_set, batch_size=256, transform=transform_of(preprocessing), device=recipe.device)
    optimizer = make_optimizer(recipe.optimizer, model.parameters(), recipe.lr, recipe.momentum, recipe.nesterov,
                               recipe.weight_decay)
    schedule = make_schedule(recipe.schedule, optimizer, recipe.epochs, recipe.step_size, recipe.gamma,
                             recipe.power, recipe.boundaries, recipe.values)
    if checkpoint is not None and lr is not None and schedule is not None and not schedule.uses_base_lr:
        raise RecipeError("a new lr cannot change a piecewise schedule, whose lrs come from its values")

    meta = {"model": recipe.model, "model_options": recipe.model_options, "dataset": recipe.dataset,
            "classes": list(train_set.classes), "input_shape": list(image_shape),
            "config": {**asdict(recipe), "out": out}}
    checkpoints = ModelCheckpoint(os.path.join(out, "checkpoints"), every=int(recipe.checkpoint_every),
                                  save_best="val_loss" if val_loader is not None else None, save_last=True)
    callbacks = [checkpoints]       # on every rank: saving is a collective (rank 0 writes)
    if lead:
        callbacks += [TrainingMonitor(os.path.join(out, "monitor.png"), os.path.join(out, "history.json")),
                      CSVLogger(os.path.join(out, "log.csv"))]
        print(f"Training {recipe.model} on {recipe.dataset} ({len(train_set)} images, validation "
              f"{len(val_set) if val_set is not None else 0}, test {len(test_set)}) for {recipe.epochs} epochs"
              + (f" on {world.world_size()} processes" if world is not None else "") + f"; run folder {out}",
              flush=True)
    history = fit(model, train_loader, val_loader, optimizer=optimizer, epochs=int(recipe.epochs),
                  callbacks=callbacks, schedule=schedule, resume=checkpoint, lr=lr,
                  verbose=1 if recipe.progress else 2, preprocessing=preprocessing, meta=meta,
                  resume_command=resume_command or "run(Recipe.from_checkpoint({path!r}), resume={path!r})",
                  fuse=True, distributed=distributed, backend=backend, sync_batchnorm=sync_batchnorm,
                  amp=bool(recipe.amp), cuda_graph=bool(recipe.cuda_graph))
    if not history.interrupted and lead:
        history.test = evaluate_test_split(model, checkpoints, history, test_loader, list(train_set.classes), out)
    return history


def run_script(recipe, argv=None, description=None):
    """Run ``recipe`` from a script's command line, ``--epochs N`` (the total; default the recipe's),
    ``--limit N`` (random subsets for a quick look), ``--resume CHECKPOINT``; returns the exit status:
    0, 130 after ctrl+c, 1 after ``error: ...`` on stderr for a RecipeError or a missing dataset.
    An examples/ script is a Recipe and this:

        def main(argv=None):
            return run_script(RECIPE, argv, description=__doc__)
    """
    if not isinstance(recipe, Recipe):
        raise TypeError(f"run_script: expected a tinycnn.train.Recipe, got {type(recipe).__name__}")
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=recipe.epochs, help="total epochs (default %(default)s)")
    parser.add_argument("--limit", type=int, help="train and test on random subsets of this many images")
    parser.add_argument("--resume", metavar="CHECKPOINT", help="continue from a checkpoint of this run")
    args = parser.parse_args(argv)

    try:
        if args.resume:
            recipe = Recipe.from_checkpoint(args.resume)
        recipe = recipe.replace(epochs=args.epochs, limit=args.limit or recipe.limit)
        history = run(recipe, resume=args.resume, resume_command=f"python {sys.argv[0]} --resume {{path}}")
    except (RecipeError, FileNotFoundError) as error:   # a missing dataset says where it was looked for
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 130 if history.interrupted else 0


def join_job(recipe, backend):
    """``tinycnn.distributed`` once this process joined its mpirun job, or RecipeError (a backend
    that does not fit the device, no mpi4py, a batch the processes cannot share evenly)."""
    from .. import distributed as dist
    if backend not in ("mpi", "nccl"):
        raise RecipeError(f"the distributed backend must be mpi or nccl, got {backend!r}")
    if backend == "nccl" and recipe.device != "cuda":
        raise RecipeError("the nccl backend runs on GPUs: pass device cuda (--device cuda)")
    try:
        dist.init(backend)
    except ImportError as error:
        raise RecipeError(str(error)) from None
    processes = dist.world_size()
    if int(recipe.batch_size) % processes:
        raise RecipeError(f"batch_size {recipe.batch_size} is the whole batch, split across the {processes} "
                          f"processes: pick a multiple of {processes}")
    return dist


def evaluate_test_split(model, checkpoints, history, test_loader, classes, out):
    """Evaluate the selected weights (best.npz when there is validation, else the last) on the test
    split, once: report.txt, confusion_matrix.png and results.json (validation and test, named)."""
    import json
    from .checkpoint import read_checkpoint
    from .fit import predict
    from ..functions import softmax_cross_entropy
    from ..tensor import Tensor

    best = checkpoints.path("best")
    selected = "last epoch"
    if checkpoints.save_best and checkpoints.best is not None and os.path.isfile(best):  # written by this run
        saved = read_checkpoint(best)
        model.load_state_dict(saved["model"])
        selected = f"best.npz (epoch {saved['epoch']}, lowest val_loss)"
    scores, labels = predict(model, test_loader)
    test = {"loss": float(softmax_cross_entropy(Tensor(scores), labels).item()),
            "accuracy": float((scores.argmax(axis=1) == labels).mean()), "images": int(len(labels))}
    results = {"weights": selected, "test": test}
    if np.isfinite(history.get("val_loss", [np.nan])).any():
        epoch = int(np.nanargmin(history["val_loss"]))
        results["validation"] = {"epoch": epoch + 1, "loss": history["val_loss"][epoch],
                                 "accuracy": history["val_accuracy"][epoch]}
    print(f"Test set ({test['images']} images, evaluated once with the weights of the {selected}): "
          f"loss {test['loss']:.4f}, accuracy {test['accuracy']:.4f}")
    write_report(scores, labels, classes, out)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    return results


def write_report(scores, labels, classes, out):
    """Print rank-1/rank-5 and the classification report; write report.txt and confusion_matrix.png in ``out``."""
    from .metrics import classification_report, confusion_matrix, plot_confusion_matrix, rank_k_accuracy

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


# ----- resuming ----------------------------------------------------------------------------
def saved_recipe(checkpoint, path=None):
    """The recipe settings stored in a checkpoint written by ``run`` (a dict), or RecipeError."""
    meta = checkpoint.get("meta")
    saved = meta.get("config") if isinstance(meta, dict) else None
    if not isinstance(saved, dict) or not saved:
        raise RecipeError(f"{path or 'the checkpoint'}: the checkpoint holds no training settings "
                          "(write it with tinycnn.train.run or `tinycnn train`)")
    return dict(saved)


def epochs_done(checkpoint, path=None):
    """The epochs a checkpoint has completed (a partly done epoch does not count)."""
    try:
        done = int(checkpoint.get("epoch") or 0)
    except (TypeError, ValueError):
        done = -1
    if done < 0:
        raise RecipeError(f"{path or 'the checkpoint'}: the checkpoint's epoch {checkpoint.get('epoch')!r} "
                          "is not a count of epochs")
    return done


def resume_conflicts(settings, saved, allowed=RESUME_CHANGES):
    """[(name, given, saved)] for each of ``settings`` that differs from the ``saved`` recipe and may not."""
    return [(name, value, saved.get(name)) for name, value in settings.items()
            if name not in allowed and _differs(value, saved.get(name))]


def check_resumable(recipe, checkpoint, path):
    """RecipeError unless ``checkpoint`` was trained with ``recipe`` and has epochs left to do."""
    saved = saved_recipe(checkpoint, path)
    conflicts = resume_conflicts({name: value for name, value in asdict(recipe).items() if name in saved}, saved)
    if conflicts:
        name, given, before = conflicts[0]
        raise RecipeError(f"{path}: the recipe's {name} {given!r} differs from the resumed run's {before!r}; "
                          f"only {', '.join(RESUME_CHANGES)} may change (a new lr: run(..., lr=))")
    done = epochs_done(checkpoint, path)
    if int(recipe.epochs) <= done:
        raise RecipeError(f"{path} has done {done} epochs; epochs is the total to reach (as Keras' epochs "
                          f"with initial_epoch), so set epochs to {done + 1} or more to train further")


def load_weights(model, checkpoint, path):
    """Load the checkpoint's weights into ``model``, or RecipeError naming the file."""
    try:
        model.load_state_dict(checkpoint["model"])
    except (KeyError, ValueError, TypeError) as error:
        raise RecipeError(f"{path}: the checkpoint's weights do not fit the model {type(model).__name__}: "
                          f"{error}") from None


def run_folder_of(checkpoint_path):
    """``runs/x`` for ``runs/x/checkpoints/best.npz``; else the checkpoint's folder."""
    folder = os.path.dirname(os.path.abspath(checkpoint_path))
    return os.path.dirname(folder) if os.path.basename(folder) == "checkpoints" else folder


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
