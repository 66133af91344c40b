"""The conventions users bring from PyTorch and Keras: np.asarray(tensor), Module.apply, ModuleDict,
get_submodule, AdaptiveAvgPool2d, gradient clipping, ReduceLROnPlateau, EarlyStopping's best weights,
a validation split, load_model and the weight readers exported from tinycnn."""
import types

import numpy as np
import pytest

import tinycnn
import tinycnn.functions as F
import tinycnn.models as models
from tinycnn import nn
from tinycnn.data import DataLoader
from tinycnn.optim import SGD
from tinycnn.train import (Callback, EarlyStopping, ReduceLROnPlateau, RecipeError, fit, load_model,
                           stratified_split)
from tinycnn.train.builders import transform_of

try:
    import torch
except ImportError:          # the PyTorch comparisons need it; everything else runs without
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


# ----- np.asarray(tensor) ----------------------------------------------------------------------
def test_asarray_gives_the_tensors_data_and_a_gpu_tensor_refuses(monkeypatch):
    t = tinycnn.Tensor(np.arange(6, dtype=np.float32).reshape(2, 3), requires_grad=True)
    array = np.asarray(t)
    assert array is t.data                                   # no copy, as torch's .numpy() of a CPU tensor
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    copied = np.array(t, copy=True)
    copied[0, 0] = 100
    assert t.data[0, 0] == 0
    assert np.stack([t, t]).shape == (2, 2, 3)
    with pytest.raises(ValueError, match="cannot cast float32 to float64 without a copy"):
        np.asarray(t, dtype=np.float64, copy=False)
    monkeypatch.setattr(tinycnn.tensor, "is_cupy_array", lambda a: True)   # stands in for a CuPy array
    with pytest.raises(TypeError, match=r"the tensor is on the GPU; call tensor.numpy\(\)"):
        np.asarray(t)


# ----- Module.apply, ModuleDict, get_submodule ---------------------------------------------------
def net():
    return nn.Sequential(nn.Linear(4, 3), nn.Sequential(nn.Linear(3, 3), nn.ReLU()), nn.Linear(3, 2))


@needs_torch
def test_apply_visits_children_first_then_self_as_torch():
    seen = []
    assert net().apply(lambda m: seen.append(type(m).__name__)) is not None
    theirs = []
    torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.ReLU()),
                        torch.nn.Linear(3, 2)).apply(lambda m: theirs.append(type(m).__name__))
    assert seen == theirs == ["Linear", "Linear", "ReLU", "Sequential", "Linear", "Sequential"]


def test_apply_can_initialise_every_linear():
    model = net().apply(lambda m: nn.init.zeros_(m.weight) if isinstance(m, nn.Linear) else None)
    assert all(not p.data.any() for name, p in model.named_parameters() if name.endswith("weight"))


def test_module_dict_registers_its_modules_by_key():
    heads = nn.ModuleDict({"digits": nn.Linear(8, 10)})
    heads["letters"] = nn.Linear(8, 26)
    assert list(heads) == ["digits", "letters"] and len(heads) == 2 and "letters" in heads
    assert [name for name, _ in heads.named_parameters()] == ["digits.weight", "digits.bias", "letters.weight",
                                                              "letters.bias"]
    assert heads["letters"].out_features == 26
    del heads["digits"]
    assert list(heads.state_dict()) == ["letters.weight", "letters.bias"]
    with pytest.raises(TypeError, match="ModuleDict: 'x' must be a tinycnn.nn.Module, got int"):
        heads["x"] = 3


def test_get_submodule_follows_dotted_names():
    model = net()
    assert model.get_submodule("1.0") is model[1][0]
    assert model.get_submodule("") is model
    for name, module in model.named_modules():
        assert model.get_submodule(name) is module
    with pytest.raises(AttributeError, match=r"Sequential has no submodule '5' \(looking for '1.5'"):
        model.get_submodule("1.5")


# ----- AdaptiveAvgPool2d -----------------------------------------------------------------------
@needs_torch
@pytest.mark.parametrize("shape, output", [((2, 3, 7, 5), (3, 2)), ((1, 2, 4, 4), 2), ((1, 1, 1, 1), 3),
                                           ((1, 2, 6, 6), (6, 6))])
def test_adaptive_avg_pool2d_matches_torch(shape, output):
    x = np.random.default_rng(0).normal(size=shape)
    ours = nn.AdaptiveAvgPool2d(output)(tinycnn.Tensor(x)).numpy()
    theirs = torch.nn.functional.adaptive_avg_pool2d(torch.tensor(x), output).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


def test_adaptive_avg_pool2d_gradcheck_and_its_place():
    x = tinycnn.Tensor(np.random.default_rng(1).normal(size=(2, 2, 5, 7)), requires_grad=True)
    assert tinycnn.gradcheck(lambda t: F.adaptive_avg_pool2d(t, (3, 4)), [x])
    from models.layers import AdaptiveAvgPool2d as zoo_layer
    assert zoo_layer is nn.AdaptiveAvgPool2d
    with pytest.raises(ValueError, match=r"adaptive_avg_pool2d: expected a \(N, C, H, W\) input"):
        F.adaptive_avg_pool2d(tinycnn.Tensor(np.zeros((3, 4, 4), np.float32)), 2)
    with pytest.raises(ValueError, match="output_size must be positive"):
        nn.AdaptiveAvgPool2d(0)


