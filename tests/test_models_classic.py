"""Classic architectures: LeNet, AlexNet, VGG A-E, MiniVGG, NIN, GoogLeNet, Inception v3,
MiniGoogLeNet, DeeperGoogLeNet, and the model registry.

Parameter counts are asserted exactly: against published numbers (Keras, torchvision, the
lecture notes) where they exist, otherwise against counts derived in this file from the papers'
tables with the textbook formulas (conv: k*k*C_in*C_out + C_out, dense: in*out + out,
Keras BatchNorm: 2 trainable + 2 non-trainable per channel), independent of the model code.

Real forward + backward at the native input size: LeNet, AlexNet (227), MiniVGG, NIN,
GoogLeNet (224, training mode with both auxiliary heads, then eval), MiniGoogLeNet (32),
DeeperGoogLeNet (64). VGG runs at 32x32 (fc1 resized; the conv stack is the real one),
Inception v3 at 75x75 (eval mode) without the auxiliary head, and its auxiliary head on its native
17x17x768 input.
"""
import numpy as np
import pytest

import tinycnn
import tinycnn.functions as F
import tinycnn.models as models
import tinycnn.nn as nn
import tinycnn.optim as optim
from tinycnn import Tensor
from tinycnn.models.googlenet import GOOGLENET_INCEPTIONS
from tinycnn.summary import summary


def trainable(model):
    return sum(p.numel() for p in model.parameters())


def buffers(model):
    return sum(int(b.size) for b in model.buffers())


def conv(c_in, c_out, k, bias=True):
    kh, kw = (k, k) if isinstance(k, int) else k
    return kh * kw * c_in * c_out + (c_out if bias else 0)


def dense(n_in, n_out):
    return n_in * n_out + n_out


# ----- registry ------------------------------------------------------------------------------------

MY_MODELS = ["lenet", "alexnet", "vgg11", "vgg11_lrn", "vgg13", "vgg16c", "vgg16", "vgg19", "minivgg", "nin",
             "googlenet", "inception_v3", "minigooglenet", "deepergooglenet"]


def test_registry_lists_sorted_names_and_resolves_aliases():
    names = models.available()
    assert names == sorted(names)
    assert set(MY_MODELS) <= set(names)
    assert "vgg_d" not in names and "vgg_d" in models.available(include_aliases=True)
    assert models.resolve("VGG_D") == "vgg16"
    assert models.resolve("vgg_a_lrn") == "vgg11_lrn"
    assert models.resolve("LeNet5") == "lenet"
    assert models.get("vgg_a", input_shape=(3, 32, 32)).config == "A"


def test_registry_unknown_name_lists_known_ones():
    with pytest.raises(ValueError, match=r"unknown model 'vgg17'.*alexnet.*minivgg"):
        models.get("vgg17")
    with pytest.raises(TypeError, match="name must be a string"):
        models.get(16)


def test_registry_num_classes_and_options_round_trip():
    assert models.get("lenet").classifier.fc3.out_features == 10             # builder default
    net = models.get("lenet", num_classes=5, in_channels=3, activation="relu")
    assert net.classifier.fc3.out_features == 5 and net.features.conv1.in_channels == 3
    assert isinstance(net.features.act1, nn.ReLU)
    with pytest.raises(ValueError, match="activation"):
        models.get("lenet", activation="swish")


def test_register_refuses_a_taken_name():
    with pytest.raises(ValueError, match="already taken"):
        models.register("minivgg")(lambda num_classes=10: None)
    with pytest.raises(ValueError, match="already taken"):
        models.register("brand_new_name", aliases=("vgg_e",))(lambda num_classes=10: None)
    assert "brand_new_name" not in models.available()


# ----- parameter counts ----------------------------------------------------------------------------

def test_lenet_counts_match_the_layer_formulas():
    expected = conv(1, 6, 5) + conv(6, 16, 5) + dense(400, 120) + dense(120, 84) + dense(84, 10)
    assert expected == 61_706
    assert trainable(models.get("lenet")) == expected
    assert trainable(models.get("lenet", input_size=28)) == expected         # padding adds no weights
    assert trainable(models.get("lenet", in_channels=3)) == expected + conv(2, 6, 5, bias=False)


