"""``fit``: train a model, with resume and ctrl+c, on one process or several; ``evaluate``, ``predict``.

    >>> import numpy as np, tinycnn, tinycnn.nn as nn
    >>> from tinycnn.optim import SGD
    >>> tinycnn.manual_seed(0)
    >>> x = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    >>> y = (x[:, 0] > 0).astype(np.int64)
    >>> batches = [(x[i:i + 8], y[i:i + 8]) for i in range(0, 32, 8)]
    >>> model = nn.Sequential(nn.Linear(4, 2))
    >>> history = fit(model, batches, optimizer=SGD(model.parameters(), lr=0.5), epochs=3, verbose=False)
    >>> len(history["loss"]), history["loss"][-1] < history["loss"][0]
    (3, True)

Any iterable of ``(images, labels)`` batches works as a loader. One with
``state_dict``/``load_state_dict`` (tinycnn.data.DataLoader) has its position
saved in checkpoints and must continue from it (the same shuffled order, the
same augmentation, mid-epoch after a ctrl+c), which makes a resumed run
bit-identical to one that never stopped. A loader without them is replayed
from the start of the epoch after a ctrl+c, skipping the batches already done.
The loop itself is tinycnn.train.trainer's Trainer.
"""
from ..scratch import keep_freed_memory
from .trainer import (AUX_LOSS_WEIGHT, History, RunningMetrics, Trainer, evaluate, main_output,  # noqa: F401
                      predict)


def fit(model, train_loader, val_loader=None, optimizer=None, loss=None, epochs=1, callbacks=(),
        schedule=None, loss_weights=None, resume=None, lr=None, start_epoch=0, verbose=True,
        preprocessing=None, meta=None, log_every=20, resume_command=None, fuse=True, validation_split=None,
        cuda_graph=False, distributed=False, backend="mpi", sync_batchnorm=False, amp=False):
    """Train ``model`` on ``train_loader`` until epoch ``epochs``; returns a History.

    - ``validation_split=0.1`` holds that fraction of a DataLoader's data out for validation, as
      Keras' argument but stratified and seeded with the loader's seed (tinycnn.train.split), and
      without its random augmentations; it replaces ``val_loader``.

    - ``fuse=True`` first calls ``tinycnn.nn.fuse(model)``, which rewrites the model in
      place: each BatchNorm next to a ReLU in an nn.Sequential becomes one op, one pass over
      memory instead of two, with the same parameters, state_dict keys and values.
      ``fuse=False`` trains every layer as written.
    - ``loss(logits, labels)`` defaults to softmax cross entropy. A model that
      returns a tuple (GoogLeNet: main, aux1, aux2) is trained on the weighted sum
      of its losses, ``loss_weights`` defaulting to (1, 0.3, 0.3).
    - ``schedule`` (tinycnn.optim) is stepped after each epoch or each batch
      according to its ``per``.
    - ``resume="runs/x/checkpoints/epoch_20.npz"`` restores model, buffers,
      optimizer, schedule, epoch, generators and history, then trains up to
      ``epochs`` (a total, as in Keras). ``lr`` sets a new learning rate from there
      (the schedule's new base lr when there is one). Without ``resume``, counting
      starts at ``start_epoch``.
    - ctrl+c finishes the current batch, writes ``interrupted.npz`` into the
      ModelCheckpoint's directory (else the current one) and prints how to resume;
      a second ctrl+c aborts at once. ``resume_command`` is that hint, with ``{path}``.
    - ``cuda_graph=True`` (a model on the GPU, SGD) captures a training step into a CUDA graph
      once and replays it for every full batch (tinycnn.cuda_graph); the last, partial batch of
      an epoch runs eagerly.
    - ``distributed=True``: data-parallel training on every process of an ``mpirun`` job
      (tinycnn.train.distributed.fit_distributed: ``backend`` "mpi" or "nccl", ``sync_batchnorm``);
      give it a tinycnn.distributed.DistributedDataLoader for training.
    - ``amp=True``: mixed precision (tinycnn.amp) on the GPU: the forward pass and the loss under
      ``autocast``, the backward pass and the step through a ``GradScaler`` (its scale starts
      again at 2**16 on resume); on the CPU it changes nothing.
    - ``preprocessing`` and ``meta`` (dicts) are stored in every checkpoint.
    - ``verbose``: 1 (or True) shows a progress bar per epoch and one line after it,
      2 only the lines, 0 (or False) nothing. The bar reads the metrics every
      ``log_every`` batches; in between they stay on the device.
    """
    from ..nn import Module, fuse as fuse_layers
    if not isinstance(model, Module):
        raise TypeError(f"fit: model must be a tinycnn.nn.Module, got {type(model).__name__}")
    if optimizer is None:
        raise ValueError("fit: pass an optimizer, e.g. optimizer=tinycnn.optim.SGD(model.parameters(), lr=0.01)")
    if int(epochs) < 1:
        raise ValueError(f"fit: epochs must be >= 1, got {epochs}")
    for callback in callbacks:
        if not hasattr(callback, "on_epoch_end"):
            raise TypeError(f"fit: callbacks must be tinycnn.train.Callback objects, got {type(callback).__name__}")
    if distributed:
        if amp:
            raise ValueError("fit: distributed=True does not take amp=True yet")
        if cuda_graph or validation_split:
            raise ValueError("fit: distributed=True takes neither cuda_graph nor validation_split "
                             "(give every rank a DistributedDataLoader of the validation data)")
        from .distributed import fit_distributed
        return fit_distributed(model, train_loader, val_loader, optimizer=optimizer, epochs=epochs, resume=resume,
                               lr=lr, start_epoch=start_epoch, fuse=fuse, backend=backend,
                               sync_batchnorm=sync_batchnorm, loss=loss, callbacks=callbacks, schedule=schedule,
                               loss_weights=loss_weights, verbose=verbose, preprocessing=preprocessing, meta=meta,
                               log_every=log_every, resume_command=resume_command)
    if validation_split:
        if val_loader is not None:
            raise ValueError("fit: pass val_loader or validation_split, not both")
        from .split import split_loader
        train_loader, val_loader = split_loader(train_loader, validation_split)
    if fuse:
        fuse_layers(model)
    trainer = Trainer(model, optimizer, train_loader, val_loader, loss, schedule, loss_weights, epochs,
                      callbacks, preprocessing, meta, verbose, log_every, resume_command)
    if amp:
        trainer.run_step = _mixed_precision_step(trainer)
    if cuda_graph:
        from ..cuda_graph import GraphedStep
        trainer.graphed_step = GraphedStep(trainer.run_step, optimizer)
    if resume is not None:
        trainer.restore(resume)
    else:
        trainer.epoch = trainer.start_epoch = int(start_epoch)
    if lr is not None:
        if schedule is not None:
            schedule.set_base_lr(lr)
        else:
            optimizer.set_lr(lr)
    keep_freed_memory()      # every step frees and allocates the same arrays again
    return trainer.run()


def _mixed_precision_step(trainer):
    """Trainer.run_step with the forward pass under amp.autocast and a GradScaler's loss scaling."""
    from ..amp import GradScaler, autocast
    from ..tensor import Tensor
    scaler = GradScaler()

    def run_step(images, labels):
        with autocast():
            outputs = trainer.model(Tensor(images))
            loss = trainer.compute_loss(outputs, labels)
        trainer.optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(trainer.optimizer)
        scaler.update()
        return loss.data, main_output(outputs).data
    return run_step
