"""tinycnn.summary: the lecture notes' Keras tables (VGG-16, MiniVGG), totals, multiply-adds,
receptive fields (checked against the gradient footprint of a unit), and the examples."""
import importlib.util
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

import tinycnn
import tinycnn.functions as F
import tinycnn.models as models
import tinycnn.nn as nn
from tinycnn import Tensor
from tinycnn.summary import Summary, main, print_summary, summary

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# keras.applications.VGG16().summary() as the lecture notes print it: (name, Keras type, output (H, W, C), params)
KERAS_VGG16 = [
    ("block1_conv1", "Conv2D", (224, 224, 64), 1792), ("block1_conv2", "Conv2D", (224, 224, 64), 36928),
    ("block1_pool", "MaxPooling2D", (112, 112, 64), 0),
    ("block2_conv1", "Conv2D", (112, 112, 128), 73856), ("block2_conv2", "Conv2D", (112, 112, 128), 147584),
    ("block2_pool", "MaxPooling2D", (56, 56, 128), 0),
    ("block3_conv1", "Conv2D", (56, 56, 256), 295168), ("block3_conv2", "Conv2D", (56, 56, 256), 590080),
    ("block3_conv3", "Conv2D", (56, 56, 256), 590080), ("block3_pool", "MaxPooling2D", (28, 28, 256), 0),
    ("block4_conv1", "Conv2D", (28, 28, 512), 1180160), ("block4_conv2", "Conv2D", (28, 28, 512), 2359808),
    ("block4_conv3", "Conv2D", (28, 28, 512), 2359808), ("block4_pool", "MaxPooling2D", (14, 14, 512), 0),
    ("block5_conv1", "Conv2D", (14, 14, 512), 2359808), ("block5_conv2", "Conv2D", (14, 14, 512), 2359808),
    ("block5_conv3", "Conv2D", (14, 14, 512), 2359808), ("block5_pool", "MaxPooling2D", (7, 7, 512), 0),
    ("flatten", "Flatten", (25088,), 0),
    ("fc1", "Dense", (4096,), 102764544), ("fc2", "Dense", (4096,), 16781312),
    ("predictions", "Dense", (1000,), 4097000),
]

# The lecture notes' MiniVGG model.summary() (Keras' auto names dropped), without the final softmax
# Activation: tinycnn models return logits and the loss applies the softmax.
KERAS_MINIVGG = [
    ("Conv2D", (32, 32, 32), 896), ("Activation", (32, 32, 32), 0), ("BatchNormalization", (32, 32, 32), 128),
    ("Conv2D", (32, 32, 32), 9248), ("Activation", (32, 32, 32), 0), ("BatchNormalization", (32, 32, 32), 128),
    ("MaxPooling2D", (16, 16, 32), 0), ("Dropout", (16, 16, 32), 0),
    ("Conv2D", (16, 16, 64), 18496), ("Activation", (16, 16, 64), 0), ("BatchNormalization", (16, 16, 64), 256),
    ("Conv2D", (16, 16, 64), 36928), ("Activation", (16, 16, 64), 0), ("BatchNormalization", (16, 16, 64), 256),
    ("MaxPooling2D", (8, 8, 64), 0), ("Dropout", (8, 8, 64), 0),
    ("Flatten", (4096,), 0), ("Dense", (512,), 2097664), ("Activation", (512,), 0),
    ("BatchNormalization", (512,), 2048), ("Dropout", (512,), 0), ("Dense", (10,), 5130),
]

KERAS_TYPES = {"Conv2D": ("Conv2d",), "MaxPooling2D": ("MaxPool2d",), "Flatten": ("Flatten",), "Dense": ("Linear",),
               "Activation": ("ReLU",), "BatchNormalization": ("BatchNorm2d", "BatchNorm1d"), "Dropout": ("Dropout",)}


def nchw(keras_shape):
    """Keras (H, W, C) -> tinycnn (C, H, W); vectors unchanged."""
    return keras_shape if len(keras_shape) == 1 else (keras_shape[2],) + keras_shape[:2]


@pytest.fixture(scope="module")
def vgg16_summary():
    return summary(models.get("vgg16"))        # the full 138 M-parameter model, one forward at 224x224


