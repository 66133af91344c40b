"""``mpirun -np 2 tinycnn train ... --distributed``, the README's command, run for real (loopback only).

Two ranks train LeNet on a Fashion-MNIST subset (or, where Fashion-MNIST is not installed, a tiny
image folder made here), and the test compares their run folder with a one-process
``tinycnn train`` on the same global batch. A sitecustomize.py put on the ranks' PYTHONPATH
records, through an audit hook, every file each rank opens for writing, so the test can tell
which rank wrote the run folder.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import tinycnn
from tinycnn import cli
from tinycnn.data import locate
from tinycnn.train import Recipe, RecipeError, read_checkpoint, run
from tinycnn.train.builders import build_model, load_model

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
from test_distributed import TIMEOUT, job_environment, needs_mpi  # noqa: E402

WRITES_HOOK = '''import os, sys
_under, _rank = os.environ.get("WRITES_UNDER"), os.environ.get("OMPI_COMM_WORLD_RANK")
if _under and _rank is not None:
    _log = open(os.path.join(os.environ["WRITES_LOG"], "writes" + _rank + ".txt"), "a", buffering=1)

    def _hook(event, args):
        if event == "open":
            path, mode, flags = args
            writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(
                (flags or 0) & (os.O_WRONLY | os.O_RDWR))
        elif event == "os.rename":
            path, writing = args[1], True
        else:
            return
        if writing and isinstance(path, str) and os.path.abspath(path).startswith(_under):
            _log.write(os.path.relpath(path, _under) + "\\n")

    sys.addaudithook(_hook)
'''
RUN_FILES = {"checkpoints/epoch_1.npz", "checkpoints/best.npz", "checkpoints/last.npz", "log.csv",
             "history.json", "monitor.png", "report.txt", "results.json", "confusion_matrix.png"}


def tinycnn_command():
    """The console script installed beside this Python, else ``python -m tinycnn``."""
    script = Path(sys.executable).parent / "tinycnn"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "tinycnn"]


def fashion_mnist_installed():
    return any(location.found is not None for location in locate("fashion-mnist"))


def dataset_arguments(folder):
    """Fashion-MNIST (400 images a split) where installed, else a 2-class image folder made in ``folder``."""
    if fashion_mnist_installed():
        return ["--dataset", "fashion-mnist", "--limit", "400"], "a Fashion-MNIST subset"
    rng = np.random.default_rng(0)
    for split, count in (("train", 120), ("test", 20)):
        for label, name in enumerate(("dark", "light")):
            (folder / split / name).mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 128, size=(28, 28, 3)) + 127 * label
                Image.fromarray(pixels.astype(np.uint8)).save(folder / split / name / f"{i}.png")
    return ["--dataset", "folder", "--data-root", str(folder)], "a synthetic image folder (no Fashion-MNIST here)"


def mpirun(arguments, tmp_path, out):
    """``mpirun -np 2 tinycnn train ARGUMENTS --distributed`` with the write recorder; its CompletedProcess."""
    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(WRITES_HOOK)
    for old in hook.glob("writes*.txt"):
        old.unlink()
    command = ["mpirun", "--oversubscribe", "--allow-run-as-root", "--tag-output", "-np", "2",
               *tinycnn_command(), "train", *arguments, "--distributed"]
    environment = {**job_environment([hook]), "WRITES_UNDER": str(out.resolve()), "WRITES_LOG": str(hook)}
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=TIMEOUT * 2,
                          cwd=tmp_path)


def output_of(stdout, rank):
    """What ``rank`` printed, from mpirun --tag-output's stdout (a rank that ends without a newline
    leaves the next rank's tag mid-line)."""
    parts = re.split(r"\[1,(\d+)\]<stdout>:", stdout)
    return "".join(text for r, text in zip(parts[1::2], parts[2::2]) if int(r) == rank)


def writes(tmp_path, rank):
    log = tmp_path / "hook" / f"writes{rank}.txt"
    return set(log.read_text().split()) if log.exists() else set()


def weights(path):
    """A checkpoint's weights, by name (as model.state_dict() gives them)."""
    return load_model(path).state_dict()


def assert_trained_alike(got, want, initial, what):
    """Within 1e-4 of how far training moved each tensor (plus float32 eps of its size): each rank
    averages the gradient of its half batch and the ranks average the halves, where one process
    averages the whole batch at once; the sums differ in order only, so each update differs by
    float32 round-off, which the following steps carry on (~1e-6 of the update here). A wrong
    average, shard or batch size moves the weights by a sizeable part of the update."""
    for name, value in want.items():
        moved = float(np.abs(value - initial[name]).max())
        assert moved > 0, name
        tolerance = 1e-4 * moved + np.finfo(np.float32).eps * float(np.abs(value).max())
        np.testing.assert_allclose(got[name], value, rtol=0, atol=tolerance, err_msg=f"{name} ({what})")