def test_alexnet_counts_match_the_lecture_notes_per_layer_numbers():
    net = models.get("alexnet")
    convs = [trainable(getattr(net.features, f"conv{i}")) for i in range(1, 6)]
    assert convs == [34_944, 614_656, 885_120, 1_327_488, 884_992]    # the lecture notes' "you can verify ..."
    assert trainable(net.classifier.fc8) == 4_097_000                   # the lecture notes' FC example
    assert trainable(net) == 62_378_344
    assert net.input_shape == (3, 227, 227)


# Published counts at 224x224 (torchvision vgg11/13/16/19 and their _bn versions; Keras VGG16),
# and the paper's Table 2 in millions.
VGG_REFERENCE = {"vgg11": (132_863_336, 133), "vgg11_lrn": (132_863_336, 133), "vgg13": (133_047_848, 133),
                 "vgg16c": (133_638_952, 134), "vgg16": (138_357_544, 138), "vgg19": (143_667_240, 144)}
VGG_BN_REFERENCE = {"vgg11": 132_868_840, "vgg13": 133_053_736, "vgg16": 138_365_992, "vgg19": 143_678_248}
# Built at 32x32 to stay fast: fc1 then has 512 instead of 25,088 inputs (x 4096 weights).
# (tests/test_summary.py builds VGG-16 at full size and checks 138,357,544 directly.)
FC1_SHRINK = (25_088 - 512) * 4096


@pytest.mark.parametrize("name", sorted(VGG_REFERENCE))
def test_vgg_counts_match_table_2(name):
    exact, millions = VGG_REFERENCE[name]
    net = models.get(name, input_shape=(3, 32, 32))
    assert trainable(net) + FC1_SHRINK == exact
    assert round((trainable(net) + FC1_SHRINK) / 1e6) == millions
    assert buffers(net) == 0


@pytest.mark.parametrize("name", sorted(VGG_BN_REFERENCE))
def test_vgg_batch_norm_counts_match_torchvision(name):
    net = models.get(name, input_shape=(3, 32, 32), batch_norm=True)
    assert trainable(net) + FC1_SHRINK == VGG_BN_REFERENCE[name]
    channels = sum(m.out_channels for m in net.features.modules() if isinstance(m, nn.Conv2d))
    assert buffers(net) == 2 * channels                                       # running mean and var


def test_vgg_lrn_and_1x1_layers_sit_where_table_1_puts_them():
    a_lrn = models.get("vgg11_lrn", input_shape=(3, 32, 32)).features
    names = [name for name, _ in a_lrn.named_children()]
    assert names[:4] == ["block1_conv1", "block1_relu1", "block1_lrn", "block1_pool"]
    c = models.get("vgg16c", input_shape=(3, 32, 32)).features
    assert [c.block3_conv3.kernel_size, c.block4_conv3.kernel_size, c.block5_conv3.kernel_size] == [(1, 1)] * 3
    with pytest.raises(ValueError, match="multiples of 32"):
        models.get("vgg16", input_shape=(3, 100, 100))


def test_minivgg_counts_match_the_keras_summary():
    net = models.get("minivgg")
    assert (trainable(net), buffers(net)) == (2_169_770, 1_408)
    assert trainable(net) + buffers(net) == 2_171_178
    mnist = models.get("minivgg", input_shape=(1, 28, 28))
    # one input channel (-2 x 9 x 32 weights) and a 64 x 7 x 7 flatten instead of 64 x 8 x 8
    assert trainable(mnist) == 2_169_770 - 2 * 9 * 32 - (4096 - 3136) * 512


def test_nin_counts_match_the_caffe_configuration():
    blocks = [(3, (192, 160, 96), 5), (96, (192, 192, 192), 5), (192, (192, 192, 10), 3)]
    expected = sum(conv(c_in, a, k) + conv(a, b, 1) + conv(b, c, 1) for c_in, (a, b, c), k in blocks)
    assert expected == 966_986
    assert trainable(models.get("nin")) == expected


