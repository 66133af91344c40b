"""tinycnn.distributed with real processes: ``mpirun -np 2`` on this machine (loopback only).

Each job runs tests/distributed_worker.py in two processes, which write what they hold; the
tests compare that with one process doing the same work on the whole batch. Every job is
bounded by a timeout, so a hang fails the test instead of stalling the suite. The NCCL path
runs on the CPU stand-in CuPy (tests/fake_gpu) whose cupy.cuda.nccl sums across the ranks
over MPI; on a machine with GPUs the same worker runs with the real CuPy.
"""
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import tinycnn
import tinycnn.functions as F
import tinycnn.train
from tinycnn.data import DataLoader
from tinycnn.train import evaluate
from tinycnn.distributed.sampler import count_steps, shard_batches

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
import distributed_worker as worker  # noqa: E402

needs_mpi = pytest.mark.skipif(shutil.which("mpirun") is None or importlib.util.find_spec("mpi4py") is None,
                               reason="needs Open MPI's mpirun and mpi4py (pip install -e '.[distributed]')")
TIMEOUT = 60     # seconds for one job; a hung peer shows up as subprocess.TimeoutExpired


def run_job(mode, out, processes=2, pythonpath=()):
    """Run the worker in ``processes`` ranks (as root, oversubscribed, shared memory only)."""
    return subprocess.run(job_command(mode, out, processes), env=job_environment(pythonpath), capture_output=True,
                          text=True, timeout=TIMEOUT, cwd=TESTS.parent)


def job_command(mode, out, processes=2):
    return ["mpirun", "--oversubscribe", "--allow-run-as-root", "-np", str(processes),
            sys.executable, str(TESTS / "distributed_worker.py"), mode, str(out)]


def job_environment(pythonpath=()):
    return {**os.environ, "OMPI_MCA_btl": "self,vader", "OMPI_MCA_rmaps_base_oversubscribe": "1",
           "OMPI_MCA_btl_vader_single_copy_mechanism": "none",
           "TINYCNN_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "NUMBA_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([*map(str, pythonpath), os.environ.get("PYTHONPATH", "")])}


def ranks(out, mode, count=2):
    return [dict(np.load(out / f"{mode}{r}.npz")) for r in range(count)]


@pytest.fixture(scope="module")
def cpu_job(tmp_path_factory):
    """One two-rank job for the CPU tests (a job costs seconds to start): its output folder."""
    out = tmp_path_factory.mktemp("distributed")
    job = run_job("train,syncbn,fit", out)
    assert job.returncode == 0, job.stderr
    return out


