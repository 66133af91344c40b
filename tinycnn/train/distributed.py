"""``fit`` on several processes: every rank runs the same loop on its share of the data.

    mpirun -np 2 python train.py      # train.py calls fit(..., distributed=True) or fit_distributed(...)

``fit_distributed`` takes ``fit``'s arguments plus ``backend``, ``sync_batchnorm`` and
``bucket_cap_mb``. It joins the job (``tinycnn.distributed.init``), wraps the model in
``DistributedDataParallel`` and runs a ``DistributedTrainer``, which differs from ``fit``'s
Trainer only where ranks must agree:

- metrics are the whole job's: loss and accuracy are summed over the ranks before they are
  read, validation results averaged, ``images_per_sec`` summed (the job's throughput);
- checkpoints hold every rank's generators and are written by rank 0 only; a resume
  (every rank reads the same file) gives each rank back its own, so it continues exactly;
- ctrl+c (or the SIGTERM that mpirun sends every rank on ctrl+c) on any rank stops every
  rank after the same batch; an error on one rank ends the job (MPI_Abort, see
  tinycnn.distributed.comm).

Give it a ``tinycnn.distributed.DistributedDataLoader`` (the same ``seed`` on every rank)
for training; the validation loader may be one too (each rank evaluates its share) or a
plain one (each evaluates everything). Progress is printed by rank 0.
"""
import contextlib
import io
import os
import signal
import threading

import numpy as np

from .. import distributed as dist
from ..io import save
from ..scratch import keep_freed_memory
from .checkpoint import capture_rng, from_saved, read_checkpoint
from .trainer import RunningMetrics, Trainer


class ReducedMetrics(RunningMetrics):
    """RunningMetrics whose ``read`` sums loss, correct predictions and samples over the ranks
    (a collective: every rank reads at the same points, as the loop does)."""

    def read(self):
        sums = np.array([float(self.loss_sum), float(self.correct), float(self.seen)])
        dist.all_reduce(sums)
        loss_sum, correct, seen = sums
        return (float("nan"), float("nan")) if seen == 0 else (loss_sum / seen, correct / seen)


class DistributedTrainer(Trainer):
    """Trainer whose metrics, checkpoints and stops are agreed across the ranks (see above)."""
    metrics_class = ReducedMetrics

    def __init__(self, model, *args, **kwargs):
        super().__init__(model, *args, **kwargs)
        if not isinstance(model, dist.DistributedDataParallel):
            raise TypeError("DistributedTrainer: wrap the model in tinycnn.distributed.DistributedDataParallel")
        if dist.rank() != 0:
            self.verbose = 0

    def run(self):
        # mpirun turns ctrl+c into SIGTERM on every rank: let it ask for the same orderly stop
        on_main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _as_ctrl_c) if on_main_thread else None
        try:
            return super().run()
        finally:
            if on_main_thread:
                signal.signal(signal.SIGTERM, previous)

    def _train_epoch(self, interrupt):
        agreed = _AgreedInterrupt(interrupt)
        logs = super()._train_epoch(agreed)
        agreed.vote()           # once more: every rank leaves the epoch with the same flag
        if logs is None:
            return None
        if "val_loss" in logs:      # each rank's mean over its share, weighted by the share's size
            count = _samples(self.val_loader)
            sums = dist.all_reduce(np.array([logs["val_loss"] * count, logs["val_accuracy"] * count, count]))
            logs["val_loss"], logs["val_accuracy"] = float(sums[0] / sums[2]), float(sums[1] / sums[2])
        logs["images_per_sec"] = float(dist.all_reduce(np.array([logs["images_per_sec"]]))[0])
        logs["epoch_time"] = float(dist.all_reduce(np.array([logs["epoch_time"]]), op="max")[0])
        return logs

    def checkpoint_state(self):
        """Trainer's checkpoint plus ``rng_ranks``: every rank's generators (a collective)."""
        state = super().checkpoint_state()
        state["rng_ranks"] = dist.gather(capture_rng(self.train_loader), root=0)
        return state

    def save_checkpoint(self, path):
        """Every rank takes part (its generators), rank 0 writes; returns ``path``."""
        state = self.checkpoint_state()
        if dist.rank() == 0:
            save(state, path)
        return path

    def _save_interrupted(self):
        if dist.rank() == 0:
            return super()._save_interrupted()
        with contextlib.redirect_stdout(io.StringIO()):       # rank 0 says where it saved
            return super()._save_interrupted()

    def restore(self, checkpoint):
        """Trainer's restore, then this rank's own generators from ``rng_ranks``."""
        path = None
        if not isinstance(checkpoint, dict):
            path, checkpoint = os.fspath(checkpoint), read_checkpoint(checkpoint)
        super().restore(checkpoint)
        self.resumed_from = path or self.resumed_from
        ranks = checkpoint.get("rng_ranks")
        if ranks is not None:
            if len(ranks) != dist.world_size():
                raise ValueError(f"resume: the checkpoint was written by {len(ranks)} processes, this job has "
                                 f"{dist.world_size()}; resume with as many (mpirun -np {len(ranks)})")
            self._pending_rng = from_saved(ranks[dist.rank()])


