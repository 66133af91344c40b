"""The Trainer behind ``fit``: the epoch loop with its metrics, checkpoints and ctrl+c, and
``evaluate`` and ``predict``, which it and ``tinycnn.train.run`` use.

``fit`` (tinycnn.train.fit) checks its arguments and runs a Trainer; a subclass changes one
part of the loop (tinycnn.train.distributed.DistributedTrainer: metrics and checkpoints agreed
across processes).
"""
import os
import signal
import sys
import threading
import time

import numpy as np
from tqdm.auto import tqdm

from .. import functions as F
from ..backend import device_of, to_device, unwrap
from ..io import save
from ..tensor import Tensor, no_grad
from .checkpoint import (capture_rng, restore_rng, restore_loader, read_checkpoint, to_savable,
                         history_to_savable, history_from_saved)

AUX_LOSS_WEIGHT = 0.3  # GoogLeNet's auxiliary classifiers (Szegedy et al. 2014)


class History(dict):
    """Metrics per epoch, a dict of lists: ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``,
    ``lr`` (at the end of the epoch), ``epoch_time`` (seconds, with validation) and ``images_per_sec``
    (training images per second).

    The ``val_*`` metrics are the validation data's (``val_loader`` or ``validation_split``), never
    the test set's: ``tinycnn.train.run`` evaluates the test set once after training, into ``test``.
    ``interrupted`` is True when ctrl+c stopped the run; ``checkpoint`` is then the
    file to resume from.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.interrupted = False
        self.checkpoint = None
        self.test = None

    def append(self, logs):
        for key, value in logs.items():
            self.setdefault(key, []).append(float(value))

    @property
    def epochs(self):
        return len(self.get("loss", []))


class RunningMetrics:
    """Sums of the loss and of correct predictions, kept on the device.

    ``add`` never copies to the host, so a GPU keeps running ahead of Python;
    ``read`` syncs once and returns ``(mean loss, accuracy)``.
    """

    def __init__(self, loss_sum=0.0, correct=0, seen=0):
        self.loss_sum, self.correct, self.seen = loss_sum, correct, int(seen)

    def add(self, loss, scores, labels):
        """``loss``: the batch's mean loss (0-d array); ``scores`` (N, C); ``labels`` (N,) or one-hot (N, C)."""
        count = len(labels)
        if labels.ndim == 2:
            labels = labels.argmax(axis=1)
        self.loss_sum = self.loss_sum + loss.astype(np.float64) * count
        self.correct = self.correct + (scores.argmax(axis=1) == labels).sum()
        self.seen += count

    def read(self):
        if self.seen == 0:
            return float("nan"), float("nan")
        return float(self.loss_sum) / self.seen, int(self.correct) / self.seen

    def state_dict(self):
        return {"loss_sum": float(self.loss_sum), "correct": int(self.correct), "seen": self.seen}


