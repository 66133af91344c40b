"""tinycnn.train's recipes: Recipe + run is what `tinycnn train` runs, resumes from its checkpoints,
refuses what cannot run before reading data, and the examples are scripts on it."""
import importlib.util
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

import tinycnn.nn as nn
from test_cli import fake_mnist, run as run_cli
from tinycnn.train import Recipe, RecipeError, build_model, load_split, make_optimizer, make_schedule, \
    read_checkpoint, run, run_script

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    fake_mnist(tmp_path / "data" / "mnist")
    fake_mnist(tmp_path / "data" / "fashion-mnist")
    monkeypatch.setenv("TINYCNN_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


def lenet_recipe(out, **changes):
    return Recipe(model="lenet", dataset="mnist", epochs=1, batch_size=20, checkpoint_every=1, progress=False,
                  out=str(out)).replace(**changes)


def flat(tree, prefix=""):
    """{"conv1": {"weight": a}} -> {"conv1.weight": a}."""
    items = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else key
        items.update(flat(value, name) if isinstance(value, dict) else {name: value})
    return items


def test_run_is_what_the_command_runs(tmp_path, data_dir, capsys):
    recipe = lenet_recipe(tmp_path / "library", lr=0.02)
    history = run(recipe)
    assert not history.interrupted and history.epochs == 1
    assert run_cli(["train", "--model", "lenet", "--dataset", "mnist", "--epochs", "1", "--batch-size", "20",
                    "--checkpoint-every", "1", "--lr", "0.02", "--no-progress", "--out", str(tmp_path / "command")],
                   capsys)[0] == 0
    for name in ("checkpoints/epoch_1.npz", "checkpoints/best.npz", "monitor.png", "history.json", "log.csv",
                 "confusion_matrix.png"):
        assert (tmp_path / "library" / name).is_file(), name
    assert (tmp_path / "library" / "report.txt").read_text() == (tmp_path / "command" / "report.txt").read_text()
    ours, theirs = (read_checkpoint(tmp_path / folder / "checkpoints" / "last.npz")
                    for folder in ("library", "command"))
    ours_flat, theirs_flat = flat(ours["model"]), flat(theirs["model"])
    assert list(ours_flat) == list(theirs_flat) and len(ours_flat) == 10     # LeNet: 5 layers, weight and bias
    for name, array in ours_flat.items():
        np.testing.assert_array_equal(array, theirs_flat[name])
    assert ours["meta"]["config"] == asdict(recipe)


def test_a_run_resumes_from_its_checkpoint_with_a_new_lr(tmp_path, data_dir):
    run(lenet_recipe(tmp_path / "run", lr=0.02))
    last = tmp_path / "run" / "checkpoints" / "last.npz"
    recipe = Recipe.from_checkpoint(last)
    assert recipe == lenet_recipe(tmp_path / "run", lr=0.02)
    history = run(recipe.replace(epochs=2), resume=last, lr=0.005)
    assert history["lr"] == [0.02, 0.005]
    assert json.loads((tmp_path / "run" / "history.json").read_text())["epoch"] == [1, 2]

    with pytest.raises(RecipeError, match=r"the recipe's limit 10 differs from the resumed run's None; only "
                                          r"epochs, device, out, progress, amp, cuda_graph may change"):
        run(recipe.replace(epochs=3, limit=10), resume=last)
    with pytest.raises(RecipeError, match="has done 2 epochs; epochs is the total to reach"):
        run(recipe.replace(epochs=2), resume=last)


def refuse_data(monkeypatch):
    def load_split(*args, **kwargs):
        raise AssertionError("the dataset was read before the recipe was checked")
    monkeypatch.setattr("tinycnn.train.recipe.load_split", load_split)


def test_mistakes_are_refused_before_any_data_is_read(tmp_path, monkeypatch):
    with pytest.raises(RecipeError, match="unknown model 'nosuchnet'; available: .*lenet"):
        Recipe(model="nosuchnet")
    with pytest.raises(RecipeError, match="unknown dataset 'imagenet22k'; choose one of: mnist, fashion-mnist"):
        Recipe(dataset="imagenet22k")
    with pytest.raises(RecipeError, match="Recipe: epochs must be >= 1, got 0"):
        Recipe(epochs=0)
    with pytest.raises(RecipeError, match="Recipe: schedule 'piecewise' needs boundaries and values"):
        Recipe(schedule="piecewise", boundaries=[10])
    assert Recipe(dataset="Fashion_MNIST").dataset == "fashion-mnist"

    refuse_data(monkeypatch)
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    with pytest.raises(RecipeError, match=f"out {a_file / 'run'} is under the file {a_file}"):
        run(lenet_recipe(a_file / "run"))
    monkeypatch.setattr("tinycnn.cuda.is_available", lambda: False)
    with pytest.raises(RecipeError, match="device cuda: no usable CUDA GPU"):
        run(lenet_recipe(tmp_path / "run", device="cuda"))
    with pytest.raises(TypeError, match="run: expected a tinycnn.train.Recipe, got dict"):
        run({"model": "lenet"})


def test_builders_by_name(data_dir):
    train = load_split("MNIST", "train", limit=12, seed=3)
    assert train.images.shape == (12, 1, 28, 28) and len(train.classes) == 10
    assert np.array_equal(train.labels, load_split("mnist", "train", limit=12, seed=3).labels)  # the same subset
    with pytest.raises(RecipeError, match="split must be 'train' or 'test', got 'val'"):
        load_split("mnist", "val")
    with pytest.raises(RecipeError, match="the folder dataset needs its root folder"):
        load_split("folder", "train")
    model = build_model("minivgg", 10, (1, 28, 28))
    assert model.input_shape == (1, 28, 28)
    assert not any(isinstance(m, nn.BatchNormReLU2d) for m in model.modules())     # built as written
    with pytest.raises(RecipeError, match="model 'resnet20' takes 3x32x32 images, the dataset has 1x28x28"):
        build_model("resnet20", 10, (1, 28, 28))
    optimizer = make_optimizer("sgd", model.parameters(), lr=0.1, momentum=0.5, nesterov=True)
    assert (type(optimizer).__name__, optimizer.param_groups[0]["momentum"]) == ("SGD", 0.5)
    schedule = make_schedule("piecewise", optimizer, epochs=3, boundaries=[1, 2], values=[0.1, 0.01, 0.001])
    assert not schedule.uses_base_lr
    assert make_schedule("none", optimizer, epochs=3) is None
    with pytest.raises(RecipeError, match="unknown optimizer 'lbfgs'; choose one of: sgd, adam, adamw, rmsprop"):
        make_optimizer("lbfgs", model.parameters(), lr=0.1)
    with pytest.raises(RecipeError, match="unknown schedule 'exp'"):
        make_schedule("exp", optimizer, epochs=3)


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_example_is_a_script_on_the_recipe_api(tmp_path, data_dir, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    example = load_example("minivgg_fashion_mnist")
    assert isinstance(example.RECIPE, Recipe) and example.RECIPE.batch_size == 32
    assert example.main(["--limit", "30", "--epochs", "1"]) == 0
    out = tmp_path / "runs" / "minivgg_fashion_mnist"
    assert "rank-1:" in (out / "report.txt").read_text()
    config = read_checkpoint(out / "checkpoints" / "last.npz")["meta"]["config"]
    assert config == asdict(example.RECIPE.replace(epochs=1, limit=30))

    experiments = load_example("deepergooglenet_tinyimagenet").EXPERIMENTS
    assert experiments["2"].schedule == "piecewise" and experiments["2"].boundaries == [20, 30]
    assert experiments["4"].model_options == {"inception_4": True} and experiments["4"].optimizer == "adam"


def test_an_example_says_what_went_wrong_on_stderr_and_exits_1(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TINYCNN_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("HOME", str(tmp_path))                     # no ~/.tinycnn/datasets/cifar10 either
    example = load_example("minigooglenet_cifar10")
    for argv, message in ((["--limit", "30", "--epochs", "1"], "error: CIFAR-10: no data found"),
                          (["--epochs", "0"], "error: Recipe: epochs must be >= 1, got 0"),
                          (["--resume", str(tmp_path / "none.npz")], "does not exist")):
        assert example.main(argv) == 1
        out, err = capsys.readouterr()
        assert message in err.splitlines()[0] and "Traceback" not in err and out == ""
    assert not (tmp_path / "runs").exists()
    with pytest.raises(TypeError, match="run_script: expected a tinycnn.train.Recipe, got dict"):
        run_script({"model": "lenet"}, [])
