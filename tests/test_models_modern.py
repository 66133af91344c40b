"""ResNet, DenseNet, SE-ResNet, ResNeXt, Xception, MobileNet v1/v2, ShuffleNet.

Parameter counts are asserted against the published reference implementations (torchvision
counts parameters only; Keras also counts the BN moving mean/variance, i.e. our buffers) and
against formulas written here from the papers' tables. Forward/backward passes run at the
native size for the CIFAR nets only; ImageNet nets run at a reduced size that their global-pooling
heads accept (32x32, the smallest their five stride-2 steps allow; Xception at Keras' minimum
71x71), to keep the suite fast.
"""
import functools

import numpy as np
import pytest

import tinycnn
import tinycnn.functions as F
import tinycnn.models as models
import tinycnn.nn as nn
from tinycnn import Tensor
from tinycnn.models.resnet import CifarResNet, ZeroPadShortcut
from tinycnn.models.senet import SEBlock
from tinycnn.models.xception import MaxPool2dSame
from tinycnn.summary import summary

CIFAR_DEPTHS = (20, 32, 44, 56, 110)

# name -> (published count, convention); "torchvision" = parameters(), "keras" = parameters() + BN buffers
REFERENCE_COUNTS = {
    "resnet18": (11_689_512, "torchvision"),
    "resnet34": (21_797_672, "torchvision"),
    "resnet50": (25_557_032, "torchvision"),
    "resnet101": (44_549_160, "torchvision"),
    "resnet152": (60_192_808, "torchvision"),
    "densenet121": (7_978_856, "torchvision"),
    "densenet169": (14_149_480, "torchvision"),
    "densenet201": (20_013_928, "torchvision"),
    "densenet161": (28_681_000, "torchvision"),
    "resnext50_32x4d": (25_028_904, "torchvision"),
    "mobilenet_v2": (3_504_872, "torchvision"),
    "xception": (22_910_480, "keras"),
    "mobilenet_v1": (4_253_864, "keras"),
}


@functools.lru_cache(maxsize=None)
def built(name):
    """The model with its default options, built once and shared by the tests that only inspect it."""
    return models.get(name)


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


def count_buffers(model):
    return sum(int(b.size) for b in model.buffers())


# ----- independent parameter formulas from the papers' tables -----------------------------

def bn(channels):
    return 2 * channels


def resnet_formula(blocks, bottleneck, num_classes=1000):
    """He et al. Table 1: 7x7 conv, stages of basic/bottleneck blocks, projection where the shape changes."""
    total = 7 * 7 * 3 * 64 + bn(64)
    in_channels = 64
    for stage, (count, width) in enumerate(zip(blocks, (64, 128, 256, 512))):
        out_channels = width * 4 if bottleneck else width
        for i in range(count):
            if bottleneck:
                total += in_channels * width + bn(width) + 9 * width * width + bn(width)
                total += width * out_channels + bn(out_channels)
            else:
                total += 9 * in_channels * width + bn(width) + 9 * width * width + bn(width)
            if i == 0 and (stage > 0 or in_channels != out_channels):
                total += in_channels * out_channels + bn(out_channels)
            in_channels = out_channels
    return total + in_channels * num_classes + num_classes