# ----- gradient clipping -----------------------------------------------------------------------
@needs_torch
@pytest.mark.parametrize("norm_type, max_norm", [(2.0, 1.0), (1.0, 0.5), (float("inf"), 0.3), (2.0, 100.0)])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    rng = np.random.default_rng(2)
    grads = [rng.normal(size=s) for s in ((3, 4), (5,), (2, 2, 2))]
    ours = [nn.Parameter(np.zeros(g.shape)) for g in grads] + [nn.Parameter(np.zeros(2))]   # the last has no grad
    for p, g in zip(ours, grads):
        p.grad = g.copy()
    theirs = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, g in zip(theirs, grads):
        p.grad = torch.tensor(g)
    total = nn.utils.clip_grad_norm_(ours, max_norm, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    assert total == pytest.approx(float(expected), rel=1e-12)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=1e-12)
    assert ours[-1].grad is None


@needs_torch
def test_clip_grad_value_matches_torch_and_checks_its_argument():
    g = np.random.default_rng(3).normal(size=(4, 5)).astype(np.float32)
    p = nn.Parameter(np.zeros((4, 5), np.float32))
    p.grad = g.copy()
    q = torch.zeros(4, 5, requires_grad=True)
    q.grad = torch.tensor(g)
    nn.utils.clip_grad_value_([p], 0.5)
    torch.nn.utils.clip_grad_value_([q], 0.5)
    np.testing.assert_array_equal(p.grad, q.grad.numpy())
    with pytest.raises(ValueError, match="clip_grad_value_: expected clip_value >= 0, got -1.0"):
        nn.utils.clip_grad_value_([p], -1)


# ----- ReduceLROnPlateau, EarlyStopping(restore_best_weights=True) -------------------------------------
def plateau_trainer(lr=1.0):
    w = nn.Parameter(np.zeros(1))
    return types.SimpleNamespace(optimizer=SGD([w], lr=lr), schedule=None, val_loader=[()], history={}, verbose=0)


@needs_torch
@pytest.mark.parametrize("options", [dict(), dict(patience=1, cooldown=2), dict(patience=0, min_lr=0.05),
                                     dict(patience=1, threshold=0.5, threshold_mode="abs"),
                                     dict(monitor="val_accuracy", patience=1, factor=0.5)])
def test_reduce_lr_on_plateau_follows_torch(options):
    values = [1.0, 0.9, 0.95, 0.91, 0.9, 0.89, 0.92, 0.93, 0.5, 0.6, 0.7, 0.8, 0.8, 0.8, 0.4, 0.45, 0.5, 0.55]
    values = values * 2
    options = {"patience": 2, **options}
    callback = ReduceLROnPlateau(**options)
    callback.trainer = plateau_trainer()
    callback.on_train_begin()
    torch_options = {k: v for k, v in options.items() if k != "monitor"}
    mode = "max" if options.get("monitor", "").endswith("accuracy") else "min"
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, **torch_options)
    ours, theirs = [], []
    for epoch, value in enumerate(values, start=1):
        callback.on_epoch_end(epoch, {callback.monitor: value})
        scheduler.step(value)
        ours.append(callback.trainer.optimizer.param_groups[0]["lr"])
        theirs.append(optimizer.param_groups[0]["lr"])
    assert ours == pytest.approx(theirs, rel=1e-12)
    assert min(ours) < 1.0                                   # the sequence does plateau


def test_reduce_lr_on_plateau_refuses_a_schedule_and_checks_its_arguments():
    callback = ReduceLROnPlateau()
    callback.trainer = plateau_trainer()
    callback.trainer.schedule = tinycnn.optim.StepDecay(callback.trainer.optimizer, step_size=1)
    with pytest.raises(ValueError, match="ReduceLROnPlateau sets the lrs itself; pass schedule=None"):
        callback.on_train_begin()
    with pytest.raises(ValueError, match=r"factor must be in \(0, 1\), got 2"):
        ReduceLROnPlateau(factor=2)


def toy_data(count=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(count, 6)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    return x, y


class WeightsPerEpoch(Callback):
    def __init__(self):
        self.weights = {}

    def on_epoch_end(self, epoch, logs):
        self.weights[epoch] = {k: v.copy() for k, v in self.trainer.model.state_dict().items()}


def test_early_stopping_restores_the_weights_of_the_best_epoch():
    x, y = toy_data()
    tinycnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 2))
    recorder = WeightsPerEpoch()
    val_x, val_y = toy_data(24, 1)
    # validation labels that disagree with the training rule: the better the fit, the worse val_loss gets
    history = fit(model, DataLoader((x, y), batch_size=8, shuffle=True, seed=0), DataLoader((val_x, 1 - val_y), 24),
                  optimizer=SGD(model.parameters(), lr=0.5), epochs=4, verbose=False,
                  callbacks=[recorder, EarlyStopping("val_loss", patience=8, restore_best_weights=True)])
    best = int(np.argmin(history["val_loss"])) + 1
    assert best != history.epochs
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, recorder.weights[best][key])


