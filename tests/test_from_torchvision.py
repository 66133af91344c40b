"""tinycnn.models.from_torchvision against torchvision itself: same weights, same logits.

torchvision builds every model with random weights (nothing is downloaded); BatchNorm's
running statistics, gammas, betas and every bias are randomised too, so a statistic or bias
loaded into the wrong place changes the logits. Models run in eval mode, batch 1, at the
smallest input each accepts. The deepest variants (VGG-13/16/19, ResNet-101/152,
DenseNet-169/201/161) share their key map and builder code with a depth that runs forward
here; for them the test loads torchvision's exact key set and shapes (one constant per array,
shapes from PyTorch's meta device: no memory, no init) and checks every array landed in its place.
"""
import re
import sys
import types

import numpy as np
import pytest

import tinycnn
import tinycnn.models as models
from tinycnn.models.layers import AdaptiveAvgPool2d, TransformInput

torch = pytest.importorskip("torch")


def torchvision_models():
    """``torchvision.models``, importable with the CPU-only torch.

    torchvision's PyPI wheel links CUDA libraries the CPU torch lacks, so importing
    ``torchvision._meta_registrations`` fails registering ``torchvision::nms``; the model
    builders never use it, so an empty module stands in for it.
    """
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    return pytest.importorskip("torchvision.models")


def torchvision_model(name, **options):
    """torchvision's ``name`` with random weights, BN statistics and biases, in eval mode."""
    if name in ("googlenet", "inception_v3"):
        options.setdefault("init_weights", False)      # PyTorch's default init (scipy's is slow, and explodes logits)
    model = getattr(torchvision_models(), name)(weights=None, **options)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(0.1 * torch.randn(n, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(n, generator=generator))
                module.weight.copy_(0.5 + torch.rand(n, generator=generator))
                module.bias.copy_(0.1 * torch.randn(n, generator=generator))
            elif isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)) and module.bias is not None:
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
    return model.eval()


def assert_same_logits(ours, theirs, x):
    """Eval-mode outputs within 1e-4 of the logits' scale."""
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    with tinycnn.no_grad():
        got = ours.eval()(tinycnn.Tensor(x)).numpy()
    assert got.shape == expected.shape
    # float32: both sum thousands of products per output in different orders (im2row/Winograd vs
    # oneDNN), each layer adding ~1e-6 relative rounding; measured 1e-7 .. 2e-6 here, so 1e-4 of the
    # largest logit is far above rounding and far below any wrong weight, statistic or stride.
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max(), np.abs(got - expected).max()


def random_input(size, seed=0):
    return np.random.default_rng(seed).normal(size=(1, 3, size, size)).astype(np.float32)


# ----- logits equal torchvision's ------------------------------------------------------------------
# (torchvision name, smallest input it accepts here, options for both builders)
FORWARD = [
    ("alexnet", 63, {}),
    ("vgg11_bn", 32, {}),
    ("resnet18", 32, {}), ("resnet34", 32, {}), ("resnet50", 32, {}), ("resnext50_32x4d", 32, {}),
    ("densenet121", 32, {}),
    ("googlenet", 32, {}), ("googlenet", 32, {"transform_input": True}),
    ("inception_v3", 75, {"transform_input": True}),
    ("mobilenet_v2", 32, {}),
    ("shufflenet_v2_x0_5", 32, {}), ("shufflenet_v2_x1_0", 32, {}),
    ("shufflenet_v2_x1_5", 32, {}), ("shufflenet_v2_x2_0", 32, {}),
]


@pytest.mark.parametrize("name, size, options", FORWARD, ids=[f"{n}-{s}{'-t' if o else ''}" for n, s, o in FORWARD])
def test_logits_equal_torchvision(name, size, options):
    theirs = torchvision_model(name, num_classes=10, **options)
    ours = models.from_torchvision(name, theirs.state_dict(), **options)
    assert ours.state_dict().keys() and all(np.isfinite(a).all() for a in ours.state_dict().values())
    assert_same_logits(ours, theirs, random_input(size))


