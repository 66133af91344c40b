"""Callbacks: code that ``fit`` runs at the start and end of training, epochs and batches.

``fit`` sets ``callback.trainer`` (a tinycnn.train.fit.Trainer: model, optimizer,
history, ``epoch``, ``stop_training``, ``save_checkpoint(path)``) before
``on_train_begin``. Epoch numbers count from 1: ``on_epoch_end(5, logs)`` runs
after the fifth epoch, with logs such as ``{"loss": 0.61, "accuracy": 0.78,
"val_loss": 0.70, "val_accuracy": 0.75, "lr": 0.01, "epoch_time": 41.2,
"images_per_sec": 1187.0}``.

    >>> class PrintLoss(Callback):
    ...     def on_epoch_end(self, epoch, logs):
    ...         print(f"epoch {epoch}: loss {logs['loss']:.3f}")
"""
import csv
import json
import os
import warnings

import numpy as np


class Callback:
    """Base class: override the hooks you need; each does nothing by default."""

    trainer = None

    def on_train_begin(self):
        pass

    def on_epoch_begin(self, epoch):
        pass

    def on_batch_end(self, batch, logs):
        """``batch`` counts from 0 within the epoch; ``logs = {"size": N, "loss": 0-d array}``.

        The loss stays on the device; ``float()`` it only when needed (on a GPU that waits for it).
        """

    def on_epoch_end(self, epoch, logs):
        pass

    def on_train_end(self, history):
        pass


def _mode(monitor):
    """Whether ``monitor`` improves by going up (accuracies) or down (losses)."""
    return "max" if "acc" in monitor else "min"


def _is_improvement(value, best, mode, min_delta=0.0):
    if best is None:
        return True
    return value > best + min_delta if mode == "max" else value < best - min_delta


def _best_so_far(values, mode):
    values = [v for v in values if np.isfinite(v)]
    if not values:
        return None
    return max(values) if mode == "max" else min(values)


def _check_monitor(name, monitor, trainer):
    if monitor.startswith("val_") and trainer.val_loader is None:
        raise ValueError(f"{name}: monitor {monitor!r} needs validation data; pass val_loader to fit "
                         f"or monitor a training metric such as 'loss'")