def fit_distributed(model, train_loader, val_loader=None, optimizer=None, epochs=1, resume=None, lr=None,
                    start_epoch=0, fuse=True, backend="mpi", sync_batchnorm=False, bucket_cap_mb=1.0, **options):
    """``fit`` (same arguments, same History) on every rank of an ``mpirun`` job.

    ``backend``: "mpi" or "nccl" (move the model to "cuda" first); ``sync_batchnorm``
    replaces the model's BatchNorms by SyncBatchNorm; ``bucket_cap_mb`` sizes the gradient
    buckets. ``options`` are fit's other keywords (loss, callbacks, schedule, verbose, ...).
    Give ModelCheckpoint to every rank (saving is a collective: rank 0 writes) and the
    callbacks that write files of their own (CSVLogger, TrainingMonitor) to rank 0 only.
    """
    from ..nn import Module, fuse as fuse_layers
    if not isinstance(model, Module):
        raise TypeError(f"fit_distributed: model must be a tinycnn.nn.Module, got {type(model).__name__}")
    if optimizer is None:
        raise ValueError("fit_distributed: pass an optimizer, e.g. optimizer=tinycnn.optim.SGD(model.parameters(), "
                         "lr=0.01)")
    if int(epochs) < 1:
        raise ValueError(f"fit_distributed: epochs must be >= 1, got {epochs}")
    dist.init(backend)
    if fuse:
        fuse_layers(model)
    if sync_batchnorm:
        model = dist.convert_sync_batchnorm(model)
    names = ("loss", "schedule", "loss_weights", "callbacks", "preprocessing", "meta", "verbose", "log_every",
             "resume_command")
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise TypeError(f"fit_distributed: unexpected keyword arguments {unknown}")
    trainer = DistributedTrainer(dist.DistributedDataParallel(model, bucket_cap_mb), optimizer, train_loader,
                                 val_loader, options.get("loss"), options.get("schedule"),
                                 options.get("loss_weights"), epochs, options.get("callbacks", ()),
                                 options.get("preprocessing"), options.get("meta"), options.get("verbose", True),
                                 options.get("log_every", 20), options.get("resume_command"))
    if resume is not None:
        trainer.restore(resume)
    else:
        trainer.epoch = trainer.start_epoch = int(start_epoch)
    if lr is not None:
        schedule = options.get("schedule")
        schedule.set_base_lr(lr) if schedule is not None else optimizer.set_lr(lr)
    keep_freed_memory()
    return trainer.run()


def _samples(loader):
    """How many samples this rank's ``loader`` holds (its share when it is a DistributedDataLoader)."""
    if isinstance(loader, dist.DistributedDataLoader):
        return float(sum(len(batch) for batch in loader.batch_indices(0)))
    images = getattr(loader, "images", None)
    return float(len(images)) if images is not None else 1.0     # any loader: every rank evaluates the same


class _AgreedInterrupt:
    """Stands for fit's ctrl+c flag: reading it is a vote, True when any rank asked to stop."""

    def __init__(self, local):
        self.local = local

    @property
    def requested(self):
        return self.vote()

    def vote(self):
        vote = dist.all_reduce(np.array([1.0 if self.local.requested else 0.0]), op="max")
        if vote[0]:
            self.local.requested = True     # so that fit's loop saves and stops on every rank
        return bool(vote[0])


def _as_ctrl_c(signum, frame):
    os.kill(os.getpid(), signal.SIGINT)