def inception_params(c_in, n1, r3, n3, r5, n5, proj):
    return (conv(c_in, n1, 1) + conv(c_in, r3, 1) + conv(r3, n3, 3) + conv(c_in, r5, 1) + conv(r5, n5, 5)
            + conv(c_in, proj, 1))


def googlenet_table_params():
    """Main network and auxiliary heads from the paper's table as the lecture notes give it (biases, no BatchNorm)."""
    stem = conv(3, 64, 7) + conv(64, 64, 1) + conv(64, 192, 3)
    rows = [(192, 64, 96, 128, 16, 32, 32), (256, 128, 128, 192, 32, 96, 64), (480, 192, 96, 208, 16, 48, 64),
            (512, 160, 112, 224, 24, 64, 64), (512, 128, 128, 256, 24, 64, 64), (512, 112, 144, 288, 32, 64, 64),
            (528, 256, 160, 320, 32, 128, 128), (832, 256, 160, 320, 32, 128, 128),
            (832, 384, 192, 384, 48, 128, 128)]
    main = stem + sum(inception_params(*row) for row in rows) + dense(1024, 1000)
    aux = [conv(c_in, 128, 1) + dense(2048, 1024) + dense(1024, 1000) for c_in in (512, 528)]
    return main, aux


def test_googlenet_counts_match_the_table():
    main, (aux1, aux2) = googlenet_table_params()
    net = models.get("googlenet")
    assert (trainable(net.aux1), trainable(net.aux2)) == (aux1, aux2) == (3_188_840, 3_190_888)
    assert trainable(net) == main + aux1 + aux2 == 13_378_280
    assert trainable(models.get("googlenet", aux_logits=False)) == main == 6_998_552
    assert buffers(net) == 0 and net.input_shape == (3, 224, 224)
    # The table's per-module output depths
    depths = [256, 480, 512, 512, 512, 528, 832, 832, 1024]
    assert [getattr(net, f"inception_{name}").out_channels for name in GOOGLENET_INCEPTIONS] == depths


def test_googlenet_batch_norm_is_torchvisions_with_real_5x5_branches():
    # torchvision's googlenet: 6,624,904 parameters, but its "5x5" branches are 3x3 convolutions.
    extra_5x5_weights = 16 * sum(r5 * n5 for _, _, _, _, r5, n5, _ in GOOGLENET_INCEPTIONS.values())
    assert trainable(models.get("googlenet", batch_norm=True, aux_logits=False)) == 6_624_904 + extra_5x5_weights


def test_inception_v3_counts_match_torchvision():
    assert trainable(models.get("inception_v3")) == 27_161_264
    assert trainable(models.get("inception_v3", aux_logits=False)) == 23_834_568


def keras_conv_module(c_in, c_out, k):
    """Keras conv (with bias) + BatchNormalization: (trainable, non-trainable)."""
    return conv(c_in, c_out, k) + 2 * c_out, 2 * c_out


def sum_pairs(pairs):
    return tuple(map(sum, zip(*pairs)))


def test_minigooglenet_counts_match_keras():
    units = [keras_conv_module(3, 96, 3)]
    channels = 96

    def inception(n1, n3):
        nonlocal channels
        units.extend([keras_conv_module(channels, n1, 1), keras_conv_module(channels, n3, 3)])
        channels = n1 + n3

    def downsample(n3):
        nonlocal channels
        units.append(keras_conv_module(channels, n3, 3))
        channels += n3

    inception(32, 32), inception(32, 48), downsample(80)
    for n1, n3 in ((112, 48), (96, 64), (80, 80), (48, 96)):
        inception(n1, n3)
    downsample(96), inception(176, 160), inception(176, 160)
    expected_trainable, expected_frozen = sum_pairs(units)
    expected_trainable += dense(channels, 10)
    net = models.get("minigooglenet")
    assert (trainable(net), buffers(net)) == (expected_trainable, expected_frozen)
    assert trainable(net) + buffers(net) == 1_656_250