class ModelCheckpoint(Callback):
    """Write ``epoch_5.npz``, ``epoch_10.npz``, ... (every ``every`` epochs), ``best.npz`` (when
    ``save_best`` improves; None to skip) and ``last.npz`` (every epoch, if ``save_last``) to ``directory``.

    Each file is a full checkpoint (tinycnn.train.checkpoint), written atomically,
    so ``fit(..., resume=path)`` continues from any of them.

        >>> import tempfile
        >>> checkpoints = ModelCheckpoint(tempfile.mkdtemp(), every=5, save_best="val_loss")
    """

    def __init__(self, directory, every=5, save_best="val_loss", save_last=False):
        if every is not None and int(every) < 1:
            raise ValueError(f"ModelCheckpoint: every must be >= 1 (or None), got {every}")
        self.directory = os.fspath(directory)
        self.every = None if every is None else int(every)
        self.save_best, self.save_last = save_best, save_last
        self.best = None

    def path(self, name):
        return os.path.join(self.directory, f"{name}.npz")

    def on_train_begin(self):
        os.makedirs(self.directory, exist_ok=True)
        if self.save_best:
            _check_monitor("ModelCheckpoint", self.save_best, self.trainer)
            # after a resume, "best" means best over the whole history, not only this run
            self.best = _best_so_far(self.trainer.history.get(self.save_best, []), _mode(self.save_best))

    def on_epoch_end(self, epoch, logs):
        if self.every is not None and epoch % self.every == 0:
            self.trainer.save_checkpoint(self.path(f"epoch_{epoch}"))
        if self.save_best:
            value = logs[self.save_best]
            if np.isfinite(value) and _is_improvement(value, self.best, _mode(self.save_best)):
                self.best = value
                self.trainer.save_checkpoint(self.path("best"))
        if self.save_last:
            self.trainer.save_checkpoint(self.path("last"))


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    ``restore_best_weights=True`` puts back the weights (and buffers) of the best epoch when
    training ends, stopped early or not, as Keras 3 does; after a resume, the best epoch of this
    run (the earlier ones' weights are not kept).

        >>> stopper = EarlyStopping("val_loss", patience=5, min_delta=1e-3, restore_best_weights=True)
    """

    def __init__(self, monitor="val_loss", patience=5, min_delta=0.0, restore_best_weights=False):
        if int(patience) < 1:
            raise ValueError(f"EarlyStopping: patience must be >= 1, got {patience}")
        self.monitor, self.patience, self.min_delta = monitor, int(patience), float(min_delta)
        self.restore_best_weights = bool(restore_best_weights)
        self.best, self.wait, self.stopped_epoch = None, 0, None
        self.best_epoch, self.best_weights = None, None

    def on_train_begin(self):
        _check_monitor("EarlyStopping", self.monitor, self.trainer)
        self.best, self.wait, self.best_epoch, self.best_weights = None, 0, None, None
        for value in self.trainer.history.get(self.monitor, []):  # replay the history after a resume
            self._update(value)

    def _update(self, value):
        if np.isfinite(value) and _is_improvement(value, self.best, _mode(self.monitor), self.min_delta):
            self.best, self.wait = value, 0
            return True
        self.wait += 1
        return False

    def on_epoch_end(self, epoch, logs):
        if self._update(logs[self.monitor]):
            self.best_epoch = epoch
            if self.restore_best_weights:  # copies: the live arrays change in place
                self.best_weights = {k: v.copy() for k, v in self.trainer.model.state_dict().items()}
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.trainer.stop_training = True
            if self.trainer.verbose:
                print(f"EarlyStopping: {self.monitor} has not improved for {self.wait} epochs "
                      f"(best {self.best:.4f}); stopping after epoch {epoch}")

    def on_train_end(self, history):
        if self.restore_best_weights and self.best_weights is not None:
            self.trainer.model.load_state_dict(self.best_weights)
            if self.trainer.verbose:
                print(f"EarlyStopping: restored the weights of epoch {self.best_epoch} "
                      f"({self.monitor} {self.best:.4f})")


class ReduceLROnPlateau(Callback):
    """Multiply the lr of every group by ``factor`` when ``monitor`` has stopped improving, with
    PyTorch's rules (``torch.optim.lr_scheduler.ReduceLROnPlateau``): an epoch improves when it
    beats the best by ``threshold`` (relative, ``best * (1 -/+ threshold)``, or absolute with
    ``threshold_mode="abs"``, Keras' ``min_delta``); after more than ``patience`` epochs without
    improvement the lr drops (Keras drops after ``patience``: its patience p is PyTorch's p - 1),
    never below ``min_lr`` nor by less than ``eps``; then ``cooldown`` epochs pass before counting again.

    It sets the lrs itself, so it runs without a schedule (fit's ``schedule=None``).

        >>> plateau = ReduceLROnPlateau("val_loss", factor=0.5, patience=2)
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel",
                 cooldown=0, min_lr=0.0, eps=1e-8):
        if not 0 < float(factor) < 1:
            raise ValueError(f"ReduceLROnPlateau: factor must be in (0, 1), got {factor}")
        if int(patience) < 0 or int(cooldown) < 0 or threshold_mode not in ("rel", "abs"):
            raise ValueError(f"ReduceLROnPlateau: expected patience, cooldown >= 0 and threshold_mode 'rel' or "
                             f"'abs', got {patience}, {cooldown}, {threshold_mode!r}")
        self.monitor, self.factor, self.patience = monitor, float(factor), int(patience)
        self.threshold, self.threshold_mode, self.cooldown = float(threshold), threshold_mode, int(cooldown)
        self.min_lr, self.eps = float(min_lr), float(eps)
        self.best, self.bad_epochs, self.cooldown_counter = None, 0, 0

    def _better(self, value):
        if self.best is None:
            return True
        sign = 1 if _mode(self.monitor) == "max" else -1
        margin = self.best * self.threshold * sign if self.threshold_mode == "rel" else self.threshold * sign
        return value > self.best + margin if sign > 0 else value < self.best + margin

    def step(self, value):
        """Count one epoch's ``value``; returns True when it lowered the lrs."""
        if np.isfinite(value) and self._better(value):
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.bad_epochs = 0
        if self.bad_epochs <= self.patience:
            return False
        self.cooldown_counter, self.bad_epochs = self.cooldown, 0
        lowered = False
        for group in self.trainer.optimizer.param_groups:
            new_lr = max(group["lr"] * self.factor, self.min_lr)
            if group["lr"] - new_lr > self.eps:
                group["lr"], lowered = new_lr, True
        return lowered

    def on_train_begin(self):
        _check_monitor("ReduceLROnPlateau", self.monitor, self.trainer)
        if self.trainer.schedule is not None:
            raise ValueError("ReduceLROnPlateau sets the lrs itself; pass schedule=None to fit")
        self.best, self.bad_epochs, self.cooldown_counter = None, 0, 0
        lrs = [group["lr"] for group in self.trainer.optimizer.param_groups]
        for value in self.trainer.history.get(self.monitor, []):  # replay the counters after a resume
            self.step(value)
        for group, lr in zip(self.trainer.optimizer.param_groups, lrs):  # the resumed lrs are the right ones
            group["lr"] = lr

    def on_epoch_end(self, epoch, logs):
        before = self.trainer.optimizer.param_groups[0]["lr"]
        if self.step(logs[self.monitor]) and self.trainer.verbose:
            print(f"ReduceLROnPlateau: {self.monitor} has not improved for more than {self.patience} epochs; "
                  f"lr {before:.1e} -> {self.trainer.optimizer.param_groups[0]['lr']:.1e}")


class CSVLogger(Callback):
    """Append one row per epoch (``epoch`` then the logs) to a CSV file.

    A fresh run starts a new file; a resumed one keeps the rows up to the epoch
    it resumed from.

        >>> import os, tempfile
        >>> logger = CSVLogger(os.path.join(tempfile.mkdtemp(), "log.csv"))
    """

    def __init__(self, path, separator=","):
        self.path, self.separator = os.fspath(path), separator
        self.fields = None

    def on_train_begin(self):
        start = self.trainer.epoch
        rows, self.fields = [], None
        if start > 0 and os.path.exists(self.path):
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f, delimiter=self.separator)
                self.fields = reader.fieldnames
                rows = [row for row in reader if int(row["epoch"]) <= start]
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        with open(self.path, "w", newline="") as f:
            if self.fields:
                writer = csv.DictWriter(f, self.fields, delimiter=self.separator)
                writer.writeheader()
                writer.writerows(rows)

    def on_epoch_end(self, epoch, logs):
        row = {"epoch": epoch, **logs}
        new_file = self.fields is None
        if new_file:
            self.fields = list(row)
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, self.fields, delimiter=self.separator, extrasaction="ignore")
            if new_file:
                writer.writeheader()
            writer.writerow(row)


class TrainingMonitor(Callback):
    """Redraw the loss and accuracy curves into ``png`` after every epoch and keep them in ``json``.

    After a resume the curves continue: the JSON written so far is read back and
    cut at the epoch the run resumed from (Adrian Rosebrock's TrainingMonitor).

        >>> import os, tempfile
        >>> folder = tempfile.mkdtemp()
        >>> monitor = TrainingMonitor(os.path.join(folder, "monitor.png"), os.path.join(folder, "history.json"))
    """

    CURVES = ("loss", "val_loss", "accuracy", "val_accuracy")

    def __init__(self, png, json_path=None, title="Training Loss and Accuracy"):
        self.png = os.fspath(png)
        self.json_path = os.fspath(json_path) if json_path is not None else os.path.splitext(self.png)[0] + ".json"
        self.title = title
        self.records = {}

    def on_train_begin(self):
        start = self.trainer.epoch
        self.records = {}
        if start > 0 and os.path.exists(self.json_path):
            with open(self.json_path) as f:
                saved = json.load(f)
            self.records = {key: list(values)[:start] for key, values in saved.items()}
            if len(self.records.get("epoch", [])) < start:
                warnings.warn(f"TrainingMonitor: {self.json_path} holds {len(self.records.get('epoch', []))} "
                              f"epochs, the run resumes after epoch {start}; its curves will have a gap")

    def on_epoch_end(self, epoch, logs):
        for key, value in {"epoch": epoch, **logs}.items():
            self.records.setdefault(key, []).append(float(value))
        _write_json_atomically(self.records, self.json_path)
        self.plot()

    def plot(self):
        """Draw the recorded curves into ``self.png`` (matplotlib's Agg canvas, no display needed)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        figure = Figure(figsize=(8, 6), dpi=100)
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        epochs = self.records.get("epoch", [])
        for key in self.CURVES:
            if key in self.records:
                axes.plot(epochs, self.records[key], marker="o" if len(epochs) < 30 else None,
                          markersize=3, label=key.replace("_", " "))
        last = int(epochs[-1]) if epochs else 0
        axes.set_title(f"{self.title} [Epoch {last}]")
        axes.set_xlabel("Epoch #")
        axes.set_ylabel("Loss/Accuracy")
        axes.grid(alpha=0.3)
        axes.legend(loc="best")
        directory = os.path.dirname(os.path.abspath(self.png))
        os.makedirs(directory, exist_ok=True)
        figure.savefig(self.png)


def _write_json_atomically(obj, path):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    temp = path + ".tmp"
    with open(temp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(temp, path)
