"""Transfer learning: freeze/unfreeze by name, a new head on every zoo model, features from a layer,
a softmax-regression head on them, and examples/transfer_learning.py on a tiny fake dataset."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

import tinycnn
import tinycnn.models as models
from tinycnn import nn
from tinycnn.data import DataLoader
from tinycnn.optim import SGD
from tinycnn.train import LogisticRegression, extract_features, fit

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def small_cnn():
    tinycnn.manual_seed(0)
    return nn.Sequential({"features": nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(4),
                                                    nn.MaxPool2d(2)),
                          "features2": nn.Sequential(nn.Flatten(), nn.Linear(64, 8)),
                          "head": nn.Linear(8, 3)})


def images(count=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(count, 1, 8, 8)).astype(np.float32), np.arange(count) % 3


# ----- freeze and unfreeze ----------------------------------------------------------------------------
def test_freeze_matches_whole_names_and_frozen_parameters_get_no_gradient_nor_update():
    model = small_cnn()
    frozen = model.freeze("features")
    assert frozen == ["features.0.weight", "features.0.bias", "features.2.weight", "features.2.bias"]
    assert all(p.requires_grad for name, p in model.named_parameters() if name.startswith(("features2", "head")))
    before = {k: v.copy() for k, v in model.state_dict().items()}
    optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)   # decay would move them too
    x, y = images()
    for _ in range(2):
        loss = tinycnn.functions.softmax_cross_entropy(model(tinycnn.Tensor(x)), y)
        optimizer.zero_grad()
        loss.backward()
        assert all(p.grad is None for name, p in model.named_parameters() if name in frozen)
        optimizer.step()
    for name, p in model.named_parameters():
        assert np.array_equal(p.data, before[name]) == (name in frozen), name
    assert model.unfreeze("features.0") == ["features.0.weight", "features.0.bias"]
    assert model.features[0].weight.requires_grad and not model.features[2].weight.requires_grad
    assert len(model.freeze()) == 8 and len(model.unfreeze()) == 8      # no prefix: every parameter


def test_freeze_names_the_prefix_it_cannot_find():
    with pytest.raises(ValueError, match=r"freeze: no parameter name starts with 'feature'; the model's top-level "
                                         r"names are \['features', 'features2', 'head'\]"):
        small_cnn().freeze("feature")
    with pytest.raises(TypeError, match="freeze: prefixes are parameter names"):
        small_cnn().freeze(["features"])


def test_frozen_batchnorm_in_eval_mode_keeps_its_statistics_through_fit_and_fusion():
    x, y = images(24)
    model = small_cnn()
    model.freeze("features", bn_eval=True)
    bn = model.features[2]
    mean, var = bn.running_mean.copy(), bn.running_var.copy()
    assert not bn.training and model.train().features[2].training is False
    fit(model, DataLoader((x, y), batch_size=8), optimizer=SGD(model.parameters(), lr=0.1), epochs=2, verbose=False)
    assert type(model.features[2]).__name__ == "ReLUBatchNorm2d"        # fit fused it, the flag went along
    np.testing.assert_array_equal(model.features[2].running_mean, mean)
    np.testing.assert_array_equal(model.features[2].running_var, var)
    model.unfreeze("features")
    assert model.train().features[2].training
    fit(model, DataLoader((x, y), batch_size=8), optimizer=SGD(model.parameters(), lr=0.1), epochs=1, verbose=False)
    assert not np.array_equal(model.features[2].running_mean, mean)

    plain = small_cnn()
    plain.freeze("features")                                       # PyTorch's default: statistics still move
    fit(plain, DataLoader((x, y), batch_size=8), optimizer=SGD(plain.parameters(), lr=0.1), epochs=1, verbose=False)
    assert not np.array_equal(plain.features[2].running_mean, mean)


# ----- replace_head on every zoo model ------------------------------------------------------------------
# the cheapest build and input each model takes: its own size unless global pooling allows 32x32
CHEAP = {"alexnet": ({"variant": "torchvision"}, 63), "googlenet": ({"variant": "torchvision"}, 32),
         "inception_v3": ({}, 75), "xception": ({}, 71), "deepergooglenet": ({"input_shape": (3, 32, 32)}, 32)}


@pytest.mark.parametrize("name", models.available())
def test_replace_head_gives_every_zoo_model_new_classes(name):
    options, size = CHEAP.get(name, ({"input_shape": (3, 32, 32)} if name.startswith("vgg") else {}, 32))
    tinycnn.manual_seed(0)
    model = models.get(name, num_classes=3, **options)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    replaced = models.replace_head(model, 7)
    state = model.state_dict()
    assert list(state) == list(before)                                 # same names, same order
    changed = {k for k in state if state[k].shape != before[k].shape}
    assert changed and all(any(k.startswith(r + ".") for r in replaced) for k in changed)
    for key in state:
        if not any(key.startswith(r + ".") for r in replaced):
            np.testing.assert_array_equal(state[key], before[key])
    for layer_name in replaced:
        layer = model.get_submodule(layer_name)
        assert (layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels) == 7
    with tinycnn.no_grad():
        out = model.eval()(tinycnn.Tensor(np.zeros((1, model.input_shape[0], size, size), np.float32)))
    assert out.shape == (1, 7)
    if name in ("googlenet", "inception_v3"):
        assert len(replaced) == (3 if name == "googlenet" else 2)      # the auxiliary heads too


def test_replace_head_checks_num_classes():
    with pytest.raises(ValueError, match="replace_head: num_classes must be an int >= 1, got 0"):
        models.replace_head(models.get("lenet"), 0)


# ----- extract_features ----------------------------------------------------------------------------
def test_extract_features_returns_the_layers_output_and_skips_the_rest():
    model = small_cnn()
    model.train()
    calls = []
    model.head.register_forward_hook(lambda *args: calls.append(1))
    x, y = images(10)
    features, labels = extract_features(model, "features2", DataLoader((x, y), batch_size=4))
    assert features.shape == (10, 8) and isinstance(features, np.ndarray)
    np.testing.assert_array_equal(labels, y)
    model.eval()
    with tinycnn.no_grad():
        expected = model.features2(model.features(tinycnn.Tensor(x))).numpy()
    np.testing.assert_allclose(features, expected, rtol=1e-6, atol=1e-6)   # batches of 4 vs one of 10: same float32 ops
    assert not calls                                                # the head never ran
    conv, _ = extract_features(small_cnn(), "features.0", [(x, y)])
    assert conv.shape == (10, 4 * 8 * 8)                            # (N, C, H, W) flattened
    assert model.eval().training is False and small_cnn().training  # the mode is given back
    with pytest.raises(AttributeError, match="no submodule 'classifier'"):
        extract_features(model, "classifier", [(x, y)])


# ----- LogisticRegression ---------------------------------------------------------------------------
def test_logistic_regression_separates_a_separable_problem_with_any_labels():
    rng = np.random.default_rng(0)
    centres = np.array([[4, 0, 0], [0, 4, 0], [0, 0, 4]], dtype=np.float32)
    x = np.concatenate([c + rng.normal(size=(30, 3)) * 0.5 for c in centres]).astype(np.float32)
    y = np.repeat(np.array(["cat", "dog", "emu"]), 30)
    head = LogisticRegression(epochs=100).fit(x, y)
    assert head.score(x, y) == 1.0
    assert list(head.classes_) == ["cat", "dog", "emu"]
    assert head.predict(centres).tolist() == ["cat", "dog", "emu"]
    np.testing.assert_allclose(head.predict_proba(x).sum(axis=1), 1.0, rtol=1e-6)
    assert head.history[-1] < head.history[0]
    with pytest.raises(ValueError, match=r"fitted on 3 features, got 2"):
        head.predict(x[:, :2])


def test_logistic_regression_equals_a_torch_softmax_regression_with_the_same_steps():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 6)).astype(np.float32) * 3 + 1
    y = rng.integers(0, 4, size=40)
    ours = LogisticRegression(l2=0.01, lr=0.2, momentum=0.9, epochs=30).fit(x, y)
    z = torch.tensor((x - x.mean(axis=0)) / x.std(axis=0))
    w = torch.zeros(4, 6, requires_grad=True)
    b = torch.zeros(4, requires_grad=True)
    optimizer = torch.optim.SGD([w, b], lr=0.2, momentum=0.9)
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(z @ w.T + b, torch.tensor(y)) + 0.01 / 2 * (w * w).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    # float32 on both sides through 30 momentum steps: relative to the weights' scale
    scale = float(w.detach().abs().max())
    np.testing.assert_allclose(ours.weight, w.detach().numpy(), rtol=1e-4, atol=1e-4 * scale)
    np.testing.assert_allclose(ours.bias, b.detach().numpy(), rtol=1e-4, atol=1e-4 * scale)


# ----- the example -------------------------------------------------------------------------------------
def test_the_transfer_learning_example_runs_on_a_tiny_dataset(tmp_path, monkeypatch, capsys):
    from test_cli import fake_mnist
    fake_mnist(tmp_path / "data" / "fashion-mnist", train_count=100, test_count=50)
    monkeypatch.setenv("TINYCNN_DATA", str(tmp_path / "data"))
    spec = importlib.util.spec_from_file_location("transfer_learning", EXAMPLES / "transfer_learning.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    results = example.main(["--per-task", "50", "--test-per-task", "25", "--epochs", "1", "--batch-size", "10"])
    assert set(results) == {"source", "feature extraction", "fine-tuning", "from scratch"}
    for name, accuracy in results.items():
        assert 0.0 <= accuracy <= 1.0, name
    out = capsys.readouterr().out
    assert "feature extraction" in out and "fine-tuning" in out and "from scratch" in out