class Trainer:
    """The state of one ``fit`` call. Callbacks reach it as ``self.trainer``.

    ``epoch`` counts completed epochs and ``batch`` the batches done in the current
    one; setting ``stop_training = True`` ends the run after the current epoch.
    ``metrics_class`` keeps the running loss and accuracy of an epoch.
    """
    metrics_class = RunningMetrics

    def __init__(self, model, optimizer, train_loader, val_loader=None, loss=None, schedule=None,
                 loss_weights=None, epochs=1, callbacks=(), preprocessing=None, meta=None,
                 verbose=True, log_every=20, resume_command=None):
        self.model, self.optimizer, self.schedule = model, optimizer, schedule
        self.train_loader, self.val_loader = train_loader, val_loader
        self.loss = loss or F.softmax_cross_entropy
        self.loss_weights = None if loss_weights is None else tuple(float(w) for w in loss_weights)
        self.epochs, self.callbacks = int(epochs), list(callbacks)
        self.preprocessing, self.meta = preprocessing, meta
        self.verbose, self.log_every = int(verbose), max(1, int(log_every))
        self.resume_command = resume_command or "fit(..., resume={path!r})"
        self.history = History()
        self.epoch, self.batch = 0, 0
        self.start_epoch = 0
        self.resumed_from = None
        self.stop_training = False
        self._metrics = self.metrics_class()
        self._elapsed = 0.0           # seconds spent on the current epoch before this run (resume)
        self._epoch_started = None    # time.perf_counter() when this run entered the epoch
        self._resume_batch = 0        # batches of the first epoch done before a ctrl+c
        self._replay = False          # the loader cannot resume mid-epoch: skip those batches
        self._pending_rng = None      # generator states to restore at the first batch trained

    # ----- checkpoints ----------------------------------------------------------
    def checkpoint_state(self):
        """Everything needed to continue from this point (see tinycnn.train.checkpoint)."""
        progress = None
        if self.batch > 0:  # a partly done epoch (ctrl+c): keep its running sums
            progress = {**self._metrics.state_dict(), "elapsed": self._elapsed_now()}
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": None if self.schedule is None else self.schedule.state_dict(),
            "epoch": self.epoch,
            "batch": self.batch,
            "progress": progress,
            "rng": capture_rng(self.train_loader),
            "history": history_to_savable(self.history),
            "preprocessing": to_savable(self.preprocessing),
            "meta": to_savable(self.meta),
        }

    def save_checkpoint(self, path):
        """Write ``checkpoint_state()`` to ``path`` atomically; returns ``path``."""
        save(self.checkpoint_state(), path)
        return path

    def restore(self, checkpoint):
        """Continue from a checkpoint (a path or what ``read_checkpoint`` returned)."""
        if not isinstance(checkpoint, dict):
            self.resumed_from = os.fspath(checkpoint)
            checkpoint = read_checkpoint(checkpoint)
        self.model.load_state_dict(checkpoint["model"])
        if checkpoint.get("optimizer") is not None:
            self.optimizer.load_state_dict(checkpoint["optimizer"])
        if self.schedule is not None and checkpoint.get("schedule") is not None:
            self.schedule.load_state_dict(checkpoint["schedule"])
        self.epoch = self.start_epoch = int(checkpoint.get("epoch", 0))
        self._resume_batch = int(checkpoint.get("batch") or 0)
        self.history = History(history_from_saved(checkpoint.get("history")))
        if self.preprocessing is None:
            self.preprocessing = checkpoint.get("preprocessing")
        if self.meta is None:
            self.meta = checkpoint.get("meta")
        progress = checkpoint.get("progress")
        if self._resume_batch and progress:
            self._metrics = self.metrics_class(progress["loss_sum"], progress["correct"], progress["seen"])
            self._elapsed = float(progress["elapsed"])
        rng = checkpoint.get("rng") or {}
        loader_state = rng.get("loader")
        self._replay = loader_state is None or not hasattr(self.train_loader, "load_state_dict")
        restore_loader(loader_state, self.train_loader)
        if rng:
            self._pending_rng = rng  # replayed batches may draw from the generators: restore after them

    # ----- the loop --------------------------------------------------------------
    def run(self):
        """Train from ``self.epoch`` to ``self.epochs``; returns the History."""
        for callback in self.callbacks:
            callback.trainer = self
        self._call("on_train_begin")
        with _InterruptRequest() as interrupt:
            while self.epoch < self.epochs and not self.stop_training:
                logs = self._train_epoch(interrupt)
                if logs is not None:
                    self.history.append(logs)
                    if self.verbose:
                        print(_epoch_line(self.epoch, self.epochs, logs), flush=True)
                    self._call("on_epoch_end", self.epoch, logs)
                if interrupt.requested:
                    self._save_interrupted()
                    break
        self._call("on_train_end", dict(self.history))
        return self.history

    def _train_epoch(self, interrupt):
        """One pass over the training data, then validation; None if ctrl+c stopped it midway."""
        self.model.train()
        loader, start = self.train_loader, self._resume_batch
        self._call("on_epoch_begin", self.epoch + 1)
        total = len(loader) if hasattr(loader, "__len__") else None
        bar = tqdm(total=total, initial=start, desc=f"Epoch {self.epoch + 1}/{self.epochs}", unit="batch",
                   leave=False, dynamic_ncols=True, disable=self.verbose != 1)
        self._epoch_started = time.perf_counter()
        batches = iter(loader)
        try:
            # a resumed loader starts at batch `start` by itself; one that is replayed starts at 0
            for index, (images, labels) in enumerate(batches, start=0 if self._replay else start):
                if index < start:
                    continue
                self._restore_pending_rng()
                loss = self._train_step(images, labels)
                self.batch = index + 1
                self._call("on_batch_end", index, {"size": len(labels), "loss": loss})
                bar.update(1)
                if (self.batch - start) % self.log_every == 0:
                    self._show_progress(bar)
                if interrupt.requested:
                    return None
        finally:
            bar.close()
            if hasattr(batches, "close"):  # stop a prefetching thread when the epoch was cut short
                batches.close()
        self._restore_pending_rng()
        train_time = self._elapsed_now()
        loss, accuracy = self._metrics.read()
        logs = {"loss": loss, "accuracy": accuracy}
        if self.val_loader is not None:
            results = evaluate(self.model, self.val_loader, self.loss)
            logs.update(val_loss=results["loss"], val_accuracy=results["accuracy"])
        logs["lr"] = self.optimizer.param_groups[0]["lr"]
        logs["epoch_time"] = self._elapsed_now()
        logs["images_per_sec"] = self._metrics.seen / max(train_time, 1e-9)
        self.epoch += 1
        self.batch = self._resume_batch = 0
        self._metrics, self._elapsed = self.metrics_class(), 0.0
        if self.schedule is not None and self.schedule.per == "epoch":
            self.schedule.step()
        return logs

    def _train_step(self, images, labels):
        device = self.model.device
        images, labels = _on_device(images, device), _on_device(labels, device)
        graphed = getattr(self, "graphed_step", None)      # fit(..., cuda_graph=True)
        loss, output = (graphed or self.run_step)(images, labels)
        if self.schedule is not None and self.schedule.per == "step":
            self.schedule.step()
        self._metrics.add(loss, output, labels)
        return loss

    def run_step(self, images, labels):
        """Forward, backward and optimizer step on device-ready arrays -> (loss, main output) arrays."""
        outputs = self.model(Tensor(images))
        loss = self.compute_loss(outputs, labels)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.data, main_output(outputs).data

    def compute_loss(self, outputs, labels):
        """The loss of one output, or the weighted sum over a model's outputs (main, aux1, aux2, ...).

        Weights default to 1 for the main output and 0.3 for each auxiliary one.
        """
        outputs = tuple(outputs) if isinstance(outputs, (tuple, list)) else (outputs,)
        weights = self.loss_weights or (1.0,) + (AUX_LOSS_WEIGHT,) * (len(outputs) - 1)
        if len(weights) != len(outputs):
            raise ValueError(f"fit: the model returned {len(outputs)} output(s) but loss_weights has "
                             f"{len(weights)} entries {weights}")
        total = None
        for weight, output in zip(weights, outputs):
            if weight == 0:
                continue
            term = self.loss(output, labels)
            term = term if weight == 1 else term * weight
            total = term if total is None else total + term
        if total is None:
            raise ValueError(f"fit: every loss weight is zero {weights}")
        return total

    # ----- helpers ---------------------------------------------------------------
    def _call(self, method, *args):
        for callback in self.callbacks:
            getattr(callback, method)(*args)

    def _elapsed_now(self):
        started = self._epoch_started
        return self._elapsed + (0.0 if started is None else time.perf_counter() - started)

    def _restore_pending_rng(self):
        if self._pending_rng is not None:
            restore_rng(self._pending_rng, include_loader=False)
            self._pending_rng = None

    def _show_progress(self, bar):
        loss, accuracy = self._metrics.read()  # the one host sync per logging interval
        bar.set_postfix(loss=f"{loss:.4f}", acc=f"{accuracy:.4f}",
                        img_s=f"{self._metrics.seen / max(self._elapsed_now(), 1e-9):.0f}", refresh=False)

    def _save_interrupted(self):
        directory = next((c.directory for c in self.callbacks if hasattr(c, "directory")), os.getcwd())
        path = self.save_checkpoint(os.path.join(directory, "interrupted.npz"))
        self.history.interrupted, self.history.checkpoint = True, path
        where = f"epoch {self.epoch + 1}, batch {self.batch}" if self.batch else f"the end of epoch {self.epoch}"
        print(f"\nInterrupted at {where}: saved {path}", flush=True)
        print("Resume with: " + self.resume_command.format(path=path), flush=True)


