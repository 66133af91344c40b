"""docs/record_runs.py keeps a run's validation and test results apart: each epoch's val_* from
history.json, the test split's result (evaluated once, after training) from results.json and
report.txt, both written here by tinycnn train's own code."""
import importlib.util
import json
from pathlib import Path

import numpy as np

import tinycnn
import tinycnn.nn as nn
from tinycnn.data import DataLoader
from tinycnn.train import ModelCheckpoint
from tinycnn.train.recipe import evaluate_test_split

DOCS = Path(__file__).resolve().parents[1] / "docs"


def load_record_runs():
    spec = importlib.util.spec_from_file_location("record_runs", DOCS / "record_runs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_step_keeps_validation_epochs_and_the_test_result_apart(tmp_path):
    record_runs = load_record_runs()
    tinycnn.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    images = np.random.default_rng(0).normal(size=(12, 1, 4, 4)).astype(np.float32)
    labels = np.arange(12) % 3
    history = {"epoch": [1, 2], "loss": [1.2, 0.9], "accuracy": [0.3, 0.5], "val_loss": [1.1, 0.95],
               "val_accuracy": [0.25, 0.5], "lr": [0.01, 0.01]}
    (tmp_path / "history.json").write_text(json.dumps(history))
    checkpoints = ModelCheckpoint(str(tmp_path / "checkpoints"), every=None, save_best=None)
    evaluate_test_split(model, checkpoints, history, DataLoader((images, labels), batch_size=5), ["a", "b", "c"],
                        str(tmp_path))

    step = record_runs.read_step(tmp_path, "tinycnn train ...", 12.4)
    assert step["command"] == "tinycnn train ..." and step["wall_seconds"] == 12
    assert [e["val_loss"] for e in step["epochs"]] == [1.1, 0.95]          # the validation split's
    with tinycnn.no_grad():
        scores = model.eval()(tinycnn.Tensor(images)).numpy()
    accuracy = float((scores.argmax(axis=1) == labels).mean())
    test = step["test"]
    assert test["weights"] == "last epoch" and test["images"] == 12
    assert test["accuracy"] == round(accuracy, 4) and test["rank-1"] == round(accuracy, 4)
    assert test["rank-3"] == 1.0                                          # 3 classes: always within the top 3
    shifted = scores - scores.max(axis=1, keepdims=True)
    loss = float(np.mean(np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(12), labels]))
    assert abs(test["loss"] - loss) <= 1e-4                               # rounded to 4 places (and float32)


def test_the_recorded_run_says_what_its_val_numbers_are():
    """The record older than the validation split says its val_* are the test set's."""
    record = json.loads((DOCS / "results" / "fashion_mnist.json").read_text())
    assert "test images" in record["validation"] and "before tinycnn train had --val-split" in record["validation"]
    for step in record["steps"]:
        assert step["test"]["rank-1"] == step["epochs"][-1]["val_accuracy"]   # the same images and weights