def train_alone(net, data, device="cpu"):
    """What the two ranks do, in one process with the doubled batch."""
    optimizer = worker.optimizer(net)
    loader = DataLoader(data, batch_size=2 * worker.BATCH, shuffle=True, seed=worker.SEED, device=device)
    for _ in range(worker.EPOCHS):
        for images, labels in loader:
            loss = F.softmax_cross_entropy(net(tinycnn.Tensor(images)), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return {name: tinycnn.backend.to_device(a, "cpu") for name, a in net.state_dict().items()}


def assert_trained_alike(got, want, initial, what=""):
    """Within 1e-4 of how far training moved each tensor (plus float32 eps of its size): the
    ranks sum each half batch's gradient then the halves, one process the whole batch at once,
    so every step's update differs by float32 round-off (~1e-6 of it here, after 14 steps of
    momentum SGD); a wrong average, a missed bucket or a misweighted last batch moves them by
    a sizeable part of the update."""
    for name, value in want.items():
        moved = float(np.abs(value - initial[name]).max())
        assert moved > 0, name
        tolerance = 1e-4 * moved + np.finfo(np.float32).eps * float(np.abs(value).max())
        np.testing.assert_allclose(got[name], value, rtol=0, atol=tolerance, err_msg=f"{name} {what}")


@needs_mpi
def test_two_ranks_train_lenet_as_one_process_with_the_doubled_batch(cpu_job):
    first, second = ranks(cpu_job, "train_mpi")
    images, labels, source = worker.lenet_data()
    print(f"LeNet trained on {source}")
    initial = worker.lenet(0).state_dict()
    want = train_alone(worker.lenet(0), (images, labels))
    for name in want:
        # the same reduced sums (a + b == b + a) and the same updates: bit for bit the same weights
        np.testing.assert_array_equal(first[name], second[name], err_msg=f"{name} (on {source})")
    assert_trained_alike(first, want, initial, f"(on {source})")
    # every sample exactly once per epoch across the two ranks
    for epoch in range(worker.EPOCHS):
        assert sorted(np.concatenate([first["seen"][epoch], second["seen"][epoch]])) == list(range(worker.SAMPLES))
    # buckets were started while backward was still running: some started before the step was done
    assert first["buckets"] > 1
    assert any(started > 0 and not done for started, done in first["starts"])
    assert [int(r["local_rank"]) for r in (first, second)] == [int(r["env_local_rank"]) for r in (first, second)] \
        == [0, 1]


@needs_mpi
def test_fit_distributed_agrees_across_ranks_and_resumes_exactly(cpu_job):
    first, second = ranks(cpu_job, "fit")
    # each rank trained its own shard with its own dropout masks: equal weights and metrics show
    # that gradients and metrics were reduced
    for key in first:
        if key != "writes":
            np.testing.assert_array_equal(first[key], second[key], err_msg=key)
    # one epoch, a checkpoint (rank 0's file holding both ranks' generators) and a resume give
    # what two epochs straight give, bit for bit: weights, losses, accuracies
    for name in [key[len("straight."):] for key in first if key.startswith("straight.")]:
        np.testing.assert_array_equal(first["resumed." + name], first["straight." + name], err_msg=name)
    for metric in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_array_equal(first["resumed_history." + metric], first["history." + metric], err_msg=metric)
    assert (int(first["writes"]), int(second["writes"])) == (1, 0)      # epoch_1.npz, by rank 0 only
    # the validation metrics are those of the whole validation set, evaluated by one process
    net = worker.dropout_mlp()
    net.load_state_dict({key[len("straight."):]: v for key, v in first.items() if key.startswith("straight.")})
    results = evaluate(net, DataLoader(worker.validation_set(), batch_size=8))
    # float32 losses of other batches summed in float64: 1e-5 covers their round-off
    np.testing.assert_allclose(first["history.val_loss"][-1], results["loss"], rtol=1e-5)
    assert first["history.val_accuracy"][-1] == pytest.approx(results["accuracy"], abs=1e-12)


@needs_mpi
def test_nccl_path_on_the_stand_in_gpu_trains_as_one_process(tmp_path):
    fake_gpu = TESTS / "fake_gpu"
    job = run_job("train_nccl", tmp_path, pythonpath=[fake_gpu])
    assert job.returncode == 0, job.stderr
    first, second = ranks(tmp_path, "train_nccl")
    initial = worker.mlp(0).state_dict()
    want = train_alone(worker.mlp(0), worker.fashion_like())      # on the CPU: the stand-in's arithmetic is NumPy's
    for name in want:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
    assert_trained_alike(first, want, initial)


@needs_mpi
def test_a_failing_rank_stops_the_job_with_its_error(tmp_path):
    job = run_job("fail", tmp_path)      # without MPI_Abort rank 0 would wait forever: TimeoutExpired
    assert job.returncode != 0
    assert "rank 1 of 2: ValueError: rank 1 fails on purpose; stopping every rank" in job.stderr
    assert not (tmp_path / "fail0.npz").exists()


@needs_mpi
def test_ctrl_c_on_one_rank_stops_every_rank_after_the_same_batch_with_a_checkpoint(tmp_path):
    # SIGINT to rank 1 alone: rank 0 must learn of it (a vote after every batch) and stop with it.
    # (mpirun, given ctrl+c, sends every rank SIGCONT, SIGTERM odls_base_sigkill_timeout seconds
    # later, SIGKILL as long after that; the ranks take SIGTERM for ctrl+c.)
    job = subprocess.Popen(job_command("interrupt", tmp_path), env=job_environment(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, cwd=TESTS.parent)
    try:
        started = tmp_path / "started1"
        for _ in range(TIMEOUT * 10):       # until rank 1 has trained a batch
            if (started.exists() and started.read_text()) or job.poll() is not None:
                break
            time.sleep(0.1)
        os.kill(int(started.read_text()), signal.SIGINT)
        _, stderr = job.communicate(timeout=TIMEOUT)
    finally:
        job.kill()
    assert job.returncode == 0, stderr
    assert [bool(r["interrupted"]) for r in ranks(tmp_path, "interrupt")] == [True, True]
    state = tinycnn.train.read_checkpoint(tmp_path / "interrupted.npz")
    assert len(state["rng_ranks"]) == 2 and state["epoch"] * 7 + state["batch"] > 0


@needs_mpi
def test_sync_batchnorm_on_two_ranks_equals_batchnorm_on_the_whole_batch(cpu_job):
    images, labels = worker.syncbn_batch()
    model = worker.syncbn_model()
    x = tinycnn.Tensor(images, requires_grad=True)
    y = model(x)
    F.softmax_cross_entropy(y, labels).backward()
    # float64 throughout, the sums differ in order only: 1e-10 of the largest value compared. Of
    # the gradients, 1e-10 of the largest one: the conv bias before the BatchNorm has gradient 0
    # in exact arithmetic, round-off of the terms it cancels from in practice.
    largest_grad = max(float(np.abs(p.grad).max()) for p in model.parameters())
    close = lambda got, want, what, scale=None: np.testing.assert_allclose(
        got, want, rtol=0, atol=1e-10 * (scale or float(np.abs(want).max())), err_msg=what)
    results = ranks(cpu_job, "syncbn")
    for rank, (rows, result) in enumerate(zip(worker.SYNCBN_ROWS, results)):
        close(result["output"], y.numpy()[rows], f"output of rank {rank}")
        # each rank's loss is the mean over its own n_r samples: its input gradient is N / n_r
        # times the whole batch's (the ranks are then weighted n_r / N)
        scale = len(images) / len(images[rows])
        close(result["x_grad"], scale * x.grad[rows], f"input gradient of rank {rank}")
        for name, p in model.named_parameters():
            close(result[f"grad.{name}"], p.grad, f"gradient of {name} on rank {rank}", largest_grad)
        for name, value in model.state_dict().items():     # running statistics included
            close(result[name], value, f"{name} on rank {rank}")


def test_sync_batchnorm_gradcheck(monkeypatch):
    """The local formulas in float64, in a world of one: all_reduce leaves the sums as they are."""
    from tinycnn.distributed import comm
    from tinycnn.distributed.sync_batchnorm import SyncBatchNormFunction
    monkeypatch.setattr(comm, "all_reduce", lambda array, op="sum", async_op=False: array)
    rng = np.random.default_rng(0)
    x = tinycnn.Tensor(rng.normal(1.0, 2.0, size=(3, 2, 2, 3)), requires_grad=True)
    gamma = tinycnn.Tensor(rng.normal(size=2), requires_grad=True)
    beta = tinycnn.Tensor(rng.normal(size=2), requires_grad=True)
    assert tinycnn.gradcheck(lambda x, g, b: SyncBatchNormFunction(1e-5, 0.1, None, None)(x, g, b), [x, gamma, beta])
    # and it is BatchNorm: the same output and gradients as F.batch_norm on one process
    weights = rng.normal(size=x.shape)
    for t in (x, gamma, beta):
        t.grad = None
    got = SyncBatchNormFunction(1e-5, 0.1, None, None)(x, gamma, beta)
    got.backward(weights)
    got_grads = [t.grad.copy() for t in (x, gamma, beta)]
    for t in (x, gamma, beta):
        t.grad = None
    want = F.batch_norm(x, gamma, beta, None, None, training=True)
    want.backward(weights)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-10, atol=1e-12)
    for got_grad, t in zip(got_grads, (x, gamma, beta)):
        np.testing.assert_allclose(got_grad, t.grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("samples, batch, world, drop_last", [
    (99, 8, 2, False), (99, 8, 2, True), (17, 4, 2, False), (33, 4, 4, False), (5, 3, 2, False),
    (64, 8, 4, False), (7, 1, 3, False), (3, 16, 3, False)])
def test_shards_cover_every_sample_once_with_equal_steps(samples, batch, world, drop_last):
    order = np.random.default_rng(samples).permutation(samples)
    shards = [shard_batches(order, batch, rank, world, drop_last) for rank in range(world)]
    steps = count_steps(samples, batch, world, drop_last)
    assert [len(s) for s in shards] == [steps] * world
    seen = np.concatenate([b for shard in shards for b in shard])
    if drop_last:
        assert len(seen) == steps * batch * world and len(set(seen.tolist())) == len(seen)
        assert all(len(b) == batch for shard in shards for b in shard)
    else:
        assert sorted(seen.tolist()) == list(range(samples))
    for step in range(steps):
        sizes = [len(shard[step]) for shard in shards]
        assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1
        # the ranks' parts, in rank order, are the one-process batch of that step
        whole = np.concatenate([shard[step] for shard in shards])
        start = step * batch * world
        np.testing.assert_array_equal(whole, order[start:start + len(whole)])


def test_too_few_samples_for_the_ranks_is_refused():
    with pytest.raises(ValueError, match="2 samples cannot feed 3 ranks"):
        count_steps(2, 4, 3)


def test_distributed_loader_shards_by_rank_without_mpi():
    data = (np.arange(10, dtype=np.float32)[:, None], np.arange(10))
    from tinycnn.distributed import DistributedDataLoader
    served = [[labels.tolist() for _, labels in DistributedDataLoader(data, batch_size=2, rank=r, world_size=2)]
              for r in range(2)]
    assert served == [[[0, 1], [4, 5], [8]], [[2, 3], [6, 7], [9]]]
    with pytest.raises(ValueError, match="shuffle=True needs a seed"):
        DistributedDataLoader(data, shuffle=True, rank=0, world_size=2)


def test_post_accumulate_grad_hook_runs_after_each_accumulation():
    w = tinycnn.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    seen = []
    handle = w.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.copy()))
    (w * 3 + w * w).sum().backward()        # three uses of w (w * w takes it twice): three accumulations
    assert len(seen) == 3
    np.testing.assert_array_equal(seen[-1], 3 + 2 * np.array([1.0, 2.0]))     # complete after the last
    handle.remove()
    (w * 3).sum().backward()
    assert len(seen) == 3
    with pytest.raises(RuntimeError, match="only leaf tensors"):
        (w * 2).register_post_accumulate_grad_hook(print)


