"""The tinycnn command line and the examples' --help."""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import tinycnn
from tinycnn.cli import dataset_name, main, parse_options
from tinycnn.train import read_checkpoint

REPO = Path(__file__).resolve().parent.parent
IDX_IMAGES, IDX_LABELS = 2051, 2049


def write_idx(path, array, magic):
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def fake_mnist(folder, train_count=40, test_count=20):
    """MNIST's four IDX files with 28x28 images whose bright row block depends on the digit."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, count in (("train", train_count), ("t10k", test_count)):
        labels = np.arange(count) % 10
        images = rng.integers(0, 60, size=(count, 28, 28))
        for image, label in zip(images, labels):
            image[2 * label + 4:2 * label + 7] += 180
        write_idx(folder / f"{prefix}-images-idx3-ubyte", images, IDX_IMAGES)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels, IDX_LABELS)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    fake_mnist(tmp_path / "data" / "mnist")
    monkeypatch.setenv("TINYCNN_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


def run(args, capsys):
    """``main(args)`` -> (exit status, stdout, stderr)."""
    try:
        code = main(args)
    except SystemExit as exit:  # argparse's own errors and --help
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


def train_command(out, model="minivgg", *extra):
    return ["train", "--model", model, "--dataset", "mnist", "--epochs", "1", "--batch-size", "20",
            "--checkpoint-every", "1", "--no-progress", "--out", str(out), *extra]


def test_train_writes_the_run_folder_then_evaluate_and_predict_use_the_checkpoint(tmp_path, data_dir, capsys):
    out = tmp_path / "run"
    code, stdout, _ = run(train_command(out, "minivgg", "--augment"), capsys)
    assert code == 0
    assert "rank-1:" in stdout and "weighted avg" in stdout
    for name in ("checkpoints/epoch_1.npz", "checkpoints/best.npz", "checkpoints/last.npz", "monitor.png",
                 "history.json", "log.csv", "report.txt", "confusion_matrix.png"):
        assert (out / name).is_file(), name
    checkpoint = read_checkpoint(out / "checkpoints" / "best.npz")
    meta = checkpoint["meta"]
    assert (meta["model"], meta["dataset"], meta["input_shape"]) == ("minivgg", "mnist", [1, 28, 28])
    assert meta["classes"] == [str(d) for d in range(10)]
    assert checkpoint["preprocessing"]["mean"].shape == (1,)
    train_report = (out / "report.txt").read_text()

    # evaluate rebuilds the model from the checkpoint alone: same weights, same test set, same report
    code, stdout, _ = run(["evaluate", "--checkpoint", str(out / "checkpoints" / "best.npz"),
                           "--out", str(tmp_path / "eval")], capsys)
    assert code == 0
    assert (tmp_path / "eval" / "report.txt").read_text() == train_report
    assert Image.open(tmp_path / "eval" / "confusion_matrix.png").size[0] > 100

    image_path = tmp_path / "digit.png"
    Image.fromarray(np.full((28, 28), 200, dtype=np.uint8)).save(image_path)
    code, stdout, _ = run(["predict", str(image_path), "--checkpoint", str(out / "checkpoints" / "last.npz"),
                           "--top", "3"], capsys)
    assert code == 0
    assert stdout.startswith(f"{image_path}: ") and stdout.count("%") == 3


def test_train_resumes_from_its_checkpoint_with_a_new_lr(tmp_path, data_dir, capsys):
    out = tmp_path / "run"
    assert run(train_command(out, "lenet", "--lr", "0.02"), capsys)[0] == 0
    code, _, _ = run(["train", "--resume", str(out / "checkpoints" / "epoch_1.npz"), "--epochs", "2",
                      "--lr", "0.005", "--no-progress"], capsys)
    assert code == 0
    history = json.loads((out / "history.json").read_text())
    assert history["epoch"] == [1, 2]
    assert history["lr"] == [0.02, 0.005]
    assert read_checkpoint(out / "checkpoints" / "last.npz")["epoch"] == 2

    code, _, err = run(["train", "--resume", str(out / "checkpoints" / "epoch_1.npz"), "--model", "minivgg"], capsys)
    assert_one_line_error(code, err, "--model minivgg differs from the resumed run's 'lenet'")


def test_train_on_an_image_folder(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for label, colour in enumerate(("red", "blue")):
            folder = tmp_path / "shapes" / split / colour
            folder.mkdir(parents=True)
            for i in range(6):
                pixels = rng.integers(0, 60, size=(16, 16, 3)).astype(np.uint8)
                pixels[..., 0 if colour == "red" else 2] += 180
                Image.fromarray(pixels).save(folder / f"{i}.png")
    out = tmp_path / "run"
    code, stdout, _ = run(["train", "--model", "minivgg", "--dataset", "folder", "--data-root", str(tmp_path / "shapes"),
                           "--epochs", "1", "--batch-size", "4", "--no-progress", "--augment", "--out", str(out)],
                          capsys)
    assert code == 0
    assert "blue" in stdout and "red" in stdout
    meta = read_checkpoint(out / "checkpoints" / "last.npz")["meta"]
    assert meta["classes"] == ["blue", "red"] and meta["input_shape"] == [3, 16, 16]


def test_ctrl_c_during_train_saves_and_prints_the_resume_command(tmp_path, data_dir, capsys, monkeypatch):
    from tinycnn.train import CSVLogger

    sent = []

    def send_ctrl_c(self, batch, logs):  # once, after the first batch
        if not sent:
            sent.append(batch)
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(CSVLogger, "on_batch_end", send_ctrl_c)
    out = tmp_path / "run"
    code, stdout, _ = run(train_command(out, "lenet"), capsys)
    interrupted = out / "checkpoints" / "interrupted.npz"
    assert code == 130
    assert interrupted.is_file() and not (out / "report.txt").exists()
    assert f"Resume with: tinycnn train --resume {interrupted}" in stdout

    code, _, _ = run(["train", "--resume", str(interrupted), "--no-progress"], capsys)
    assert code == 0
    assert (out / "report.txt").is_file()
    assert read_checkpoint(out / "checkpoints" / "last.npz")["epoch"] == 1


def test_bad_arguments_give_one_line_and_status_2(tmp_path, data_dir, capsys):
    code, _, err = run(["train", "--model", "nosuchnet", "--dataset", "mnist"], capsys)
    assert_one_line_error(code, err, "unknown model 'nosuchnet'")
    code, _, err = run(["train", "--model", "minivgg", "--dataset", "imagenet22k"], capsys)
    assert_one_line_error(code, err, "unknown dataset 'imagenet22k'", "fashion-mnist")
    code, _, err = run(["train", "--model", "resnet20", "--dataset", "mnist", "--out", str(tmp_path / "r")], capsys)
    assert_one_line_error(code, err, "model 'resnet20' takes 3x32x32 images, the dataset has 1x28x28")
    missing = str(tmp_path / "missing.npz")
    code, _, err = run(["evaluate", "--checkpoint", missing], capsys)
    assert_one_line_error(code, err, missing, "does not exist")
    code, _, err = run(["predict", "x.png", "--checkpoint", missing], capsys)
    assert_one_line_error(code, err, "does not exist")
    code, _, err = run(["train", "--resume", missing], capsys)
    assert_one_line_error(code, err, "does not exist")
    code, _, err = run(["train", "--schedule", "piecewise", "--dataset", "mnist"], capsys)
    assert_one_line_error(code, err, "--schedule piecewise needs --boundaries and --values")


def test_missing_dataset_says_where_it_looked(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TINYCNN_DATA", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    code, _, err = run(["train", "--dataset", "cifar10", "--no-progress"], capsys)
    assert code == 2 and "Traceback" not in err
    assert "CIFAR-10: no data found" in err and str(tmp_path / "cifar10") in err


def test_dataset_names_and_options():
    assert dataset_name("fashion_mnist") == dataset_name("Fashion-MNIST") == "fashion-mnist"
    assert dataset_name("tinyimagenet") == "tiny-imagenet"
    assert parse_options(["dropout=0.3", "widths=(32, 64)", "act=elu"]) == \
        {"dropout": 0.3, "widths": (32, 64), "act": "elu"}


def test_datasets_lists_the_search_folders(data_dir, capsys):
    code, out, _ = run(["datasets"], capsys)
    assert code == 0
    mnist_line = next(line for line in out.splitlines() if line.startswith("mnist "))
    assert f"found: {data_dir / 'mnist'}" in mnist_line
    assert "cifar10 (CIFAR-10)" in out


def test_summary_prints_the_layer_table(capsys):
    code, out, _ = run(["summary", "minivgg", "--input-shape", "3", "32", "32", "--num-classes", "10"], capsys)
    assert code == 0
    assert "2,171,178" in out  # Keras' model.summary() count for MiniVGG on CIFAR-10 (models/minivgg.py)
    code, _, err = run(["summary", "nosuchnet"], capsys)
    assert_one_line_error(code, err, "unknown model 'nosuchnet'")


def example_scripts():
    return sorted((REPO / "examples").glob("*.py"))


def test_every_example_and_the_module_answer_help():
    commands = [[sys.executable, str(path), "--help"] for path in example_scripts()]
    commands.append([sys.executable, "-m", "tinycnn", "--help"])
    assert len(commands) >= 6
    for command in commands:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO)
        assert result.returncode == 0, (command, result.stderr)
        assert "usage:" in result.stdout


# ----- bad inputs: one line, before any data is read -------------------------------------------
def refuse_data(monkeypatch):
    """Make reading a dataset fail the test: the checks must come first."""
    def load_split(*args, **kwargs):
        raise AssertionError("the dataset was read before the command line was checked")
    monkeypatch.setattr("tinycnn.cli.load_split", load_split)            # evaluate
    monkeypatch.setattr("tinycnn.train.recipe.load_split", load_split)   # train: tinycnn.train.run


def test_damaged_checkpoints_give_one_line_naming_the_file(tmp_path, capsys):
    good = tmp_path / "good.npz"
    tinycnn.save({"model": {"w": np.arange(100.0)}, "meta": {"model": "lenet"}}, good)
    damaged = {"empty.npz": b"", "truncated.npz": good.read_bytes()[:-40], "text.npz": b"not a checkpoint",
               "crc.npz": good.read_bytes().replace(np.arange(100.0).tobytes()[8:16], b"\xff" * 8)}
    for name, data in damaged.items():
        path = tmp_path / name
        path.write_bytes(data)
        for command in (["evaluate", "--checkpoint", str(path)], ["predict", "x.png", "--checkpoint", str(path)],
                        ["train", "--resume", str(path)]):
            code, _, err = run(command, capsys)
            assert_one_line_error(code, err, str(path))
    code, _, err = run(["evaluate", "--checkpoint", str(tmp_path)], capsys)
    assert_one_line_error(code, err, str(tmp_path), "is a folder")


def test_sizes_are_checked_by_argparse(capsys):
    for command, option in ((["evaluate", "--checkpoint", "c.npz", "--batch-size", "0"], "--batch-size"),
                            (["evaluate", "--checkpoint", "c.npz", "--limit", "-3"], "--limit"),
                            (["train", "--epochs", "0"], "--epochs"), (["train", "--batch-size", "x"], "--batch-size"),
                            (["predict", "x.png", "--checkpoint", "c.npz", "--top", "0"], "--top"),
                            (["predict", "x.png", "--checkpoint", "c.npz", "--top", "-1"], "--top"),
                            (["summary", "lenet", "--num-classes", "0"], "--num-classes")):
        code, _, err = run(command, capsys)
        assert code == 2 and "Traceback" not in err
        assert f"argument {option}: expected a positive int" in err.strip().splitlines()[-1]


def test_model_out_and_device_are_checked_before_the_data(tmp_path, data_dir, capsys, monkeypatch):
    refuse_data(monkeypatch)
    code, _, err = run(["train", "--model", "nosuchnet", "--dataset", "mnist"], capsys)
    assert_one_line_error(code, err, "unknown model 'nosuchnet'")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    code, _, err = run(train_command(a_file / "run"), capsys)
    assert_one_line_error(code, err, f"--out {a_file / 'run'} is under the file {a_file}")
    code, _, err = run(train_command(a_file), capsys)
    assert_one_line_error(code, err, f"--out {a_file} is a file")
    monkeypatch.setattr("tinycnn.cuda.is_available", lambda: False)
    code, _, err = run(train_command(tmp_path / "run", "lenet", "--device", "cuda"), capsys)
    assert_one_line_error(code, err, "--device cuda: no usable CUDA GPU")


def test_a_resumed_run_continues_in_the_folder_of_its_checkpoint(tmp_path, data_dir, capsys):
    original = tmp_path / "run"
    assert run(train_command(original, "lenet"), capsys)[0] == 0
    before = {path: path.read_bytes() for path in original.rglob("*") if path.is_file()}
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)

    # --epochs is the total (Keras's epochs with initial_epoch): 1 epoch is done already
    for extra in ([], ["--epochs", "1"]):
        code, _, err = run(["train", "--resume", str(copy / "checkpoints" / "last.npz"), *extra], capsys)
        assert_one_line_error(code, err, "has done 1 epochs", "--epochs 2")

    code, _, _ = run(["train", "--resume", str(copy / "checkpoints" / "last.npz"), "--epochs", "2",
                      "--no-progress"], capsys)
    assert code == 0
    assert read_checkpoint(copy / "checkpoints" / "last.npz")["epoch"] == 2
    assert json.loads((copy / "history.json").read_text())["epoch"] == [1, 2]
    # the original run folder, whose path the checkpoint records, is left as it was
    assert {path: path.read_bytes() for path in original.rglob("*") if path.is_file()} == before


def test_predict_clips_top_and_checkpoint_mismatches_are_one_line(tmp_path, data_dir, capsys, monkeypatch):
    out = tmp_path / "run"
    assert run(train_command(out, "lenet"), capsys)[0] == 0
    last = out / "checkpoints" / "last.npz"
    image_path = tmp_path / "digit.png"
    Image.fromarray(np.full((28, 28), 200, dtype=np.uint8)).save(image_path)
    code, stdout, _ = run(["predict", str(image_path), "--checkpoint", str(last), "--top", "50"], capsys)
    assert code == 0 and stdout.count("%") == 10  # all ten classes, none dropped

    state = read_checkpoint(last)
    state["meta"]["classes"] = state["meta"]["classes"][:5]  # a 5-class LeNet cannot take 10-class weights
    wrong = tmp_path / "wrong.npz"
    tinycnn.save(state, wrong)
    for command in (["evaluate", "--checkpoint", str(wrong)], ["predict", str(image_path), "--checkpoint", str(wrong)]):
        code, _, err = run(command, capsys)
        assert_one_line_error(code, err, str(wrong), "weights do not fit")

    refuse_data(monkeypatch)
    monkeypatch.setattr("tinycnn.cuda.is_available", lambda: False)
    code, _, err = run(["evaluate", "--checkpoint", str(last), "--device", "cuda"], capsys)
    assert_one_line_error(code, err, "--device cuda: no usable CUDA GPU")
    code, _, err = run(["evaluate", "--checkpoint", str(last), "--out", str(image_path / "eval")], capsys)
    assert_one_line_error(code, err, f"is under the file {image_path}")


# ----- #19: weights in and out, transfer learning, the validation split --------------------------------
def test_every_argument_of_every_command_has_help_and_version_prints(capsys):
    from tinycnn.cli import build_parser
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert {"train", "evaluate", "predict", "summary", "datasets", "convert", "export"} <= set(subparsers.choices)
    for name, command in [("tinycnn", parser), *subparsers.choices.items()]:
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help and action.help != argparse.SUPPRESS, (name, action.dest)
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.strip() == f"tinycnn {tinycnn.__version__}"


def lenet_weights(num_classes, seed):
    tinycnn.manual_seed(seed)
    from tinycnn.train import build_model
    return build_model("lenet", num_classes, (1, 28, 28)).state_dict()


def test_train_holds_out_a_validation_split_and_tests_once(tmp_path, data_dir, capsys):
    out = tmp_path / "run"
    code, stdout, _ = run(train_command(out, "lenet", "--val-split", "0.25", "--epochs", "2"), capsys)
    assert code == 0
    assert "(30 images, validation 10, test 20)" in stdout                    # 40 training images, 0.25 held out
    assert "Test set (20 images, evaluated once with the weights of the best.npz" in stdout
    results = json.loads((out / "results.json").read_text())
    history = json.loads((out / "history.json").read_text())
    best = int(np.argmin(history["val_loss"]))
    assert results["validation"] == {"epoch": best + 1, "loss": history["val_loss"][best],
                                     "accuracy": history["val_accuracy"][best]}
    assert results["test"]["images"] == 20 and results["weights"].startswith(f"best.npz (epoch {best + 1}")
    assert read_checkpoint(out / "checkpoints" / "best.npz")["epoch"] == best + 1
    assert read_checkpoint(out / "checkpoints" / "last.npz")["meta"]["config"]["val_split"] == 0.25
    code, _, err = run(train_command(tmp_path / "bad", "lenet", "--val-split", "1.5"), capsys)
    assert_one_line_error(code, err, "val_split must be in [0, 1), got 1.5")


def test_train_init_from_pth_with_a_new_head_and_frozen_features(tmp_path, data_dir, capsys):
    torch = pytest.importorskip("torch")
    state = lenet_weights(5, seed=3)                  # weights for 5 classes; the run has 10
    torch.save({k: torch.tensor(v) for k, v in state.items()}, tmp_path / "lenet.pth")
    out = tmp_path / "run"
    code, stdout, _ = run(train_command(out, "lenet", "--init-from", str(tmp_path / "lenet.pth"),
                                        "--freeze", "features", "classifier.fc1", "--lr", "0.05"), capsys)
    assert code == 0
    assert "Initialised from" in stdout and "(torch); new head: classifier.fc3.bias, classifier.fc3.weight" in stdout
    assert "Frozen: 6 parameter arrays under features, classifier.fc1" in stdout
    trained = read_checkpoint(out / "checkpoints" / "last.npz")["model"]
    flat = {f"{a}.{b}.{c}": trained[a][b][c] for a in trained for b in trained[a] for c in trained[a][b]}
    for key, value in state.items():
        if key.startswith(("features", "classifier.fc1")):
            np.testing.assert_array_equal(flat[key], value)                   # frozen: the file's weights
        elif key.startswith("classifier.fc2"):
            assert not np.array_equal(flat[key], value)                       # trained from the file's
    assert flat["classifier.fc3.weight"].shape == (10, 84)


def test_init_from_reads_every_format_and_refuses_what_it_cannot_tell(tmp_path, data_dir, capsys):
    from tinycnn.io import save_safetensors
    from tinycnn.train import build_model
    from tinycnn.train.weights import init_from, weights_format
    state = lenet_weights(10, seed=4)
    tinycnn.save({"model": state, "epoch": 1}, tmp_path / "checkpoint.npz")
    save_safetensors(state, tmp_path / "weights.safetensors")
    for name, kind in (("checkpoint.npz", "tinycnn"), ("weights.safetensors", "safetensors")):
        model = build_model("lenet", 10, (1, 28, 28))
        assert init_from(model, tmp_path / name, "lenet") == (kind, [])
        for key, value in model.state_dict().items():
            np.testing.assert_array_equal(value, state[key])
    from test_weights_in import _keras_minivgg, _write_keras
    _write_keras(tmp_path / "m.keras", _keras_minivgg(np.random.default_rng(0), 8, 8, classes=4)[0], "keras3")
    _write_keras(tmp_path / "m.h5", _keras_minivgg(np.random.default_rng(0), 8, 8, classes=4)[0], "keras2_model")
    assert weights_format(tmp_path / "m.keras") == weights_format(tmp_path / "m.h5") == "keras"
    model = tinycnn.models.get("minivgg", num_classes=4, input_shape=(3, 8, 8))
    assert init_from(model, tmp_path / "m.keras", "minivgg") == ("keras", [])
    expected = tinycnn.models.from_keras("minivgg", tmp_path / "m.h5", input_shape=(3, 8, 8)).state_dict()
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, expected[key])

    (tmp_path / "notes.txt").write_text("not weights")
    code, _, err = run(train_command(tmp_path / "run", "lenet", "--init-from", str(tmp_path / "notes.txt")), capsys)
    assert_one_line_error(code, err, "cannot tell the format of", "notes.txt", "safetensors")
    code, _, err = run(train_command(tmp_path / "run", "minivgg", "--init-from", str(tmp_path / "checkpoint.npz")),
                       capsys)
    assert_one_line_error(code, err, "checkpoint.npz (tinycnn) does not fit MiniVGG")
    code, _, err = run(train_command(tmp_path / "run", "lenet", "--freeze", "feature"), capsys)
    assert_one_line_error(code, err, "no parameter name starts with 'feature'")


def test_convert_then_export_then_predict_on_a_device(tmp_path, data_dir, capsys):
    torch = pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    tinycnn.manual_seed(5)
    zoo = tinycnn.models.get("shufflenet_v2_x0_5", num_classes=4)   # torchvision's layout already
    torch.save({k: torch.tensor(v) for k, v in zoo.state_dict().items()}, tmp_path / "tv.pth")
    (tmp_path / "classes.txt").write_text("ant\nbee\ncat\ndog\n")
    code, out, _ = run(["convert", "shufflenet_v2_x0_5", str(tmp_path / "tv.pth"), str(tmp_path / "c.npz"),
                        "--classes", str(tmp_path / "classes.txt")], capsys)
    assert code == 0 and "Wrote" in out
    checkpoint = read_checkpoint(tmp_path / "c.npz")
    assert checkpoint["meta"]["classes"] == ["ant", "bee", "cat", "dog"]
    np.testing.assert_allclose(checkpoint["preprocessing"]["std"], [0.229, 0.224, 0.225], rtol=1e-6)
    model = tinycnn.load_model(tmp_path / "c.npz").eval()
    for key, value in zoo.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[key], value)

    code, _, _ = run(["export", str(tmp_path / "c.npz"), str(tmp_path / "c.onnx")], capsys)
    assert code == 0
    x = np.random.default_rng(0).normal(size=(1, 3, 224, 224)).astype(np.float32)
    session = ort.InferenceSession(str(tmp_path / "c.onnx"), providers=["CPUExecutionProvider"])
    onnx_logits = session.run(None, {session.get_inputs()[0].name: x})[0]
    with tinycnn.no_grad():
        expected = model(tinycnn.Tensor(x)).numpy()
    # float32 through ~50 layers in two engines: relative to the logits' scale
    np.testing.assert_allclose(onnx_logits, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())

    image = tmp_path / "x.png"
    Image.fromarray(np.full((30, 30, 3), 90, dtype=np.uint8)).save(image)
    code, out, _ = run(["predict", str(image), "--checkpoint", str(tmp_path / "c.npz"), "--device", "cpu",
                        "--top", "2"], capsys)
    assert code == 0 and out.count("%") == 2 and any(name in out for name in ("ant", "bee", "cat", "dog"))
    monkeypatch_cuda = pytest.MonkeyPatch()
    monkeypatch_cuda.setattr("tinycnn.cuda.is_available", lambda: False)
    try:
        code, _, err = run(["predict", str(image), "--checkpoint", str(tmp_path / "c.npz"), "--device", "cuda"],
                           capsys)
    finally:
        monkeypatch_cuda.undo()
    assert_one_line_error(code, err, "--device cuda: no usable CUDA GPU")
    code, _, err = run(["convert", "resnet7", str(tmp_path / "tv.pth"), str(tmp_path / "d.npz")], capsys)
    assert_one_line_error(code, err, "unknown torchvision model 'resnet7'")


def test_torchvision_weights_need_their_variant_before_they_load():
    from tinycnn.train import RecipeError
    from tinycnn.train.weights import _from_torchvision, check_variant
    tinycnn.manual_seed(6)
    # ResNet-50 v1.5 (stride on the 3x3) has the same shapes as the paper's: only the options tell them apart
    state = tinycnn.models.get("resnet50", num_classes=3, stride_on="3x3").state_dict()
    mapped, variant = _from_torchvision(state, "resnet50")
    assert variant == {"torchvision": "resnet50", "stride_on": "3x3", "num_classes": 3}
    assert all(np.array_equal(mapped[key], value) for key, value in state.items())
    with pytest.raises(RecipeError, match=r"x.pth holds torchvision's resnet50 weights, which need the model built "
                                          r"with stride_on='3x3' \(it has the builder's default\): pass -o "
                                          r"stride_on='3x3'"):
        check_variant(variant, "resnet50", {}, "x.pth")
    check_variant(variant, "resnet50", {"stride_on": "3x3"}, "x.pth")
    unchanged, none = _from_torchvision({"w": np.zeros(2)}, "resnet50")
    assert list(unchanged) == ["w"] and none == {}


def flatten(tree, name=""):
    """{"a": {"b": x}} -> {"a.b": x}"""
    if not isinstance(tree, dict):
        return {name: tree}
    return {key: value for part, child in tree.items()
            for key, value in flatten(child, f"{name}.{part}" if name else part).items()}


def test_amp_on_the_cpu_trains_as_without_it_and_cuda_graph_needs_the_gpu(tmp_path, data_dir, capsys, monkeypatch):
    """--amp is a no-op on the CPU (tinycnn.amp): the same weights bit for bit, and the recipe records
    it; --cuda-graph and the flags --distributed does not take yet are refused before any data."""
    assert run(train_command(tmp_path / "plain", "lenet"), capsys)[0] == 0
    assert run(train_command(tmp_path / "amp", "lenet", "--amp"), capsys)[0] == 0
    plain = read_checkpoint(tmp_path / "plain" / "checkpoints" / "last.npz")
    mixed = read_checkpoint(tmp_path / "amp" / "checkpoints" / "last.npz")
    assert mixed["meta"]["config"]["amp"] is True and plain["meta"]["config"]["amp"] is False
    plain_weights, mixed_weights = flatten(plain["model"]), flatten(mixed["model"])
    assert plain_weights.keys() == mixed_weights.keys() and plain_weights
    for name, value in plain_weights.items():
        np.testing.assert_array_equal(mixed_weights[name], value, err_msg=name)
    refuse_data(monkeypatch)
    code, _, err = run(train_command(tmp_path / "graph", "lenet", "--cuda-graph"), capsys)
    assert_one_line_error(code, err, "--cuda-graph replays CUDA graphs: add --device cuda")
    code, _, err = run(train_command(tmp_path / "both", "lenet", "--amp", "--distributed"), capsys)
    assert_one_line_error(code, err, "--amp does not run with --distributed yet")