@needs_mpi
def test_mpirun_tinycnn_train_distributed_equals_one_process_and_resumes(tmp_path, capsys):
    data, source = dataset_arguments(tmp_path / "images")
    common = ["--model", "lenet", *data, "--batch-size", "32", "--checkpoint-every", "1", "--no-progress"]
    two, one = tmp_path / "two", tmp_path / "one"
    job = mpirun([*common, "--epochs", "1", "--out", str(two)], tmp_path, two)
    assert job.returncode == 0, f"on {source}: {job.stderr[-3000:]}"
    # rank 0 wrote the whole run folder, rank 1 nothing (yet it took part in every checkpoint)
    assert writes(tmp_path, 1) == set(), f"on {source}"
    assert RUN_FILES <= {path for path in writes(tmp_path, 0) if not Path(path).name.startswith("tmp")}, source
    printed = [output_of(job.stdout, rank) for rank in (0, 1)]
    assert printed[0].count("Training lenet") == 1 and "on 2 processes" in printed[0], job.stdout[-3000:]
    assert all(word in printed[0] for word in ("Epoch 1/1", "Test set", "Wrote")), printed[0]
    assert not any(word in printed[1] for word in ("Training", "Epoch", "Test set", "Wrote")), printed[1]

    # one process, the same global batch of 32 (in this process: no MPI here)
    assert cli.main(["train", *common, "--epochs", "1", "--out", str(one)]) == 0
    initial = read_checkpoint(two / "checkpoints" / "last.npz")
    assert int(initial["epoch"]) == 1 and len(initial["rng_ranks"]) == 2
    first = weights(one / "checkpoints" / "last.npz")
    tinycnn.manual_seed(0)      # run's initial weights (--seed 0), to measure how far training moved them
    start = build_model("lenet", len(initial["meta"]["classes"]), tuple(initial["meta"]["input_shape"]), {})
    assert_trained_alike(weights(two / "checkpoints" / "last.npz"), first, start.state_dict(), f"epoch 1 on {source}")
    # the reduced metrics are the whole batch's: the same as one process's within round-off
    two_history = json.loads((two / "history.json").read_text())
    one_history = json.loads((one / "history.json").read_text())
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(two_history[key], one_history[key], rtol=1e-4, err_msg=key)   # float32 sums

    # the distributed resume continues to epoch 2, as a one-process resume does
    job = mpirun(["--resume", str(two / "checkpoints" / "last.npz"), "--epochs", "2"], tmp_path, two)
    assert job.returncode == 0, f"resume on {source}: {job.stderr[-3000:]}"
    assert writes(tmp_path, 1) == set()
    assert cli.main(["train", "--resume", str(one / "checkpoints" / "last.npz"), "--epochs", "2"]) == 0
    resumed = read_checkpoint(two / "checkpoints" / "last.npz")
    assert int(resumed["epoch"]) == 2 and len(json.loads((two / "history.json").read_text())["loss"]) == 2
    assert_trained_alike(weights(two / "checkpoints" / "last.npz"), weights(one / "checkpoints" / "last.npz"), first,
                         f"epoch 2 after the resume on {source}")
    capsys.readouterr()


@pytest.mark.parametrize("arguments, message", [
    (["--sync-bn"], "--sync-bn needs --distributed"),
    (["--backend", "mpi"], "--backend needs --distributed"),
    (["--distributed", "--backend", "nccl"], "--backend nccl runs on GPUs: add --device cuda"),
])
def test_distributed_flags_that_do_not_fit_are_refused(tmp_path, capsys, arguments, message):
    status = cli.main(["train", "--model", "lenet", "--out", str(tmp_path / "run"), *arguments])
    assert status == cli.USAGE_ERROR
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_batch_the_processes_cannot_share_is_refused_before_the_data(monkeypatch, tmp_path):
    from tinycnn import distributed as dist
    monkeypatch.setattr(dist, "init", lambda backend="mpi": None)      # as in a job of 3 processes
    monkeypatch.setattr(dist, "world_size", lambda: 3)
    recipe = Recipe(model="lenet", dataset="mnist", data_root=str(tmp_path / "nothing"), batch_size=64,
                    out=str(tmp_path / "run"))
    with pytest.raises(RecipeError, match="batch_size 64 is the whole batch, split across the 3 processes: "
                                          "pick a multiple of 3"):
        run(recipe, distributed=True)
    with pytest.raises(RecipeError, match="the nccl backend runs on GPUs"):
        run(recipe, distributed=True, backend="nccl")


def test_fit_distributed_refuses_what_it_does_not_take():
    import tinycnn.nn as nn
    from tinycnn.optim import SGD
    from tinycnn.train import fit
    model = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="distributed=True takes neither cuda_graph nor validation_split"):
        fit(model, [], optimizer=SGD(model.parameters(), lr=0.1), distributed=True, validation_split=0.1)


def test_the_resume_hint_of_a_distributed_run_names_mpirun_and_its_flags(monkeypatch):
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")       # inside an Open MPI job of 4 processes
    hint = cli.resume_hint({"distributed": True, "backend": "nccl", "sync_batchnorm": True})
    assert hint.format(path="runs/x/checkpoints/interrupted.npz") == \
        "mpirun -np 4 tinycnn train --resume runs/x/checkpoints/interrupted.npz --distributed --backend nccl --sync-bn"
    monkeypatch.delenv("OMPI_COMM_WORLD_SIZE")
    assert cli.resume_hint({"distributed": True, "backend": "mpi", "sync_batchnorm": False}) == \
        "mpirun -np N tinycnn train --resume {path} --distributed"
    assert cli.resume_hint({"distributed": False, "backend": "mpi", "sync_batchnorm": False}) == \
        "tinycnn train --resume {path}"