def main_output(outputs):
    """The first output of a multi-output model (GoogLeNet's main classifier), else the output itself."""
    return outputs[0] if isinstance(outputs, (tuple, list)) else outputs


def predict(model, loader):
    """Scores (N, C) and labels (N,) of every batch of ``loader``, as NumPy arrays (eval mode, no grad)."""
    scores, labels = [], []
    for batch_scores, batch_labels in _inference(model, loader):
        scores.append(to_device(batch_scores, "cpu"))
        labels.append(to_device(batch_labels, "cpu"))
    if not scores:
        raise ValueError("predict: the loader produced no batches")
    return np.concatenate(scores), np.concatenate(labels)


def evaluate(model, loader, loss=None):
    """``{"loss": mean loss, "accuracy": ...}`` of ``model`` over ``loader`` (eval mode, no grad)."""
    loss = loss or F.softmax_cross_entropy
    metrics = RunningMetrics()
    for scores, labels in _inference(model, loader):
        metrics.add(loss(Tensor(scores), labels).data, scores, labels)
    mean_loss, accuracy = metrics.read()
    return {"loss": mean_loss, "accuracy": accuracy}


def _inference(model, loader):
    """Yield (scores, labels) raw arrays on the model's device, with the model in eval mode."""
    was_training = model.training
    device = model.device
    model.eval()
    try:
        with no_grad():
            for images, labels in loader:
                outputs = model(Tensor(_on_device(images, device)))
                yield main_output(outputs).data, _on_device(labels, device)
    finally:
        model.train(was_training)