def test_ddp_in_a_world_of_one_refuses_gradients_from_outside_its_forward(monkeypatch):
    """Without mpirun: collectives of one rank (MPI is faked here, the ranks' tests run above)."""
    from tinycnn.distributed import comm, ddp
    import tinycnn.nn as nn
    monkeypatch.setattr(comm, "world_size", lambda: 1)
    monkeypatch.setattr(comm, "broadcast", lambda array, root=0: array)
    monkeypatch.setattr(comm, "all_reduce", lambda array, op="sum", async_op=False: comm._Pending(array, op))
    monkeypatch.setattr(comm, "test_all", lambda handles: True)
    net = nn.Sequential(nn.Linear(3, 2))
    x, y = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32), np.array([0, 1, 1, 0])
    F.softmax_cross_entropy(net(tinycnn.Tensor(x)), y).backward()      # before wrapping: no hooks yet
    want = net[0].weight.grad.copy()
    net.zero_grad()
    model = ddp.DistributedDataParallel(net)
    F.softmax_cross_entropy(model(tinycnn.Tensor(x)), y).backward()
    np.testing.assert_allclose(net[0].weight.grad, want, rtol=1e-6)    # float32: x 4 then / 4 may round
    net.zero_grad()
    loss = F.softmax_cross_entropy(model(tinycnn.Tensor(x)), y) + (net[0].weight * net[0].weight).sum()
    with pytest.raises(RuntimeError, match="outside the wrapped module's forward"):
        loss.backward()
    net.zero_grad()
    again = ddp.DistributedDataParallel(net)      # wrapped anew (a second fit): the first wrapper lets go
    F.softmax_cross_entropy(again(tinycnn.Tensor(x)), y).backward()
    np.testing.assert_allclose(net[0].weight.grad, want, rtol=1e-6)