def test_vgg16_reproduces_the_keras_table(vgg16_summary):
    s = vgg16_summary
    keras_rows = [row for row in s.rows if row.kind not in ("ReLU", "Dropout")]   # Keras fuses the activation
    assert [row.name.split(".")[-1] for row in keras_rows] == [name for name, _, _, _ in KERAS_VGG16]
    for row, (name, kind, shape, params) in zip(keras_rows, KERAS_VGG16):
        assert row.kind in KERAS_TYPES[kind], name
        assert row.output_shape == nchw(shape), name
        assert row.params == params, name
    assert (s.total_params, s.trainable_params, s.non_trainable_params) == (138_357_544, 138_357_544, 0)
    text = str(s)
    for line in ("Total params: 138,357,544", "Trainable params: 138,357,544", "Non-trainable params: 0"):
        assert line in text
    assert "(None, 64, 224, 224)" in text and "102,764,544" in text


def test_vgg16_multiply_adds_and_receptive_fields(vgg16_summary):
    s = vgg16_summary
    assert abs(s.total_macs / 15.47e9 - 1) < 0.005          # torchvision's published 15.47 GFLOPS (MACs)
    assert s.total_macs == sum(row.macs for row in s.rows)
    # Three 3x3 convolutions see 7x7; block5_pool sees 212 pixels (Araujo et al., Distill 2019).
    fields = {row.name.split(".")[-1]: (row.receptive_field, row.jump) for row in s.rows}
    expected = {"block1_conv1": 3, "block1_conv2": 5, "block1_pool": 6, "block2_conv1": 10, "block2_conv2": 14,
                "block2_pool": 16, "block3_conv3": 40, "block3_pool": 44, "block4_pool": 100, "block5_conv3": 196,
                "block5_pool": 212}
    jumps = {"block1_conv1": 1, "block1_pool": 2, "block2_pool": 4, "block3_pool": 8, "block4_pool": 16,
             "block5_conv3": 16, "block5_pool": 32}
    assert {name: fields[name][0] for name in expected} == {name: (rf, rf) for name, rf in expected.items()}
    assert {name: fields[name][1] for name in jumps} == {name: (j, j) for name, j in jumps.items()}
    assert fields["fc1"] == (None, None)
    # Forward memory per image (float32) of every leaf output: conv outputs twice (conv, ReLU), pools,
    # flatten, fc1/fc2 three times (Linear, ReLU, Dropout), predictions.
    conv = sum(n * c * size * size for n, c, size in ((2, 64, 224), (2, 128, 112), (3, 256, 56), (3, 512, 28),
                                                       (3, 512, 14)))
    pools = sum(c * size * size for c, size in ((64, 112), (128, 56), (256, 28), (512, 14), (512, 7)))
    assert s.activation_bytes == 4 * (2 * conv + pools + 25088 + 3 * 2 * 4096 + 1000)


def test_minivgg_reproduces_the_keras_table():
    s = summary(models.get("minivgg"))
    assert len(s.rows) == len(KERAS_MINIVGG)
    for row, (kind, shape, params) in zip(s.rows, KERAS_MINIVGG):
        assert row.kind in KERAS_TYPES[kind] and row.output_shape == nchw(shape) and row.params == params, row
    assert (s.total_params, s.trainable_params, s.non_trainable_params) == (2_171_178, 2_169_770, 1_408)
    assert sum(row.params for row in s.rows) == s.total_params
    assert sum(row.trainable_params for row in s.rows) == s.trainable_params
    text = str(s)
    assert "Total params: 2,171,178\nTrainable params: 2,169,770\nNon-trainable params: 1,408" in text
    first = next(line for line in text.splitlines() if "block1_conv1" in line)
    assert "(Conv2d)" in first and "(None, 32, 32, 32)" in first and "896" in first


def test_totals_count_every_parameter_and_buffer_even_of_layers_that_did_not_run():
    net = models.get("googlenet")
    s = summary(net)
    params = sum(p.numel() for p in net.parameters())
    assert s.total_params == params == 13_378_280 and s.non_trainable_params == 0
    assert not any(row.name.startswith("aux") for row in s.rows)             # eval mode skips the aux heads
    assert sum(row.params for row in s.rows) == params - sum(p.numel() for p in net.aux1.parameters()) \
        - sum(p.numel() for p in net.aux2.parameters())
    assert s.rows[-1].name == "fc" and s.rows[-1].output_shape == (1000,)


def test_frozen_parameters_count_as_non_trainable():
    net = models.get("lenet")
    net.features.conv1.requires_grad_(False)
    s = summary(net)
    assert (s.trainable_params, s.non_trainable_params, s.total_params) == (61_706 - 156, 156, 61_706)
    assert s.rows[0].params == 156 and s.rows[0].trainable_params == 0