def _on_device(array, device):
    array = unwrap(array)
    return array if device_of(array) == device else to_device(array, device)


def _epoch_line(epoch, epochs, logs):
    """``Epoch 3/40 - 41.2s - 1187 img/s - loss: 0.8123 - accuracy: 0.7012 - ... - lr: 1.0e-02``."""
    parts = [f"Epoch {epoch}/{epochs}", f"{logs['epoch_time']:.1f}s", f"{logs['images_per_sec']:.0f} img/s"]
    parts += [f"{key}: {logs[key]:.4f}" for key in ("loss", "accuracy", "val_loss", "val_accuracy") if key in logs]
    parts.append(f"lr: {logs['lr']:.1e}")
    return " - ".join(parts)


class _InterruptRequest:
    """While active, the first ctrl+c only sets ``requested`` (the loop stops after the batch);
    a second one raises KeyboardInterrupt. The previous handler comes back on exit."""

    def __init__(self):
        self.requested = False
        self._installed = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nctrl+c: finishing the current batch, then saving a checkpoint "
              "(press ctrl+c again to abort)", file=sys.stderr, flush=True)

    def __exit__(self, *exc_info):
        if self._installed:  # None means a handler installed outside Python: fall back to the default
            signal.signal(signal.SIGINT, signal.SIG_DFL if self._previous is None else self._previous)
