"""What each process of tests/test_distributed.py's ``mpirun -np 2`` jobs runs.

    mpirun -np 2 python tests/distributed_worker.py MODE[,MODE...] OUT_DIR

Each rank writes ``OUT_DIR/<mode><r>.npz`` (its weights, gradients, what it saw); the test
compares them with one process doing the same work on the whole batch. The data and the
models are built here, so the test builds the very same ones.
"""
import os
import sys

import numpy as np

import tinycnn
import tinycnn.functions as F
import tinycnn.models as models
import tinycnn.nn as nn
from tinycnn import distributed as dist
from tinycnn.optim import SGD

SAMPLES, BATCH, EPOCHS, SEED = 99, 8, 2, 5      # 99 = 6 global batches of 16 and one of 3 (2 + 1 samples)


def fashion_like(count=SAMPLES, seed=0):
    """28x28 float images in [0, 1]: ten fixed class patterns plus noise."""
    rng = np.random.default_rng(seed)
    patterns = rng.uniform(0, 1, size=(10, 1, 28, 28))
    labels = rng.integers(0, 10, count)
    images = np.clip(patterns[labels] + rng.normal(0, 0.3, size=(count, 1, 28, 28)), 0, 1)
    return images.astype(np.float32), labels


def lenet_data(count=SAMPLES):
    """``(images, labels, source)`` for the LeNet job: a seeded subset of Fashion-MNIST's training
    images scaled to [0, 1] where the dataset is installed, else ``fashion_like`` (named in source)."""
    from tinycnn.train import load_split
    try:
        subset = load_split("fashion-mnist", "train", limit=count, seed=SEED)
    except FileNotFoundError:
        return (*fashion_like(count), "synthetic 28x28 images (Fashion-MNIST is not installed)")
    return subset.images.astype(np.float32) / 255, subset.labels.astype(np.int64), "a Fashion-MNIST subset"


def lenet(rank=0):
    tinycnn.manual_seed(100 + rank)     # each rank its own weights: the wrapper must broadcast rank 0's
    return models.get("lenet", input_size=28)


def mlp(rank=0, device="cpu"):
    tinycnn.manual_seed(200 + rank)
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 16), nn.Tanh(), nn.Linear(16, 10)).to(device)


def optimizer(model):
    return SGD(model.parameters(), lr=0.05, momentum=0.9)


def train(out, backend="mpi"):
    """LeNet on ``lenet_data`` (MPI) or a small MLP on ``fashion_like`` (NCCL on the stand-in GPU),
    trained for two epochs."""
    if backend == "nccl":   # the stand-in plays a machine with one GPU per rank
        import cupy
        cupy.cuda.runtime.getDeviceCount = lambda: 2
    dist.init(backend)
    rank, device = dist.rank(), "cuda" if backend == "nccl" else "cpu"
    net = lenet(rank) if backend == "mpi" else mlp(rank, device)
    model = dist.DistributedDataParallel(net, bucket_cap_mb=0.05)      # LeNet: 5 buckets
    starts = []     # buckets under way, and whether the step was done, as each gradient arrives
    for p in net.parameters():
        p.register_post_accumulate_grad_hook(lambda p: starts.append((model._step.started, model._step.done)))
    images, labels = lenet_data()[:2] if backend == "mpi" else fashion_like()
    loader = dist.DistributedDataLoader((images, labels), batch_size=BATCH, shuffle=True, seed=SEED, device=device)
    opt = optimizer(net)
    for _ in range(EPOCHS):
        for images, labels in loader:
            loss = F.softmax_cross_entropy(model(tinycnn.Tensor(images)), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
    seen = [np.concatenate(loader.batch_indices(epoch)) for epoch in range(EPOCHS)]
    weights = {name: tinycnn.backend.to_device(a, "cpu") for name, a in net.state_dict().items()}
    save(out, f"train_{backend}", rank, weights,
         seen=np.stack(seen), buckets=len(model.buckets), starts=np.array(starts),
         local_rank=dist.local_rank(), env_local_rank=int(os.environ["OMPI_COMM_WORLD_LOCAL_RANK"]))


def fail(out):
    """Rank 1 raises in its third step while rank 0 waits in the all-reduce."""
    dist.init()
    model = dist.DistributedDataParallel(lenet(dist.rank()))
    images, labels = fashion_like(16)
    for step in range(5):
        if step == 2 and dist.rank() == 1:
            raise ValueError("rank 1 fails on purpose")
        F.softmax_cross_entropy(model(tinycnn.Tensor(images)), labels).backward()
    save(out, "fail", dist.rank(), {})


def syncbn_model():
    tinycnn.manual_seed(7)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 3 * 3, 5)).to(np.float64)