@pytest.mark.parametrize("order", ["bn_relu", "relu_bn", "bn"])
def test_convert_sync_batchnorm_keeps_fused_relus_in_a_world_of_one(monkeypatch, order):
    """nn.fuse's BatchNorm+ReLU layers become SyncBatchNorms that keep their ReLU (all_reduce of one rank)."""
    from tinycnn.distributed import comm, convert_sync_batchnorm, SyncBatchNorm
    import tinycnn.nn as nn
    monkeypatch.setattr(comm, "all_reduce", lambda array, op="sum", async_op=False: array)
    layers = {"bn_relu": [nn.BatchNorm2d(3), nn.ReLU()], "relu_bn": [nn.ReLU(), nn.BatchNorm2d(3)],
              "bn": [nn.BatchNorm2d(3)]}[order]
    plain = nn.Sequential(nn.Conv2d(2, 3, 3), *layers).to(np.float64)
    synced = convert_sync_batchnorm(nn.fuse(nn.Sequential(nn.Conv2d(2, 3, 3), *layers).to(np.float64)))
    synced.load_state_dict(plain.state_dict())
    assert sum(isinstance(m, SyncBatchNorm) for m in synced.modules()) == 1
    x = np.random.default_rng(1).normal(size=(4, 2, 5, 5))
    for train in (True, False):         # training: batch statistics; eval: the running ones it kept
        plain.train(train), synced.train(train)
        np.testing.assert_allclose(synced(tinycnn.Tensor(x)).numpy(), plain(tinycnn.Tensor(x)).numpy(),
                                   rtol=1e-12, atol=1e-12)     # float64, sums in another order