def test_lenet_activation_memory_and_macs():
    s = summary(models.get("lenet"))
    outputs = 2 * 6 * 28 * 28 + 6 * 14 * 14 + 2 * 16 * 10 * 10 + 16 * 5 * 5 + 400 + 2 * 120 + 2 * 84 + 10
    assert s.activation_bytes == 4 * outputs
    assert s.total_macs == 28 * 28 * 6 * 25 + 10 * 10 * 16 * 6 * 25 + 400 * 120 + 120 * 84 + 84 * 10


def test_one_by_one_convolution_multiply_adds_match_the_lecture_notes():
    # 28x28x192 -> 5x5x32 "same": 120 M multiplications; with a 16-filter 1x1 first: 2.4 M + 10.0 M
    direct = summary(nn.Conv2d(192, 32, 5, padding=2), (192, 28, 28))
    bottleneck = summary(nn.Sequential(nn.Conv2d(192, 16, 1), nn.Conv2d(16, 32, 5, padding=2)), (192, 28, 28))
    assert direct.total_macs == 120_422_400
    assert [row.macs for row in bottleneck.rows] == [2_408_448, 10_035_200]
    assert (direct.total_params, bottleneck.total_params) == (153_632, 15_920)


def test_grouped_convolution_macs_equal_the_separate_groups():
    grouped = summary(nn.Conv2d(8, 16, 3, groups=4), (8, 10, 10))
    single = summary(nn.Conv2d(2, 4, 3), (2, 10, 10))
    assert grouped.total_macs == 4 * single.total_macs == 4 * 8 * 8 * 4 * 2 * 9
    depthwise = summary(nn.Conv2d(8, 8, 3, padding=1, groups=8), (8, 6, 6))
    assert depthwise.total_macs == 6 * 6 * 8 * 9


def test_batch_size_changes_nothing_per_image():
    one, three = summary(models.get("nin")), summary(models.get("nin"), batch_size=3)
    assert [(r.name, r.output_shape, r.macs, r.activation_bytes) for r in one.rows] == \
           [(r.name, r.output_shape, r.macs, r.activation_bytes) for r in three.rows]


class Branches(nn.Module):
    """Three branches of different receptive fields (strided, dilated, rectangular), concatenated."""

    def __init__(self):
        super().__init__()
        self.strided = nn.Sequential(OrderedDict([("conv", nn.Conv2d(1, 2, 3, stride=2, padding=1)),
                                                  ("pool", nn.AvgPool2d(3, 1, padding=1))]))
        self.dilated = nn.Conv2d(1, 2, 5, stride=2, padding=4, dilation=2)
        self.rect = nn.Sequential(OrderedDict([("wide", nn.Conv2d(1, 2, (1, 11), padding=(0, 5))),
                                               ("tall", nn.Conv2d(2, 2, (7, 1), stride=2, padding=(3, 0)))]))
        self.head = nn.Conv2d(6, 1, 3, padding=1)

    def forward(self, x):
        return self.head(F.concat([self.strided(x), self.dilated(x), self.rect(x)], axis=1))


def gradient_footprint(net, size, index):
    """Rows and columns of input pixels that reach output unit ``index`` (positive weights, no ReLU)."""
    x = Tensor(np.ones((1, 1, size, size), dtype=np.float32), requires_grad=True)
    y = net(x)
    seed = np.zeros(y.shape, dtype=np.float32)
    seed[(0, 0) + index] = 1
    y.backward(seed)
    rows, cols = np.nonzero(x.grad[0, 0])
    return (rows.min(), rows.max()), (cols.min(), cols.max())


def test_receptive_field_equals_the_gradient_footprint_on_a_branching_model():
    net = Branches()
    for p in net.parameters():
        p.data[...] = 0.1                                          # positive: no cancellation
    s = summary(net, (1, 65, 65))
    field, jump = s.rows[-1].receptive_field, s.rows[-1].jump
    (top, bottom), (left, right) = gradient_footprint(net, 65, (16, 16))   # centre unit: fully inside
    assert field == (bottom - top + 1, right - left + 1) == (13, 15)    # dilated rows, rectangular columns
    (top2, _), (left2, _) = gradient_footprint(net, 65, (17, 17))
    assert jump == (top2 - top, left2 - left) == (2, 2)
    by_name = {row.name: row for row in s.rows}
    assert by_name["rect.wide"].receptive_field == (1, 11) and by_name["rect.tall"].receptive_field == (7, 11)
    assert by_name["dilated"].receptive_field == (9, 9)