def densenet_formula(growth, blocks, init_features, num_classes=1000, imagenet_stem=True):
    """Huang et al.: bottleneck layers BN-1x1(4k)-BN-3x3(k), transitions BN-1x1 halving, final BN, fc."""
    channels = init_features
    total = (7 * 7 * 3 * channels + bn(channels)) if imagenet_stem else 3 * 3 * 3 * channels
    for i, layers in enumerate(blocks):
        for _ in range(layers):
            total += bn(channels) + channels * 4 * growth + bn(4 * growth) + 9 * 4 * growth * growth
            channels += growth
        if i < len(blocks) - 1:
            total += bn(channels) + channels * (channels // 2)
            channels //= 2
    return total + bn(channels) + channels * num_classes + num_classes


def cifar_resnet_formula(depth, num_classes=10):
    """He et al. Section 4.2: 3x3 conv (16) + 3 stages of n blocks of two 3x3 convs; option A adds nothing."""
    n = (depth - 2) // 6
    total = 9 * 3 * 16 + bn(16)
    in_channels = 16
    for width in (16, 32, 64):
        for _ in range(n):
            total += 9 * in_channels * width + bn(width) + 9 * width * width + bn(width)
            in_channels = width
    return total + 64 * num_classes + num_classes


def se_blocks_formula(ratio=16):
    """SE blocks of SE-ResNet-50: fc C -> C/r and C/r -> C, both with bias, after every bottleneck."""
    return sum(count * (2 * c * (c // ratio) + c // ratio + c)
               for count, c in ((3, 256), (4, 512), (6, 1024), (3, 2048)))


def keras_mobilenet_v1_formula(alpha=1.0, num_classes=1000):
    """Keras counting: BN has 4 numbers per channel (gamma, beta, moving mean, moving variance)."""
    channels = int(32 * alpha)
    total = 3 * 3 * 3 * channels + 4 * channels
    for pointwise in (64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024):
        out_channels = int(pointwise * alpha)
        total += 9 * channels + 4 * channels + channels * out_channels + 4 * out_channels
        channels = out_channels
    return total + channels * num_classes + num_classes


FORMULAS = {
    "resnet18": lambda: resnet_formula((2, 2, 2, 2), False),
    "resnet34": lambda: resnet_formula((3, 4, 6, 3), False),
    "resnet50": lambda: resnet_formula((3, 4, 6, 3), True),
    "resnet101": lambda: resnet_formula((3, 4, 23, 3), True),
    "resnet152": lambda: resnet_formula((3, 8, 36, 3), True),
    "densenet121": lambda: densenet_formula(32, (6, 12, 24, 16), 64),
    "densenet169": lambda: densenet_formula(32, (6, 12, 32, 32), 64),
    "densenet201": lambda: densenet_formula(32, (6, 12, 48, 32), 64),
    "densenet161": lambda: densenet_formula(48, (6, 12, 36, 24), 96),
    "mobilenet_v1": keras_mobilenet_v1_formula,
}


@pytest.mark.parametrize("name", sorted(REFERENCE_COUNTS))
def test_parameter_count_equals_the_reference_implementation(name):
    reference, convention = REFERENCE_COUNTS[name]
    model = built(name)
    count = count_parameters(model)
    if convention == "keras":
        count += count_buffers(model)   # Keras lists BN moving mean/variance as non-trainable parameters
    assert count == reference
    if name in FORMULAS:
        assert FORMULAS[name]() == reference


def test_keras_trainable_and_non_trainable_split():
    xception, mobilenet = built("xception"), built("mobilenet_v1")
    # Keras' model.summary(): Xception 22,855,952 trainable + 54,528 non-trainable; MobileNet 4,231,976 + 21,888
    assert (count_parameters(xception), count_buffers(xception)) == (22_855_952, 54_528)
    assert (count_parameters(mobilenet), count_buffers(mobilenet)) == (4_231_976, 21_888)


def test_se_resnet50_adds_the_se_fc_layers_to_resnet50():
    count = count_parameters(built("se_resnet50"))
    assert count == 25_557_032 + se_blocks_formula() == 28_088_024
    assert round(count / 1e6, 1) == 28.1   # Hu et al.: 28.1 M


def test_densenet_classifier_widths_match_torchvision():
    widths = {"densenet121": 1024, "densenet169": 1664, "densenet201": 1920, "densenet161": 2208}
    for name, width in widths.items():
        assert built(name).classifier.in_features == width


def test_densenet_bc_100_matches_the_paper():
    net = built("densenet_bc_100")
    count = count_parameters(net)
    assert count == densenet_formula(12, (16, 16, 16), 24, num_classes=10, imagenet_stem=False)
    assert round(count / 1e6, 1) == 0.8   # Huang et al. Table 2
    assert net.classifier.in_features == 342   # 24 + 48*12 grown, halved twice at the transitions


@pytest.mark.parametrize("depth, millions", list(zip(CIFAR_DEPTHS, (0.27, 0.46, 0.66, 0.85, 1.7))))
def test_cifar_resnet_parameters_match_table_6_and_equal_the_plain_net(depth, millions):
    resnet, plain = built(f"resnet{depth}"), built(f"plain{depth}")
    count = count_parameters(resnet)
    assert count == cifar_resnet_formula(depth)
    assert count_parameters(plain) == count   # option-A shortcuts have no parameters
    digits = 1 if millions >= 1 else 2
    assert round(count / 1e6, digits) == millions


def test_shufflenet_channels_follow_table_1():
    stage2 = {1: 144, 2: 200, 3: 240, 4: 272, 8: 384}
    for groups, channels in stage2.items():
        net = models.get("shufflenet", groups=groups)
        assert net.fc.in_features == 4 * channels
        assert net.stage2[0].conv1.groups == 1   # first pointwise conv of stage 2 is not grouped
        assert net.stage2[1].conv1.groups == groups and net.stage3[0].conv3.groups == groups
        assert [len(net.stage2), len(net.stage3), len(net.stage4)] == [4, 8, 4]
    with pytest.raises(ValueError, match="groups"):
        models.get("shufflenet", groups=5)


# ----- registry and structure -------------------------------------------------------------

INPUT_SHAPES = {
    **{name: (3, 224, 224) for name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
                                        "densenet121", "densenet169", "densenet201", "densenet161",
                                        "se_resnet50", "resnext50_32x4d", "mobilenet_v1", "mobilenet_v2",
                                        "shufflenet")},
    **{f"{kind}{depth}": (3, 32, 32) for kind in ("resnet", "plain") for depth in CIFAR_DEPTHS},
    "densenet_bc_100": (3, 32, 32),
    "xception": (3, 299, 299),
}


def test_every_model_is_registered_with_its_native_input_shape():
    assert set(INPUT_SHAPES) <= set(models.available())
    for name, shape in INPUT_SHAPES.items():
        assert built(name).input_shape == shape, name


def test_bottleneck_stride_placement():
    paper, v15 = built("resnet50"), models.get("resnet50", stride_on="3x3")
    assert (paper.layer2[0].conv1.stride, paper.layer2[0].conv2.stride) == (2, 1)
    assert (v15.layer2[0].conv1.stride, v15.layer2[0].conv2.stride) == (1, 2)
    assert built("resnext50_32x4d").layer3[0].conv2.stride == 2
    with pytest.raises(ValueError, match="stride_on"):
        models.get("resnet50", stride_on="7x7")


def test_bad_configurations_raise_clear_errors():
    with pytest.raises(ValueError, match="6n\\+2"):
        CifarResNet(21)
    with pytest.raises(ValueError, match="SEBlock"):
        SEBlock(8)(Tensor(np.zeros((1, 4, 2, 2), dtype=np.float32)))


# ----- building blocks -------------------------------------------------------------------

def test_option_a_shortcut_is_subsampled_identity_plus_zero_channels():
    x = np.random.default_rng(0).normal(size=(2, 16, 6, 6)).astype(np.float32)
    shortcut = ZeroPadShortcut(16, 32, stride=2)
    assert list(shortcut.parameters()) == []
    y = shortcut(Tensor(x)).numpy()
    assert y.shape == (2, 32, 3, 3)
    np.testing.assert_array_equal(y[:, 8:24], x[:, :, ::2, ::2])
    assert not y[:, :8].any() and not y[:, 24:].any()

    def blocks(net):
        return [block for stage in (net.layer1, net.layer2, net.layer3) for block in stage]

    shortcuts = [block.downsample for block in blocks(built("resnet20")) if block.downsample is not None]
    assert [type(s) for s in shortcuts] == [ZeroPadShortcut, ZeroPadShortcut]   # into stages 2 and 3
    plain_blocks = blocks(built("plain20"))
    assert all(not block.residual and block.downsample is None for block in plain_blocks)


def test_option_a_shortcut_gradient_reaches_only_the_sampled_pixels():
    x = Tensor(np.random.default_rng(1).normal(size=(1, 4, 4, 4)), requires_grad=True)
    ZeroPadShortcut(4, 8, stride=2)(x).sum().backward()
    expected = np.zeros((1, 4, 4, 4))
    expected[:, :, ::2, ::2] = 1
    np.testing.assert_array_equal(x.grad, expected)


def test_se_block_output_is_input_times_a_gate_in_0_1():
    rng = np.random.default_rng(2)
    se = SEBlock(32, ratio=16)
    x = rng.normal(size=(3, 32, 4, 5)).astype(np.float32)
    y = se(Tensor(x)).numpy()
    # the gate, computed here in NumPy from the block's weights
    squeezed = x.mean(axis=(2, 3))
    hidden = np.maximum(squeezed @ se.fc1.weight.numpy().T + se.fc1.bias.numpy(), 0)
    gate = 1 / (1 + np.exp(-(hidden @ se.fc2.weight.numpy().T + se.fc2.bias.numpy())))
    assert se.fc1.weight.shape == (2, 32) and se.fc2.weight.shape == (32, 2)
    assert ((gate > 0) & (gate < 1)).all()
    np.testing.assert_allclose(y, x * gate[:, :, None, None], rtol=1e-5, atol=1e-6)


def test_se_block_gradients_pass_gradcheck():
    se = SEBlock(8, ratio=4).to(np.float64)
    x = Tensor(np.random.default_rng(3).normal(size=(2, 8, 3, 3)), requires_grad=True)
    assert tinycnn.gradcheck(lambda x, *params: se(x), [x, *se.parameters()])


def test_relu6_values_and_gradient():
    x = Tensor(np.array([-2.0, 0.5, 3.0, 5.5, 7.0, 12.0]), requires_grad=True)
    y = nn.ReLU6()(x)
    np.testing.assert_array_equal(y.numpy(), [0.0, 0.5, 3.0, 5.5, 6.0, 6.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [0, 1, 1, 1, 0, 0])
    assert tinycnn.gradcheck(lambda t: nn.ReLU6()(t), [x])


def test_tensorflow_same_max_pool_puts_the_extra_padding_bottom_right():
    x = Tensor(np.arange(16.0).reshape(1, 1, 4, 4))
    # windows rows/cols {0,1,2} and {2,3,pad}: TF pads only after, unlike a symmetric padding of 1
    np.testing.assert_array_equal(MaxPool2dSame(3, 2)(x).numpy()[0, 0], [[10, 11], [14, 15]])
    assert MaxPool2dSame(3, 2)(Tensor(np.zeros((1, 1, 74, 74)))).shape == (1, 1, 37, 37)   # Xception at 299
    assert MaxPool2dSame(3, 2)(Tensor(np.zeros((1, 1, 147, 147)))).shape == (1, 1, 74, 74)


# ----- forward and backward passes --------------------------------------------------------

def check_forward_backward(name, input_size, batch=2, num_classes=10, **options):
    tinycnn.manual_seed(0)
    model = models.get(name, num_classes=num_classes, **options)
    x = Tensor(np.random.default_rng(0).normal(size=(batch, 3, input_size, input_size)).astype(np.float32))
    logits = model(x)
    assert logits.shape == (batch, num_classes)
    loss = F.softmax_cross_entropy(logits, np.arange(batch) % num_classes)
    assert np.isfinite(loss.item())
    loss.backward()
    for parameter_name, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient for {parameter_name}"
        assert p.grad.shape == p.shape and np.isfinite(p.grad).all(), f"{name}: bad gradient for {parameter_name}"
    return model


@pytest.mark.parametrize("name", [f"{kind}{depth}" for depth in CIFAR_DEPTHS for kind in ("resnet", "plain")]
                         + ["densenet_bc_100"])
def test_cifar_nets_forward_backward_at_native_size(name):
    check_forward_backward(name, 32)


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
                                  "densenet121", "densenet169", "densenet201", "densenet161",
                                  "se_resnet50", "resnext50_32x4d", "mobilenet_v1", "mobilenet_v2"])
def test_imagenet_nets_forward_backward_at_32x32(name):
    check_forward_backward(name, 32)


@pytest.mark.parametrize("groups", [1, 2, 3, 4, 8])
def test_shufflenet_forward_backward_at_32x32(groups):
    check_forward_backward("shufflenet", 32, groups=groups)


def test_xception_forward_backward_at_its_minimum_71x71():
    check_forward_backward("xception", 71, batch=2)


def test_resnet50_v15_and_mobilenet_width_options_forward():
    check_forward_backward("resnet50", 32, stride_on="3x3")
    check_forward_backward("mobilenet_v1", 32, alpha=0.5)
    half = check_forward_backward("mobilenet_v2", 32, width_mult=0.5)
    assert half.features[0][0].out_channels == 16 and half.classifier[1].in_features == 1280


# ----- multiply-adds (tinycnn.summary counts Conv2d and Linear multiply-accumulates per image) -----

@pytest.mark.parametrize("name, billions", [("resnet18", 1.8), ("resnet34", 3.6), ("resnet50", 3.8),
                                            ("resnet101", 7.6), ("resnet152", 11.3)])
def test_resnet_multiply_adds_match_the_paper(name, billions):
    macs = summary(built(name), (3, 224, 224)).total_macs
    assert abs(macs / 1e9 - billions) <= 0.03 * billions   # He et al. Table 1 "FLOPs" (multiply-adds)


def test_torchvision_stride_placement_costs_more():
    # torchvision documents 4.09 GFLOPS (multiply-adds) for its v1.5 ResNet-50
    macs = summary(models.get("resnet50", stride_on="3x3"), (3, 224, 224)).total_macs
    assert abs(macs / 1e9 - 4.09) <= 0.01 * 4.09


@pytest.mark.parametrize("name, options, millions", [
    ("mobilenet_v1", {}, 569),                 # Howard et al. Table 8
    ("mobilenet_v2", {}, 300),                 # Sandler et al. Table 4
    ("shufflenet", {"groups": 1}, 143),        # Zhang et al. Table 1, complexity row
    ("shufflenet", {"groups": 2}, 140),
    ("shufflenet", {"groups": 3}, 137),
    ("shufflenet", {"groups": 4}, 133),
    ("shufflenet", {"groups": 8}, 137),
])
def test_mobile_nets_multiply_adds_match_their_papers(name, options, millions):
    macs = summary(models.get(name, **options), (3, 224, 224)).total_macs
    assert abs(macs / 1e6 - millions) <= 0.03 * millions


def test_summary_counts_keras_totals_for_mobilenet_v1():
    result = summary(built("mobilenet_v1"))   # native input from model.input_shape
    assert result.input_shape == (3, 224, 224)
    assert (result.total_params, result.trainable_params, result.non_trainable_params) == \
        (4_253_864, 4_231_976, 21_888)        # Keras' model.summary() for MobileNet (alpha 1.0)