def deepergooglenet_expected(inception_4=True):
    units = [keras_conv_module(3, 64, 5), keras_conv_module(64, 64, 1), keras_conv_module(64, 192, 3)]
    names = ["3a", "3b"] + (["4a", "4b", "4c", "4d", "4e"] if inception_4 else [])
    for name in names:
        c_in, n1, r3, n3, r5, n5, proj = GOOGLENET_INCEPTIONS[name]
        units += [keras_conv_module(c_in, n1, 1), keras_conv_module(c_in, r3, 1), keras_conv_module(r3, n3, 3),
                  keras_conv_module(c_in, r5, 1), keras_conv_module(r5, n5, 5), keras_conv_module(c_in, proj, 1)]
    weights, frozen = sum_pairs(units)
    return weights + dense(832 if inception_4 else 480, 200), frozen


@pytest.mark.parametrize("inception_4", [True, False])
def test_deepergooglenet_counts_match_the_tiny_imagenet_table(inception_4):
    net = models.get("deepergooglenet", inception_4=inception_4)
    assert (trainable(net), buffers(net)) == deepergooglenet_expected(inception_4)
    if inception_4:
        assert 3.6e6 <= trainable(net) + buffers(net) < 3.7e6                 # the lecture notes' "3.6M Params"


# ----- forward and backward --------------------------------------------------------------------------

def random_images(batch, shape, seed=0):
    return Tensor(np.random.default_rng(seed).normal(size=(batch,) + tuple(shape)).astype(np.float32))


def assert_trains(net, x, num_classes, aux_heads=0, training=True):
    """One forward/backward: right output shapes, a finite gradient on every parameter."""
    net.train(training)
    outputs = net(x)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    assert len(outputs) == 1 + aux_heads
    labels = np.arange(x.shape[0]) % num_classes
    loss = F.softmax_cross_entropy(outputs[0], labels)
    for aux in outputs[1:]:
        loss = loss + 0.3 * F.softmax_cross_entropy(aux, labels)             # GoogLeNet's auxiliary weight
    for out in outputs:
        assert out.shape == (x.shape[0], num_classes)
        assert np.isfinite(out.numpy()).all()
    net.zero_grad()
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert p.grad.shape == p.shape and np.isfinite(p.grad).all(), name
    assert any(np.abs(p.grad).max() > 0 for p in net.parameters())


CHEAP_MODELS = [   # (name, options, batch, classes)
    ("lenet", {}, 1, 10),
    ("lenet", {"input_size": 28, "in_channels": 3, "activation": "relu"}, 2, 10),
    ("minivgg", {}, 2, 10),
    ("minivgg", {"input_shape": (1, 28, 28)}, 2, 10),
    ("nin", {}, 2, 10),
    ("vgg11", {"input_shape": (3, 32, 32), "num_classes": 10}, 2, 10),
    ("vgg11_lrn", {"input_shape": (3, 32, 32), "num_classes": 10}, 1, 10),
    ("vgg16c", {"input_shape": (3, 32, 32), "num_classes": 10, "batch_norm": True}, 1, 10),
    ("minigooglenet", {}, 1, 10),
    ("deepergooglenet", {}, 1, 200),
    ("deepergooglenet", {"inception_4": False, "activation": "elu", "bn_after_activation": True,
                         "input_shape": (3, 32, 32)}, 2, 200),
]


@pytest.mark.parametrize("name,options,batch,classes", CHEAP_MODELS)
def test_forward_and_backward(name, options, batch, classes):
    tinycnn.manual_seed(0)
    net = models.get(name, **options)
    assert_trains(net, random_images(batch, net.input_shape), classes)


def test_inception_v3_forward_and_backward_at_its_smallest_input():
    """75x75 leaves 1x1 maps after Mixed_7a; eval mode (BatchNorm on running statistics) keeps
    one image enough, and the 299x299 forward too slow for the suite is avoided."""
    tinycnn.manual_seed(0)
    net = models.get("inception_v3", aux_logits=False, num_classes=10)
    assert net.input_shape == (3, 299, 299)
    assert_trains(net, random_images(1, (3, 75, 75)), 10, training=False)


def test_alexnet_forward_and_backward_at_227():
    net = models.get("alexnet", num_classes=10)
    assert_trains(net, random_images(1, (3, 227, 227)), 10)