DEEPER = ["vgg11", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "resnet101", "resnet152",
          "densenet169", "densenet201", "densenet161"]


@pytest.mark.parametrize("name", DEEPER)
def test_deeper_variants_take_torchvision_key_set_and_shapes(name):
    with torch.device("meta"):
        theirs = getattr(torchvision_models(), name)()
    state = theirs.state_dict()
    # a distinct value per array (a read-only broadcast: no memory), so that an array loaded into
    # another place of the same shape is seen
    value = {key: index for index, key in enumerate(state)}
    arrays = {key: np.broadcast_to(np.float32(value[key]), tuple(tensor.shape)) for key, tensor in state.items()
              if not key.endswith("num_batches_tracked")}
    net = models.from_torchvision(name, arrays)
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in theirs.parameters())
    # both build their layers in the network's order, so the n-th parameter (buffer) of each is one array
    ours = [p.data for _, p in net.named_parameters()] + [b for _, b in net.named_buffers()]
    expected = [value[k] for k, _ in theirs.named_parameters()] + [value[k] for k, _ in theirs.named_buffers()
                                                                    if not k.endswith("num_batches_tracked")]
    assert [float(a.flat[0]) for a in ours] == expected
    assert all(a.min() == a.max() for a in ours)
    if name.startswith("resnet"):   # torchvision's v1.5: the stride on the 3x3 of each stage's first bottleneck
        for stage in (net.layer2, net.layer3, net.layer4):
            assert stage[0].conv1.stride == 1 and stage[0].conv2.stride == 2


def test_resnet50_gets_the_v1_5_stride_and_the_paper_variant_computes_other_logits():
    theirs = torchvision_model("resnet50", num_classes=10)
    net = models.from_torchvision("resnet50", theirs.state_dict())
    for stage in (net.layer2, net.layer3, net.layer4):
        assert stage[0].conv1.stride == 1 and stage[0].conv2.stride == 2
    # the zoo's default (stride on the 1x1) takes the same weights without an error but is another network
    paper = models.get("resnet50", num_classes=10)
    paper.load_state_dict({key: value.numpy() for key, value in theirs.state_dict().items()
                           if not key.endswith("num_batches_tracked")})
    x = random_input(32)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    with tinycnn.no_grad():
        other = paper.eval()(tinycnn.Tensor(x)).numpy()
    assert np.abs(other - expected).max() > 1e-2 * np.abs(expected).max()


def test_auxiliary_heads_equal_torchvision():
    generator = np.random.default_rng(1)
    for name, aux_names, channels, size in (("googlenet", ("aux1", "aux2"), (512, 528), 14),
                                            ("inception_v3", ("AuxLogits",), (768,), 17)):
        theirs = torchvision_model(name, num_classes=10, aux_logits=True)
        ours = models.from_torchvision(name, theirs.state_dict()).eval()
        assert ours.aux_logits
        for aux, c in zip(aux_names, channels):
            x = generator.normal(size=(1, c, size, size)).astype(np.float32)
            assert_same_logits(getattr(ours, aux), getattr(theirs, aux), x)
    without = models.from_torchvision("googlenet", torchvision_model("googlenet", aux_logits=False).state_dict())
    assert not without.aux_logits and not hasattr(without, "aux1")


def test_a_torch_save_file_loads_and_converts_to_a_checkpoint_the_cli_reads(tmp_path):
    from tinycnn.cli_setup import model_from_checkpoint
    from tinycnn.train import read_checkpoint

    theirs = torchvision_model("shufflenet_v2_x0_5", num_classes=3)
    torch.save(theirs.state_dict(), tmp_path / "shufflenet.pth")
    x = random_input(32)
    assert_same_logits(models.from_torchvision("shufflenet_v2_x0_5", str(tmp_path / "shufflenet.pth")), theirs, x)

    models.convert_torchvision("shufflenet_v2_x0_5", tmp_path / "shufflenet.pth", tmp_path / "shufflenet.npz",
                               classes=["cat", "dog", "emu"])
    checkpoint = read_checkpoint(tmp_path / "shufflenet.npz")
    assert checkpoint["meta"]["model"] == "shufflenet_v2_x0_5" and checkpoint["meta"]["input_shape"] == [3, 224, 224]
    assert checkpoint["meta"]["classes"] == ["cat", "dog", "emu"]
    np.testing.assert_allclose(checkpoint["preprocessing"]["mean"], [0.485, 0.456, 0.406], rtol=1e-6)
    np.testing.assert_allclose(checkpoint["preprocessing"]["std"], [0.229, 0.224, 0.225], rtol=1e-6)
    model, _, classes = model_from_checkpoint(checkpoint, "shufflenet.npz")
    assert classes == ["cat", "dog", "emu"]
    assert_same_logits(model, theirs, x)


