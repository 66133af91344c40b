"""The fit loop: bit-identical resume, ctrl+c, callbacks, multi-output losses."""
import csv
import json
import os
import signal

import numpy as np
import pytest
from PIL import Image

import tinycnn
import tinycnn.nn as nn
from tinycnn.data import Compose, DataLoader, RandomHorizontalFlip, ToFloat
from tinycnn.optim import SGD, Adam, CosineAnnealing, StepDecay
from tinycnn.train import (Callback, CSVLogger, EarlyStopping, ModelCheckpoint, TrainingMonitor, evaluate, fit,
                           predict, read_checkpoint)

NUM_CLASSES = 3


def synthetic_data(count=48, seed=0):
    """Noisy 1x8x8 uint8 images whose bright row depends on the class."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % NUM_CLASSES
    images = rng.integers(0, 80, size=(count, 1, 8, 8))
    for i, label in enumerate(labels):
        images[i, 0, 2 * label + 1] += 150
    return images.astype(np.uint8), labels.astype(np.int64)


def tiny_net():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.3), nn.Linear(4 * 4 * 4, NUM_CLASSES))


def fresh_run(init_seed=0, schedule=None, optimizer="sgd"):
    """Model, optimizer, schedule and loaders built from scratch, as a new process would."""
    tinycnn.manual_seed(init_seed)
    model = tiny_net()
    if optimizer == "sgd":
        opt = SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    else:
        opt = Adam(model.parameters(), lr=0.01)
    sched = None
    if schedule == "step":
        sched = StepDecay(opt, step_size=1, gamma=0.5)
    elif schedule == "cosine-per-step":
        sched = CosineAnnealing(opt, T_max=24, per="step")
    train = DataLoader(synthetic_data(), batch_size=8, shuffle=True, seed=7,
                       transform=Compose([RandomHorizontalFlip(), ToFloat()]))
    val = DataLoader(synthetic_data(24, seed=1), batch_size=8, transform=ToFloat())
    return model, opt, sched, train, val


def train(run, epochs, **kwargs):
    model, opt, sched, train_loader, val_loader = run
    kwargs.setdefault("verbose", False)
    return fit(model, train_loader, val_loader, optimizer=opt, schedule=sched, epochs=epochs, **kwargs)


def assert_same_weights(model_a, model_b):
    state_a, state_b = model_a.state_dict(), model_b.state_dict()
    assert list(state_a) == list(state_b)
    for name in state_a:
        np.testing.assert_array_equal(state_a[name], state_b[name], err_msg=name)


def assert_same_metrics(history_a, history_b):
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
        assert history_a[key] == history_b[key], key


@pytest.mark.parametrize("schedule, optimizer", [("step", "sgd"), ("cosine-per-step", "adam")])
def test_resume_from_a_checkpoint_is_bit_identical(tmp_path, schedule, optimizer):
    straight = fresh_run(schedule=schedule, optimizer=optimizer)
    straight_history = train(straight, epochs=4)

    first = fresh_run(schedule=schedule, optimizer=optimizer)
    train(first, epochs=2, callbacks=[ModelCheckpoint(tmp_path, every=1, save_best=None)])
    # a fresh start with different initial weights: everything must come from the checkpoint
    second = fresh_run(init_seed=123, schedule=schedule, optimizer=optimizer)
    resumed_history = train(second, epochs=4, resume=tmp_path / "epoch_2.npz")

    assert_same_weights(straight[0], second[0])
    assert_same_metrics(straight_history, resumed_history)
    assert len(resumed_history["loss"]) == 4
    assert straight_history["lr"][0] != straight_history["lr"][-1]  # the schedule really moved


class SendCtrlC(Callback):
    """Raise SIGINT in this process after batch ``batch`` of epoch ``epoch``."""

    def __init__(self, epoch, batch):
        self.epoch, self.batch, self.current = epoch, batch, None

    def on_epoch_begin(self, epoch):
        self.current = epoch

    def on_batch_end(self, batch, logs):
        if (self.current, batch) == (self.epoch, self.batch):
            os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_saves_interrupted_checkpoint_and_resumes_exactly(tmp_path, capsys):
    straight = fresh_run(schedule="cosine-per-step")
    straight_history = train(straight, epochs=4)

    handler_before = signal.getsignal(signal.SIGINT)
    run = fresh_run(schedule="cosine-per-step")
    history = train(run, epochs=4, callbacks=[ModelCheckpoint(tmp_path, every=1, save_best=None),
                                              SendCtrlC(epoch=3, batch=2)],
                    resume_command="tinycnn train --resume {path}")
    assert signal.getsignal(signal.SIGINT) is handler_before
    path = tmp_path / "interrupted.npz"
    assert history.interrupted and history.checkpoint == str(path)
    assert path.is_file()
    assert len(history["loss"]) == 2  # epoch 3 was cut short
    checkpoint = read_checkpoint(path)
    assert (checkpoint["epoch"], checkpoint["batch"]) == (2, 3)
    assert f"tinycnn train --resume {path}" in capsys.readouterr().out

    resumed = fresh_run(init_seed=5, schedule="cosine-per-step")
    resumed_history = train(resumed, epochs=4, resume=path)
    assert_same_weights(straight[0], resumed[0])
    assert_same_metrics(straight_history, resumed_history)


def test_ctrl_c_with_a_plain_list_of_batches_replays_the_epoch(tmp_path):
    images, labels = synthetic_data()
    batches = [(images[i:i + 8].astype(np.float32) / 255, labels[i:i + 8]) for i in range(0, 48, 8)]

    def run(seed):
        tinycnn.manual_seed(seed)
        model = tiny_net()
        return model, SGD(model.parameters(), lr=0.05, momentum=0.9), None, batches, None

    straight = run(0)
    train(straight, epochs=2)
    interrupted = run(0)
    history = train(interrupted, epochs=2, callbacks=[ModelCheckpoint(tmp_path, every=None, save_best=None),
                                                      SendCtrlC(epoch=2, batch=3)])
    assert history.interrupted
    resumed = run(9)
    train(resumed, epochs=2, resume=tmp_path / "interrupted.npz")
    assert_same_weights(straight[0], resumed[0])


def test_resume_with_a_new_learning_rate(tmp_path):
    first = fresh_run()
    train(first, epochs=2, callbacks=[ModelCheckpoint(tmp_path, every=2, save_best=None)])
    second = fresh_run()
    model, opt, _, train_loader, val_loader = second
    history = fit(model, train_loader, val_loader, optimizer=opt, epochs=3, verbose=False,
                  resume=tmp_path / "epoch_2.npz", lr=1e-4)
    assert history["lr"][2] == 1e-4
    assert opt.param_groups[0]["lr"] == 1e-4
    assert history["lr"][:2] == [0.05, 0.05]


def test_checkpoints_every_n_epochs_and_best_by_val_loss(tmp_path):
    run = fresh_run()
    history = train(run, epochs=4, callbacks=[ModelCheckpoint(tmp_path, every=2, save_best="val_loss",
                                                               save_last=True)])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["best.npz", "epoch_2.npz", "epoch_4.npz", "last.npz"]
    best = read_checkpoint(tmp_path / "best.npz")
    assert best["epoch"] == 1 + int(np.argmin(history["val_loss"]))
    last = read_checkpoint(tmp_path / "last.npz")
    assert last["epoch"] == 4
    for name, value in run[0].state_dict().items():
        np.testing.assert_array_equal(_nested(last["model"], name), value)
    assert set(last) >= {"model", "optimizer", "schedule", "epoch", "rng", "history", "preprocessing", "meta"}


def _nested(tree, dotted):
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def test_checkpoint_keeps_preprocessing_and_meta(tmp_path):
    run = fresh_run()
    means = np.array([33.5], dtype=np.float32)
    train(run, epochs=1, callbacks=[ModelCheckpoint(tmp_path, every=1, save_best=None)],
          preprocessing={"means": means}, meta={"model": "tiny", "classes": ["a", "b", "c"]})
    checkpoint = read_checkpoint(tmp_path / "epoch_1.npz")
    np.testing.assert_array_equal(checkpoint["preprocessing"]["means"], means)
    assert checkpoint["meta"] == {"model": "tiny", "classes": ["a", "b", "c"]}


def test_save_best_without_validation_data_is_a_clear_error(tmp_path):
    model, opt, _, train_loader, _ = fresh_run()
    with pytest.raises(ValueError, match="ModelCheckpoint: monitor 'val_loss' needs validation data"):
        fit(model, train_loader, optimizer=opt, callbacks=[ModelCheckpoint(tmp_path)], verbose=False)


def test_csv_logger_writes_one_row_per_epoch_and_continues_after_resume(tmp_path):
    log = tmp_path / "log.csv"
    run = fresh_run()
    history = train(run, epochs=3, callbacks=[CSVLogger(log), ModelCheckpoint(tmp_path, every=2, save_best=None)])
    with open(log, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3]
    assert [float(row["loss"]) for row in rows] == pytest.approx(history["loss"], rel=1e-12)
    assert {"val_loss", "val_accuracy", "lr", "epoch_time", "images_per_sec"} <= set(rows[0])

    train(fresh_run(), epochs=4, callbacks=[CSVLogger(log)], resume=tmp_path / "epoch_2.npz")
    with open(log, newline="") as f:
        epochs = [int(row["epoch"]) for row in csv.DictReader(f)]
    assert epochs == [1, 2, 3, 4]


def test_training_monitor_draws_curves_and_continues_after_resume(tmp_path):
    png, history_json = tmp_path / "monitor.png", tmp_path / "history.json"
    train(fresh_run(), epochs=2, callbacks=[TrainingMonitor(png, history_json),
                                            ModelCheckpoint(tmp_path / "ck", every=1, save_best=None)])
    with open(history_json) as f:
        first = json.load(f)
    assert first["epoch"] == [1, 2]
    image = Image.open(png)
    assert image.size == (800, 600)
    assert len(np.unique(np.asarray(image.convert("RGB")).reshape(-1, 3), axis=0)) > 10  # not a blank canvas

    # a third epoch from epoch_1: the curves keep epoch 1 and continue from there
    train(fresh_run(), epochs=3, callbacks=[TrainingMonitor(png, history_json)],
          resume=tmp_path / "ck" / "epoch_1.npz")
    with open(history_json) as f:
        second = json.load(f)
    assert second["epoch"] == [1, 2, 3]
    assert second["loss"][0] == first["loss"][0]


def test_early_stopping_stops_after_patience_epochs():
    stopper = EarlyStopping("loss", patience=2, min_delta=1e9)  # nothing counts as an improvement
    history = train(fresh_run(), epochs=10, callbacks=[stopper])
    assert len(history["loss"]) == 3
    assert stopper.stopped_epoch == 3


class MultiHead(nn.Module):
    """Like GoogLeNet: (main, aux1, aux2) while training, main alone in eval mode."""

    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU())
        self.main = nn.Linear(8, NUM_CLASSES)
        self.aux1 = nn.Linear(8, NUM_CLASSES)
        self.aux2 = nn.Linear(8, NUM_CLASSES)

    def forward(self, x):
        features = self.trunk(x)
        if not self.training:
            return self.main(features)
        return self.main(features), self.aux1(features), self.aux2(features)


def _multi_head_run():
    tinycnn.manual_seed(0)
    model = MultiHead()
    loader = DataLoader(synthetic_data(), batch_size=16, shuffle=True, seed=0, transform=ToFloat())
    return model, SGD(model.parameters(), lr=0.1), loader


def test_multi_output_loss_defaults_to_weights_1_03_03():
    from tinycnn.train import Trainer
    import tinycnn.functions as F
    model, opt, loader = _multi_head_run()
    images, labels = next(iter(loader))
    trainer = Trainer(model, opt, loader)
    outputs = model(tinycnn.Tensor(images))
    expected = sum(w * F.softmax_cross_entropy(o, labels).item() for w, o in zip((1, 0.3, 0.3), outputs))
    assert trainer.compute_loss(outputs, labels).item() == pytest.approx(expected, rel=1e-6)


def test_loss_weights_decide_which_heads_learn():
    model, opt, loader = _multi_head_run()
    aux_before = model.aux1.weight.data.copy()
    main_before = model.main.weight.data.copy()
    fit(model, loader, optimizer=opt, epochs=1, loss_weights=(1.0, 0.0, 0.0), verbose=False)
    np.testing.assert_array_equal(model.aux1.weight.data, aux_before)  # weight 0: no gradient reaches it
    assert not np.array_equal(model.main.weight.data, main_before)

    model, opt, loader = _multi_head_run()
    fit(model, loader, optimizer=opt, epochs=1, verbose=False)  # default (1, 0.3, 0.3)
    assert not np.array_equal(model.aux1.weight.data, aux_before)

    model, opt, loader = _multi_head_run()
    with pytest.raises(ValueError, match="returned 3 output"):
        fit(model, loader, optimizer=opt, epochs=1, loss_weights=(1.0, 0.3), verbose=False)


def test_evaluate_and_predict_agree():
    model, _, _, _, val = fresh_run()
    scores, labels = predict(model, val)
    assert scores.shape == (24, NUM_CLASSES) and labels.shape == (24,)
    results = evaluate(model, val)
    assert results["accuracy"] == pytest.approx(np.mean(scores.argmax(1) == labels))
    assert model.training  # evaluation leaves the mode as it found it


def test_training_learns_and_prints_one_line_per_epoch(capsys):
    history = train(fresh_run(), epochs=3, verbose=True)
    out = capsys.readouterr().out
    assert [line.split(" - ")[0] for line in out.splitlines() if line.startswith("Epoch")] == \
        ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]
    assert history["accuracy"][-1] > 0.6  # three classes: chance is 1/3
    assert all(t > 0 for t in history["epoch_time"]) and all(r > 0 for r in history["images_per_sec"])


def test_verbose_2_prints_the_epoch_lines_without_progress_bars(capsys):
    train(fresh_run(), epochs=1, verbose=2, log_every=1)
    out, err = capsys.readouterr()
    assert out.startswith("Epoch 1/1 - ") and err == ""
    train(fresh_run(), epochs=1, verbose=0)
    assert capsys.readouterr() == ("", "")


def test_fit_argument_errors():
    model, opt, _, loader, _ = fresh_run()
    with pytest.raises(ValueError, match="fit: pass an optimizer"):
        fit(model, loader, verbose=False)
    with pytest.raises(TypeError, match="fit: model must be"):
        fit(lambda x: x, loader, optimizer=opt, verbose=False)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        fit(model, loader, optimizer=opt, resume="missing.npz", verbose=False)


def test_fit_fuses_batch_norm_and_relu_unless_told_not_to():
    fused_run = fresh_run()
    keys = list(fused_run[0].state_dict())
    fused = train(fused_run, epochs=1)
    plain_run = fresh_run()                 # after the first run: the same seeds for dropout
    plain = train(plain_run, epochs=1, fuse=False)
    assert [type(m).__name__ for m in fused_run[0]][1:3] == ["BatchNormReLU2d", "Identity"]
    assert [type(m).__name__ for m in plain_run[0]][1:3] == ["BatchNorm2d", "ReLU"]
    assert list(fused_run[0].state_dict()) == keys
    plain_state = plain_run[0].state_dict()
    for key, value in fused_run[0].state_dict().items():
        # float32, 6 SGD steps from the same start: the fused kernels may only round differently
        np.testing.assert_allclose(value, plain_state[key], rtol=1e-5, atol=1e-6 * np.abs(plain_state[key]).max())
    assert fused["loss"] == pytest.approx(plain["loss"], rel=1e-5)