def test_receptive_field_through_keras_same_padding_and_global_pooling():
    from tinycnn.models.minigooglenet import KerasSameMaxPool2d
    net = nn.Sequential(OrderedDict([("conv", nn.Conv2d(3, 4, 5, padding=2)), ("pool", KerasSameMaxPool2d(3, 2)),
                                     ("gap", nn.GlobalAvgPool2d()), ("fc", nn.Linear(4, 2))]))
    rows = {row.name: row for row in summary(net, (3, 16, 16)).rows}
    assert rows["pool"].output_shape == (4, 8, 8)                    # Keras "same": ceil(16 / 2)
    assert (rows["pool"].receptive_field, rows["pool"].jump) == ((7, 7), (2, 2))   # the asymmetric pad keeps it
    assert rows["gap"].receptive_field is None and rows["fc"].receptive_field is None


def test_summary_restores_the_model_and_the_engine():
    net = models.get("minivgg")
    net.features.block1_dropout.eval()                              # a mixed state must come back as it was
    call = tinycnn.Function.__call__
    s = summary(net)
    assert tinycnn.Function.__call__ is call
    assert net.training and not net.features.block1_dropout.training and net.classifier.fc1_dropout.training
    rows = len(s.rows)
    net(Tensor(np.zeros((2, 3, 32, 32), dtype=np.float32)))        # the recording hook is gone
    assert len(s.rows) == rows
    y = net(Tensor(np.zeros((2, 3, 32, 32), dtype=np.float32)))
    assert not hasattr(y, "receptive_field")


def test_summary_restores_the_engine_when_the_forward_fails():
    call = tinycnn.Function.__call__
    with pytest.raises(ValueError, match="conv2d"):
        summary(models.get("lenet"), (3, 32, 32))                   # lenet expects one channel
    assert tinycnn.Function.__call__ is call
    assert len(summary(nn.Linear(3, 2), (3,)).rows) == 1             # no stale hook adds rows


def test_summary_follows_the_ops_through_a_function_hook_without_patching():
    call = tinycnn.Function.__call__
    during = []
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.BatchNorm2d(2), nn.MaxPool2d(2))
    net[3].register_forward_hook(lambda module, inputs, output: during.append(tinycnn.Function.__call__))

    class Count(tinycnn.FunctionHook):           # a hook of the caller's own, active around summary
        def __init__(self):
            self.calls = 0

        def forward_postprocess(self, function, inputs, outputs):
            self.calls += 1

    with Count() as count:
        s = summary(net, (1, 8, 8))
    assert during == [call]                                          # nothing replaced while it ran
    assert count.calls == 4                                          # Conv2d, ReLU, BatchNorm, MaxPool2d
    assert [(row.kind, row.receptive_field) for row in s.rows] == [
        ("Conv2d", (3, 3)), ("ReLU", (3, 3)), ("BatchNorm2d", (3, 3)), ("MaxPool2d", (4, 4))]


def test_summary_of_a_fused_model_shows_the_fused_op():
    net = nn.fuse(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.BatchNorm2d(2), nn.MaxPool2d(2)))
    s = summary(net, (1, 8, 8))
    assert [(row.kind, row.params, row.receptive_field) for row in s.rows] == [
        ("Conv2d", 20, (3, 3)), ("Identity", 0, (3, 3)), ("ReLUBatchNorm2d", 8, (3, 3)), ("MaxPool2d", 0, (4, 4))]


def test_summary_rejects_bad_arguments():
    with pytest.raises(TypeError, match="tinycnn.nn.Module"):
        summary("vgg16", (3, 224, 224))
    with pytest.raises(ValueError, match="no input_shape"):
        summary(nn.Linear(3, 2))
    with pytest.raises(ValueError, match="batch_size"):
        summary(models.get("lenet"), batch_size=0)