def test_converted_variant_options_rebuild_the_same_network(tmp_path):
    from tinycnn.cli_setup import model_from_checkpoint
    from tinycnn.train import read_checkpoint

    theirs = torchvision_model("googlenet", num_classes=4, aux_logits=False, transform_input=True)
    models.convert_torchvision("googlenet", dict(theirs.state_dict()), tmp_path / "g.npz", transform_input=True)
    checkpoint = read_checkpoint(tmp_path / "g.npz")
    assert checkpoint["meta"]["model_options"]["variant"] == "torchvision"
    assert checkpoint["meta"]["classes"] == ["0", "1", "2", "3"]
    model, _, _ = model_from_checkpoint(checkpoint, "g.npz")
    assert_same_logits(model, theirs, random_input(32))
    with pytest.raises(ValueError, match="2 class names for a 4-class model"):
        models.convert_torchvision("googlenet", dict(theirs.state_dict()), tmp_path / "h.npz", classes=["a", "b"])


def test_old_densenet_key_names_load():
    state = {key: value.numpy() for key, value in torchvision_model("densenet121", num_classes=10).state_dict().items()
             if not key.endswith("num_batches_tracked")}
    # torchvision's downloadable DenseNet files write denselayer1.norm.1.weight for denselayer1.norm1.weight
    old = {re.sub(r"(denselayer\d+\.(?:norm|conv))([12])\.", r"\1.\2.", key): value for key, value in state.items()}
    assert "features.denseblock1.denselayer1.norm.1.weight" in old and len(old) == len(state)
    ours = models.from_torchvision("densenet121", old).state_dict()
    assert ours.keys() == state.keys()
    assert all(np.array_equal(ours[key], value) for key, value in state.items())


# ----- errors ------------------------------------------------------------------------------------
def mobilenet_state():
    return {key: value.numpy() for key, value in torchvision_model("mobilenet_v2").state_dict().items()}


def test_missing_unexpected_and_mismatched_keys_are_named():
    state = mobilenet_state()
    with pytest.raises(ValueError, match=r"unknown torchvision model 'resnet19'.*resnet18"):
        models.from_torchvision("resnet19", state)
    with pytest.raises(TypeError, match="dict of arrays or a file path"):
        models.from_torchvision("mobilenet_v2", [1, 2])
    with pytest.raises(TypeError, match=r"'features\.0\.0\.weight' is not an array NumPy reads"):
        models.from_torchvision("mobilenet_v2", {**state, "features.0.0.weight": torch.zeros(2, dtype=torch.bfloat16)})
    with pytest.raises(TypeError, match=r"'features\.0\.0\.weight' holds <U1, not numbers"):
        models.from_torchvision("mobilenet_v2", {**state, "features.0.0.weight": np.array(["a"])})
    missing = dict(state)
    del missing["features.3.conv.1.1.running_var"]
    with pytest.raises(KeyError, match=r"missing \(tinycnn's names\) \[features\.3\.conv\.1\.1\.running_var\]"):
        models.from_torchvision("mobilenet_v2", missing)
    extra = {**state, "features.0.extra.weight": np.zeros(3, np.float32)}
    with pytest.raises(KeyError, match=r"unexpected \(torchvision's names\) \[features\.0\.extra\.weight\]"):
        models.from_torchvision("mobilenet_v2", extra)
    wrong = {**state, "features.1.conv.0.0.weight": np.zeros((32, 1, 5, 5), np.float32)}
    with pytest.raises(ValueError, match=re.escape("'features.1.conv.0.0.weight' has shape (32, 1, 5, 5) in the "
                                                   "state_dict, tinycnn's 'features.1.conv.0.0.weight' has "
                                                   "shape (32, 1, 3, 3)")):
        models.from_torchvision("mobilenet_v2", wrong)
    with pytest.raises(KeyError, match=r"no 'classifier\.1\.weight'"):
        models.from_torchvision("mobilenet_v2", {key: value for key, value in state.items() if "classifier" not in key})
    resnet = {key: value.numpy() for key, value in torchvision_model("resnet18").state_dict().items()}
    with pytest.raises(KeyError, match=r"missing \(tinycnn's names\) \[stem\.conv1_bn\.weight.*unexpected "
                                       r"\(torchvision's names\) \[bn1\.weight, .* and \d+ more\]"):
        models.from_torchvision("googlenet", {**resnet, "fc.weight": resnet["fc.weight"]})