def syncbn_batch():
    rng = np.random.default_rng(3)
    return rng.normal(1.0, 2.0, size=(5, 3, 5, 5)), rng.integers(0, 5, 5)


SYNCBN_ROWS = (slice(0, 3), slice(3, 5))     # uneven halves: the ranks are weighted by batch size


def syncbn(out):
    """Rank r trains one step on its rows of the batch with SyncBatchNorm (float64)."""
    dist.init()
    rank = dist.rank()
    model = dist.DistributedDataParallel(dist.convert_sync_batchnorm(nn.fuse(syncbn_model())))   # BN+ReLU
    images, labels = syncbn_batch()
    x = tinycnn.Tensor(images[SYNCBN_ROWS[rank]], requires_grad=True)
    y = model(x)
    F.softmax_cross_entropy(y, labels[SYNCBN_ROWS[rank]]).backward()
    grads = {f"grad.{name}": p.grad for name, p in model.module.named_parameters()}
    save(out, "syncbn", rank, {**model.state_dict(), **grads}, output=y.numpy(), x_grad=x.grad)


def dropout_mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 16), nn.Tanh(), nn.Dropout(0.3), nn.Linear(16, 10))


def validation_set():
    return fashion_like(21, seed=1)      # 11 + 10 samples: the ranks' means are weighted


def fit(out):
    """fit_distributed with dropout (each rank its own masks): two epochs straight, and one epoch,
    a checkpoint, then a resume for the second; counts the files each rank writes."""
    import tinycnn.train.distributed as train_distributed
    from tinycnn.train import ModelCheckpoint
    dist.init()
    rank, writes = dist.rank(), []
    write = train_distributed.save
    train_distributed.save = lambda state, path: (writes.append(path), write(state, path))

    def run(epochs, resume=None, directory=None):
        tinycnn.manual_seed(300 + rank)
        net = dropout_mlp()
        loader = dist.DistributedDataLoader(fashion_like(), batch_size=BATCH, shuffle=True, seed=SEED)
        val_loader = dist.DistributedDataLoader(validation_set(), batch_size=BATCH)
        callbacks = [ModelCheckpoint(directory, every=1, save_best=None)] if directory else []
        history = train_distributed.fit_distributed(net, loader, val_loader, optimizer(net), epochs=epochs,
                                                    resume=resume, callbacks=callbacks, verbose=False)
        return net.state_dict(), history

    straight, history = run(2)
    run(1, directory=out)
    resumed, resumed_history = run(2, resume=os.path.join(out, "epoch_1.npz"))
    save(out, "fit", rank, {f"straight.{k}": v for k, v in straight.items()},
         **{f"resumed.{k}": v for k, v in resumed.items()}, writes=len(writes),
         **{f"history.{k}": history[k] for k in ("loss", "accuracy", "val_loss", "val_accuracy")},
         **{f"resumed_history.{k}": resumed_history[k] for k in ("loss", "accuracy", "val_loss", "val_accuracy")})


def interrupt(out):
    """Trains until ctrl+c on one rank stops both; writes its pid to started<r> after a batch."""
    import tinycnn.train.distributed as train_distributed
    from tinycnn.train import Callback, ModelCheckpoint
    dist.init()
    rank = dist.rank()

    class Started(Callback):
        def on_batch_end(self, batch, logs):
            with open(os.path.join(out, f"started{rank}"), "w") as file:
                file.write(str(os.getpid()))

    net = dropout_mlp()
    loader = dist.DistributedDataLoader(fashion_like(), batch_size=BATCH, shuffle=True, seed=SEED)
    history = train_distributed.fit_distributed(net, loader, None, optimizer(net), epochs=100000, verbose=False,
                                                callbacks=[ModelCheckpoint(out, every=None, save_best=None), Started()])
    save(out, "interrupt", rank, {}, interrupted=history.interrupted)


def save(out, mode, rank, arrays, **extra):
    np.savez(os.path.join(out, f"{mode}{rank}.npz"), **arrays, **extra)


if __name__ == "__main__":
    modes, out = sys.argv[1], sys.argv[2]
    for mode in modes.split(","):
        {"train": train, "train_nccl": lambda out: train(out, "nccl"), "fail": fail, "syncbn": syncbn,
         "fit": fit, "interrupt": interrupt}[mode](out)