def test_print_summary_and_main(capsys):
    result = print_summary("lenet")
    assert isinstance(result, Summary) and result.total_params == 61_706
    assert "Total params: 61,706" in capsys.readouterr().out
    assert main(["nin", "--num-classes", "100"]) == 0
    out = capsys.readouterr().out
    assert "mlpconv3.cccp2 (Conv2d)" in out and "(None, 100, 8, 8)" in out
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_by_one_convolution_example(capsys):
    example = load_example("one_by_one_convolution")
    example.main([])
    out = capsys.readouterr().out
    assert "153,632 vs 3,088 + 12,832 = 15,920" in out
    assert "120.4 M vs 2.4 M + 10.0 M = 12.4 M" in out
    example.main(["--bottleneck", "8", "--padding", "valid"])
    assert "153,632 vs 1,544 + 6,432 = 7,976" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        example.main(["--help"])
    assert exit_info.value.code == 0


def test_receptive_field_example(capsys):
    example = load_example("receptive_field")
    example.main(["--model", "lenet"])
    lines = capsys.readouterr().out.splitlines()
    pool2 = next(line for line in lines if "features.pool2" in line).split()
    assert pool2[-2:] == ["16", "4"]
    assert not any("act1" in line for line in lines)                 # only conv and pool layers by default
    with pytest.raises(SystemExit) as exit_info:
        example.main(["--help"])
    assert exit_info.value.code == 0


# ----- activation memory: output values, and what backward keeps ---------------------------------

def test_activation_values_count_the_outputs_of_every_layer():
    s = summary(models.get("lenet"))
    assert [row.activation_values for row in s.rows] == [int(np.prod(row.output_shape)) for row in s.rows]
    assert all(row.activation_bytes == 4 * row.activation_values for row in s.rows)      # float32
    assert s.activation_values == sum(row.activation_values for row in s.rows)
    assert s.backward_bytes is None and all(row.backward_bytes is None for row in s.rows)
    assert "Backward keeps" not in s.memory_table()


def test_backward_keeps_the_inputs_of_linear_layers_but_never_the_parameters():
    # Each Linear keeps its input for the weight gradient: x, then the first layer's output.
    net = nn.Sequential(nn.Linear(7, 5), nn.Linear(5, 3))
    s = summary(net, (7,), batch_size=4, backward=True)
    assert [row.backward_bytes for row in s.rows] == [4 * 7 * 4, 4 * 5 * 4]
    assert s.backward_bytes == 4 * (7 + 5) * 4
    assert all(p.grad is None for p in net.parameters())                  # nothing ran backward


def test_backward_bytes_count_each_array_once_and_grow_with_the_batch():
    net = models.get("lenet")
    one, three = summary(net, batch_size=1, backward=True), summary(net, batch_size=3, backward=True)
    # An array shared by two layers (a Tanh keeps its output, the next layer its input) counts once,
    # so the rows add up to at most what the graph holds: each layer's inputs plus what it saved.
    conv1 = one.rows[0]
    assert conv1.name == "features.conv1" and conv1.backward_bytes == 4 * 32 * 32      # the image
    assert one.backward_bytes == sum(row.backward_bytes for row in one.rows)
    inputs = 4 * (32 * 32 + sum(row.activation_values for row in one.rows[:-1]))
    assert one.backward_bytes <= inputs + sum(row.activation_bytes for row in one.rows)
    # LeNet's layers keep nothing that does not scale with the batch (no Winograd: few channels).
    assert [3 * row.backward_bytes for row in one.rows] == [row.backward_bytes for row in three.rows]


def test_backward_bytes_in_eval_mode_and_the_engine_restored():
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Dropout(0.5), nn.MaxPool2d(2))
    s = summary(net, (2, 6, 6), backward=True)
    conv, relu, dropout, pool = s.rows
    assert conv.backward_bytes == 4 * 2 * 6 * 6
    assert relu.backward_bytes >= 4 * 3 * 4 * 4                            # at least its input
    assert dropout.backward_bytes == 0                                     # eval: no mask
    assert pool.backward_bytes >= 3 * 2 * 2                                # which input won, per output
    assert net.training and tinycnn.is_grad_enabled()
    lines = s.memory_table().splitlines()
    assert lines[0].split()[-2:] == ["Backward", "keeps"] and len(lines) == len(s.rows) + 2
    assert lines[-1].split() == ["Total", f"{s.activation_values:,}", f"{s.activation_bytes:,}",
                                 f"{s.backward_bytes:,}"]


def test_main_prints_the_memory_table(capsys):
    assert main(["lenet", "--memory"]) == 0
    out = capsys.readouterr().out
    assert "Total params: 61,706" in out and "Backward keeps" in out
    assert "features.conv1 (Conv2d)               4,704         18,816           4,096" in out