# ----- validation split ---------------------------------------------------------------------------
def test_stratified_split_keeps_each_class_share_and_is_seeded():
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    train, val = stratified_split(labels, 0.1, seed=4)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(100))
    assert np.bincount(labels[val]).tolist() == [5, 3, 2]
    again, other = stratified_split(labels, 0.1, seed=4)[1], stratified_split(labels, 0.1, seed=5)[1]
    assert np.array_equal(again, val) and not np.array_equal(other, val)
    _, val = stratified_split(np.repeat([0, 1], [4, 4]), 0.1)      # 0.8 images: rounds to 1, not to none
    assert len(val) == 1
    with pytest.raises(ValueError, match="the fraction must be between 0 and 1"):
        stratified_split(labels, 1.0)


def test_fit_validation_split_holds_out_a_stratified_part_without_augmentation():
    x, y = toy_data(60)
    seen = []

    class Sizes(Callback):
        def on_train_begin(self):
            seen.append((len(self.trainer.train_loader.images), len(self.trainer.val_loader.images),
                         np.bincount(self.trainer.val_loader.labels).tolist()))

    model = nn.Sequential(nn.Linear(6, 2))
    history = fit(model, DataLoader((x, y), batch_size=8, seed=3), validation_split=0.2, epochs=1, verbose=False,
                  optimizer=SGD(model.parameters(), lr=0.1), callbacks=[Sizes()])
    expected_val = np.round(np.bincount(y) * 0.2).astype(int).tolist()
    assert seen == [(48, 12, expected_val)]
    assert "val_loss" in history and "val_accuracy" in history
    with pytest.raises(ValueError, match="fit: pass val_loader or validation_split, not both"):
        fit(model, DataLoader((x, y)), DataLoader((x, y)), optimizer=SGD(model.parameters(), lr=0.1),
            validation_split=0.1, verbose=False)
    with pytest.raises(TypeError, match="validation_split needs a tinycnn.data.DataLoader"):
        fit(model, [(x, y)], optimizer=SGD(model.parameters(), lr=0.1), validation_split=0.1, verbose=False)


# ----- load_model, from_keras, exports, transform_of ---------------------------------------------------
def test_load_model_rebuilds_a_checkpoint_and_refuses_one_without_meta(tmp_path):
    tinycnn.manual_seed(1)
    model = models.get("lenet", num_classes=3)
    path = tmp_path / "c.npz"
    tinycnn.save({"model": model.state_dict(), "meta": {"model": "lenet", "input_shape": [1, 32, 32],
                                                        "classes": ["a", "b", "c"]},
                  "preprocessing": {"scale": "1/255", "mean": np.zeros(1, np.float32)}}, path)
    loaded = load_model(path)
    assert tinycnn.load_model is load_model and loaded.classes == ["a", "b", "c"]
    x = tinycnn.Tensor(np.random.default_rng(0).normal(size=(2, 1, 32, 32)).astype(np.float32))
    np.testing.assert_array_equal(loaded.eval()(x).numpy(), model.eval()(x).numpy())
    tinycnn.save({"model": model.state_dict()}, tmp_path / "bare.npz")
    with pytest.raises(RecipeError, match="bare.npz: the checkpoint does not name its model"):
        load_model(tmp_path / "bare.npz")


def test_from_keras_builds_the_model_and_reads_its_classes(tmp_path):
    from test_weights_in import _keras_minivgg, _write_keras
    rng = np.random.default_rng(1)
    layers, forward = _keras_minivgg(rng, 8, 8, classes=4)
    _write_keras(tmp_path / "m.h5", layers, "keras2_model")
    model = models.from_keras("minivgg", tmp_path / "m.h5", input_shape=(3, 8, 8)).eval()
    x = rng.standard_normal((2, 8, 8, 3)).astype(np.float32)
    expected = forward(np.asarray(x, np.float64))
    logits = model(tinycnn.Tensor(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))).numpy()
    # float32 weights against a float64 forward: relative to the logits' scale
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_the_weight_readers_are_exported_from_tinycnn():
    for name in ("load_torch", "load_safetensors", "save_safetensors", "load_keras"):
        assert getattr(tinycnn, name) is getattr(tinycnn.io, name)


def test_transform_of_standardizes_when_the_preprocessing_has_a_std():
    images = np.random.default_rng(0).integers(0, 256, size=(2, 3, 4, 4)).astype(np.uint8)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    out = transform_of({"scale": "1/255", "mean": mean, "std": std})(images)
    expected = (images / 255.0 - mean[:, None, None]) / std[:, None, None]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)   # float32 pixels in [-2.2, 2.7]
    no_std = transform_of({"scale": "1/255", "mean": mean})(images)
    np.testing.assert_allclose(no_std, images / 255.0 - mean[:, None, None], atol=1e-6)