# ----- the builders' torchvision variants ------------------------------------------------------------
# (the forward tests load every array with its exact shape; these pin the counts the docstrings state)
@pytest.mark.parametrize("name, options, count", [
    ("googlenet", {"variant": "torchvision"}, 13_004_888),
    ("googlenet", {"variant": "torchvision", "aux_logits": False}, 6_624_904),
    *[(f"shufflenet_v2_{w}", {}, n) for w, n in (("x0_5", 1_366_792), ("x1_0", 2_278_604),
                                                 ("x1_5", 3_503_624), ("x2_0", 7_393_996))],
])
def test_variant_parameter_counts_equal_torchvision(name, options, count):
    with torch.device("meta"):
        torchvision_options = {"init_weights": False, **options} if name == "googlenet" else {}
        torchvision_options.pop("variant", None)
        expected = sum(p.numel() for p in getattr(torchvision_models(), name)(**torchvision_options).parameters())
    assert sum(p.numel() for p in models.get(name, **options).parameters()) == expected == count


def test_variant_options_are_checked():
    with pytest.raises(ValueError, match="AlexNet: variant must be 'paper' or 'torchvision'"):
        models.get("alexnet", variant="keras")
    with pytest.raises(ValueError, match="GoogLeNet: variant must be"):
        models.get("googlenet", variant="v2")
    with pytest.raises(ValueError, match="width_mult must be one of"):
        models.get("shufflenet_v2_x1_0").__class__(width_mult=0.75)
    with pytest.raises(ValueError, match="at least 32"):
        models.get("vgg11", adaptive_pool=(7, 7), input_shape=(3, 16, 16))


@pytest.mark.parametrize("size, output", [((14, 14), 4), ((1, 1), 7), ((5, 9), (3, 2)), ((8, 8), 8), ((6, 6), 1)])
def test_adaptive_avg_pool_equals_pytorch(size, output):
    x = np.random.default_rng(2).normal(size=(2, 3, *size)).astype(np.float32)
    expected = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(x), output).numpy()
    got = AdaptiveAvgPool2d(output)(tinycnn.Tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)   # float32: a mean of <= 25 values


def test_adaptive_avg_pool_and_transform_input_pass_gradcheck():
    x = tinycnn.Tensor(np.random.default_rng(3).normal(size=(1, 3, 5, 7)), requires_grad=True)
    assert tinycnn.gradcheck(AdaptiveAvgPool2d((3, 4)), [x])
    assert tinycnn.gradcheck(TransformInput(), [x])
    with pytest.raises(ValueError, match=r"AdaptiveAvgPool2d: expected a \(N, C, H, W\) input"):
        AdaptiveAvgPool2d(2)(tinycnn.Tensor(np.zeros((3, 4, 4))))
    with pytest.raises(ValueError, match=r"TransformInput: expected \(N, 3, H, W\)"):
        TransformInput()(tinycnn.Tensor(np.zeros((1, 1, 4, 4))))