def test_googlenet_trains_with_two_auxiliary_heads_and_evaluates_without():
    tinycnn.manual_seed(0)
    net = models.get("googlenet", num_classes=10)
    x = random_images(1, (3, 224, 224))
    assert_trains(net, x, 10, aux_heads=2)
    net.eval()
    with tinycnn.no_grad():
        out = net(x)
    assert isinstance(out, Tensor) and out.shape == (1, 10)
    assert models.get("googlenet", aux_logits=False, num_classes=10).train().aux_logits is False


def test_inception_v3_auxiliary_head_on_its_17x17_input():
    tinycnn.manual_seed(0)
    head = models.get("inception_v3", num_classes=10).AuxLogits
    assert trainable(head) == conv(768, 128, 1, bias=False) + 2 * 128 + conv(128, 768, 5, bias=False) + 2 * 768 \
        + dense(768, 10)
    assert_trains(head, random_images(2, (768, 17, 17)), 10)


def test_googlenet_inception_multiply_adds_match_the_ops_column():
    table_ops = {"3a": 128e6, "3b": 304e6, "4a": 73e6, "4b": 88e6, "4c": 100e6, "4d": 119e6, "4e": 170e6,
                 "5a": 54e6, "5b": 71e6}
    rows = summary(models.get("googlenet")).rows
    for name, ops in table_ops.items():
        macs = sum(row.macs for row in rows if row.name.startswith(f"inception_{name}."))
        assert abs(macs / ops - 1) < 0.06, (name, macs)


# ----- overfitting 64 fixed images ---------------------------------------------------------------------

@pytest.mark.parametrize("name,size", [("minivgg", 16), ("minigooglenet", 12)])
def test_overfits_64_random_images(name, size):
    """Random images with random labels (Zhang et al.'s experiment; their Inception-small is MiniGoogLeNet):
    a few full-batch Adam steps reach >= 90% training accuracy (measured on the batch in
    training mode, as Keras reports it). Images smaller than CIFAR's 32x32 keep it fast."""
    tinycnn.manual_seed(0)
    rng = np.random.default_rng(0)
    x = random_images(64, (3, size, size), seed=1)
    labels = rng.integers(0, 10, 64)
    net = models.get(name, input_shape=(3, size, size)).train()
    optimizer = optim.Adam(list(net.parameters()), lr=3e-3)
    history = []
    for _ in range(10):
        logits = net(x)
        history.append(float((logits.numpy().argmax(axis=1) == labels).mean()))
        if history[-1] >= 0.9:
            break
        loss = F.softmax_cross_entropy(logits, labels)
        net.zero_grad()
        loss.backward()
        optimizer.step()
    assert history[0] < 0.5 and history[-1] >= 0.9, history


# ----- explicit fusion ---------------------------------------------------------------------------------

class FunctionCounts(tinycnn.FunctionHook):
    def __init__(self):
        self.names = []

    def forward_postprocess(self, function, inputs, outputs):
        self.names.append(type(function).__name__)


@pytest.mark.parametrize("name,fused_pairs", [("minivgg", 5), ("minigooglenet", 19)])
def test_the_zoo_runs_every_layer_until_fused(name, fused_pairs):
    """The builders fuse nothing: each ReLU runs; nn.fuse then folds every ReLU of these two
    models into a BatchNorm next to it, with the same eval-mode outputs."""
    net = models.get(name, input_shape=(3, 16, 16)).eval()
    x = random_images(2, (3, 16, 16), seed=2)
    with FunctionCounts() as plain:
        expected = net(x).numpy()
    relus = sum(isinstance(m, nn.ReLU) for m in net.modules())
    assert plain.names.count("ReLU") == relus == fused_pairs
    nn.fuse(net)
    fused_kinds = (nn.BatchNormReLU1d, nn.BatchNormReLU2d, nn.ReLUBatchNorm1d, nn.ReLUBatchNorm2d)
    assert sum(isinstance(m, fused_kinds) for m in net.modules()) == fused_pairs
    with FunctionCounts() as fused:
        got = net(x).numpy()
    assert fused.names.count("ReLU") == 0 and fused.names.count("BatchNorm") == plain.names.count("BatchNorm")
    # float32: the fused kernels round as the separate ones do, up to the order of a few sums
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