def test_bad_arguments_are_refused_before_any_communication():
    from tinycnn import distributed as dist
    import tinycnn.nn as nn
    with pytest.raises(ValueError, match="backend must be 'mpi' or 'nccl', got 'gloo'"):
        dist.init("gloo")
    with pytest.raises(ValueError, match="op must be one of .*got 'min'"):
        dist.all_reduce(np.zeros(3), op="min")
    with pytest.raises(TypeError, match="all_reduce: expected a NumPy/CuPy array or a Tensor, got list"):
        dist.all_reduce([1.0, 2.0])
    with pytest.raises(ValueError, match="broadcast: the array must be C-contiguous"):
        dist.broadcast(np.zeros((3, 4))[:, ::2])
    with pytest.raises(RuntimeError, match=r"call tinycnn.distributed.init\(\) first"):
        dist.all_reduce(np.zeros(3))
    with pytest.raises(RuntimeError, match=r"call tinycnn.distributed.init\(\) first"):
        dist.DistributedDataParallel(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="expected a tinycnn.nn.Module, got ndarray"):
        dist.DistributedDataParallel(np.zeros(2))
    with pytest.raises(ValueError, match="bucket_cap_mb must be > 0, got 0"):
        dist.DistributedDataParallel(nn.Linear(2, 2), bucket_cap_mb=0)
    with pytest.raises(ValueError, match=r"SyncBatchNorm: expected .* with 3 channels .* got shape \(4, 2, 5, 5\)"):
        dist.SyncBatchNorm(3)(tinycnn.Tensor(np.zeros((4, 2, 5, 5), np.float32)))
    with pytest.raises(ValueError, match="SyncBatchNorm: this rank's batch is empty"):
        dist.SyncBatchNorm(3)(tinycnn.Tensor(np.zeros((0, 3), np.float32)))
    with pytest.raises(ValueError, match="relu must be None, 'after' or 'before', got 'both'"):
        dist.SyncBatchNorm(3, relu="both")
