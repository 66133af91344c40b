"""tinycnn.onnx.export: every zoo model written as ONNX, checked by onnx.checker (with strict shape
inference) and run by onnxruntime at batch 1 and 2 against tinycnn's own output; the ops no zoo
model uses, on small modules; export_checkpoint; bad input."""
import inspect
import json

import numpy as np
import pytest

import tinycnn
import tinycnn.functions as F
import tinycnn.models as models
import tinycnn.nn as nn
from tinycnn.cli_setup import CLIError
from tinycnn.nn import Parameter

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
import tinycnn.onnx  # noqa: E402  (after the skip: it needs onnx)

# The smallest input each zoo model accepts (found by trying sizes): fixed by a Flatten before
# a Linear (AlexNet, GoogLeNet's 7x7 average pool, LeNet's 28 or 32), the rest by their
# down-sampling. A builder taking input_shape or input_size is built for that size.
SMALLEST = {"alexnet": (3, 227, 227), "googlenet": (3, 224, 224), "inception_v3": (3, 75, 75),
            "lenet": (1, 28, 28), "mobilenet_v1": (3, 32, 32),
            **{name: (3, 32, 32) for name in ("densenet121", "densenet161", "densenet169", "densenet201",
                                              "vgg11", "vgg11_lrn", "vgg13", "vgg16", "vgg16c", "vgg19")},
            **{name: (3, 8, 8) for name in (
                "deepergooglenet", "densenet_bc_100", "minigooglenet", "minivgg", "mobilenet_v2", "nin",
                "plain20", "plain32", "plain44", "plain56", "plain110", "resnet18", "resnet34", "resnet50",
                "resnet101", "resnet152", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
                "resnext50_32x4d", "se_resnet50", "shufflenet", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0",
                "shufflenet_v2_x1_5", "shufflenet_v2_x2_0", "xception")}}


def small_model(name):
    """Zoo model ``name`` with 10 classes and random BatchNorm statistics, and its smallest input
    shape (a model added to the zoo after this table: its own input shape)."""
    shape, options = SMALLEST.get(name), {}
    accepted = inspect.signature(models.registry._builders[name]).parameters
    if shape is not None and "input_shape" in accepted:
        options["input_shape"] = shape
    elif shape is not None and "input_size" in accepted:
        options["input_size"] = shape[1]
    tinycnn.manual_seed(0)
    model = models.get(name, num_classes=10, **options)
    randomize_batch_norms(model, np.random.default_rng(0))
    return model, shape or tuple(model.input_shape)


def randomize_batch_norms(model, rng):
    """Running statistics and affine parameters away from 0 and 1, so that a BatchNormalization
    fed the wrong array, or no BatchNorm at all, changes the output."""
    for module in model.modules():
        if getattr(module, "running_mean", None) is not None:
            c = module.running_mean.shape[0]
            module.running_mean[...] = rng.normal(0, 0.1, c)
            module.running_var[...] = rng.uniform(0.5, 1.5, c)
            if module.weight is not None:
                module.weight.data[...] = rng.uniform(0.5, 1.0, c)
                module.bias.data[...] = rng.normal(0, 0.1, c)


def check_against_onnxruntime(model, path, shape, batches=(1, 2)):
    """Export, check the file strictly, run it in onnxruntime and compare with tinycnn's output;
    -> (the ModelProto, {name: parameter} of the parameters tinycnn's forward read).

    Both sides compute the same float32 sums in different orders (onnxruntime picks its own
    convolution algorithms and folds BatchNorm into them), each rounding step off by about 6e-8
    of the values it adds, over up to ~150 layers; that error scales with the values, so the
    tolerance is 1e-4 of the output's largest magnitude.
    """
    proto = check_file(model, path, shape)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    model.eval()
    for batch in batches:
        x = rng.normal(size=(batch, *shape)).astype(np.float32)
        with tinycnn.no_grad(), ParametersRead() as hook:
            expected = model(tinycnn.Tensor(x)).numpy()
        (got,) = session.run(None, {"input": x})
        assert got.shape == expected.shape
        scale = np.abs(expected).max()
        assert scale > 0 and np.isfinite(scale)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * scale)
    return proto, {name: p for name, p in model.named_parameters() if id(p) in hook.ids}


def check_file(model, path, shape):
    """Export and check the file with onnx.checker, with strict shape inference."""
    proto = tinycnn.onnx.export(model, path, shape)
    onnx.checker.check_model(str(path), full_check=True)
    return proto


class ParametersRead(tinycnn.FunctionHook):
    """The ids of the tensors passed to Functions (of the parameters among them)."""

    def __init__(self):
        self.ids = set()

    def forward_postprocess(self, function, inputs, outputs):
        self.ids.update(id(t) for t in inputs)


def op_types(proto):
    return {node.op_type for node in proto.graph.node}


# The nodes the zoo's distinctive layers export to, and attributes: grouped and depthwise
# convolutions, pools rounding up (NIN at 8x8: 8 -> 4 -> 2 only in ceil_mode).
EXPECTED_OPS = {"alexnet": {"LRN", "Gemm", "MaxPool"}, "googlenet": {"LRN", "Concat", "AveragePool"},
                "nin": {"AveragePool", "ReduceSum", "Mul"}, "deepergooglenet": {"Pad", "BatchNormalization"},
                "mobilenet_v2": {"Clip", "Add"}, "resnet20": {"Slice", "Pad", "Add"},
                "se_resnet50": {"Sigmoid", "Reshape", "Mul", "Gemm"}, "shufflenet": {"Reshape", "Transpose", "Concat"}}
EXPECTED_ATTRIBUTES = {"mobilenet_v2": ("group", {1, 32, 96, 144, 192, 384, 576, 960}),
                       "resnext50_32x4d": ("group", {1, 32}), "nin": ("ceil_mode", {1}),
                       "googlenet": ("ceil_mode", {0, 1})}


@pytest.mark.parametrize("name", models.available())
def test_zoo_model_runs_in_onnxruntime_as_in_tinycnn(name, tmp_path):
    model, shape = small_model(name)
    proto, used = check_against_onnxruntime(model, tmp_path / f"{name}.onnx", shape)
    graph_input = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in graph_input] == ["N", *shape]
    initializers = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    assert used                             # (GoogLeNet's auxiliary heads are not used in eval mode)
    for key, parameter in used.items():     # each one an initializer named as in state_dict, same values
        np.testing.assert_array_equal(initializers[key], parameter.numpy())
    assert "Dropout" not in op_types(proto)
    assert EXPECTED_OPS.get(name, set()) <= op_types(proto)
    if name in EXPECTED_ATTRIBUTES:
        attribute, values = EXPECTED_ATTRIBUTES[name]
        assert {a.i for n in proto.graph.node for a in n.attribute if a.name == attribute} == values


# Variants the builders offer, torchvision's layouts for its weights: the adaptive average pool
# is two MatMuls with constant matrices, transform_input a Mul and an Add with constants.
VARIANTS = [(name, options, shape, ops) for name, options, shape, ops in (
    ("alexnet", {"variant": "torchvision"}, (3, 63, 63), {"MatMul"}),
    ("googlenet", {"variant": "torchvision"}, (3, 32, 32), {"BatchNormalization"}),
    ("inception_v3", {"transform_input": True}, (3, 75, 75), {"Add"}))
    if set(options) <= set(inspect.signature(models.registry._builders[name]).parameters)]


@pytest.mark.parametrize("name, options, shape, ops", VARIANTS)
def test_zoo_variant_runs_in_onnxruntime_as_in_tinycnn(name, options, shape, ops, tmp_path):
    tinycnn.manual_seed(0)
    model = models.get(name, num_classes=10, **options)
    randomize_batch_norms(model, np.random.default_rng(0))
    proto, _ = check_against_onnxruntime(model, tmp_path / f"{name}.onnx", shape)
    assert ops <= op_types(proto)


def test_lrn_alpha_is_multiplied_by_size(tmp_path):
    """tinycnn's LRN alpha is the AlexNet paper's; ONNX divides alpha by size (as PyTorch)."""
    model = nn.Sequential(nn.LocalResponseNorm(size=3, alpha=0.5, beta=0.75, k=1.0))
    proto, _ = check_against_onnxruntime(model, tmp_path / "lrn.onnx", (6, 3, 3))
    (lrn,) = proto.graph.node
    assert {a.name: a.f if a.type == a.FLOAT else a.i for a in lrn.attribute} == \
        {"size": 3, "alpha": 1.5, "beta": 0.75, "bias": 1.0}
    # alpha large and the inputs O(1): alpha exported unscaled would be far off
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(2).normal(size=(1, 6, 3, 3)).astype(np.float32)
    expected = torch.nn.LocalResponseNorm(3, 1.5, 0.75, 1.0)(torch.from_numpy(x)).numpy()
    (got,) = ort.InferenceSession(str(tmp_path / "lrn.onnx")).run(None, {"input": x})
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)     # float32, a few roundings per value


class OtherOps(nn.Module):
    """The ops no zoo model uses, each at least once, on (N, 4, 6, 6) inputs."""

    def __init__(self):
        super().__init__()
        self.bn1, self.bn2, self.bn3 = nn.BatchNorm2d(4), nn.BatchNorm2d(4), nn.BatchNorm1d(3)
        self.fc = nn.Linear(6, 3)
        self.scale = Parameter(np.linspace(0.5, 1.0, 4, dtype=np.float32).reshape(4, 1, 1))
        self.rows = np.arange(36, dtype=np.float32).reshape(6, 6) / 36   # a constant array

    def forward(self, x):
        a, b = F.split(x, [1, 3], axis=1)
        y = F.concat([F.leaky_relu(a, 0.1), F.elu(b, 0.7)], axis=1)
        y = F.batch_norm_relu(y, self.bn1.weight, self.bn1.bias, self.bn1.running_mean, self.bn1.running_var,
                              False)
        y = F.relu_batch_norm(y - 0.3, self.bn2.weight, self.bn2.bias, self.bn2.running_mean,
                              self.bn2.running_var, False)
        y = y - F.max(y, axis=1, keepdims=True)
        y = F.exp(y) / (1.5 + F.sqrt(F.pow(y, 2) + 1.0))
        y = F.neg(F.log(1.0 + F.sigmoid(y))) * (self.scale * self.scale)  # scale * scale: folded
        y = F.matmul(F.tanh(y), self.rows)
        y = F.cast(F.cast(y, np.float64) * 2.0, np.float32)
        y = y[:, 1:, ::-1, 1]                                            # (N, 3, 6)
        y = self.fc(F.transpose(F.transpose(y, (0, 2, 1)), (0, 2, 1)))   # a 3-D Linear: (N, 3, 3)
        y = F.log_softmax(y, axis=2) + F.softmax(y, axis=-1)
        return self.bn3(F.sum(y, axis=2))                                # (N, 3)


class Pools(nn.Module):
    """Padded pools in ceil_mode, average pooling with and without the padding counted."""

    def forward(self, x):
        return F.concat([F.max_pool2d(x, 3, 2, padding=1, ceil_mode=True),
                         F.avg_pool2d(x, 3, 2, padding=1, ceil_mode=True, count_include_pad=False),
                         F.avg_pool2d(x, 3, 2, padding=1, ceil_mode=True),
                         F.avg_pool2d(x, 2, 2, padding=1)[:, :, :5, :5]], axis=1)


def test_ops_beyond_the_zoo(tmp_path):
    model = OtherOps()
    randomize_batch_norms(model, np.random.default_rng(3))
    proto, _ = check_against_onnxruntime(model, tmp_path / "ops.onnx", (4, 6, 6))
    assert {"Split", "LeakyRelu", "Elu", "Relu", "BatchNormalization", "Sub", "ReduceMax", "Exp", "Div", "Sqrt",
            "Pow", "Log", "Neg", "Tanh", "MatMul", "Cast", "Slice", "Squeeze", "Transpose",
            "Add", "LogSoftmax", "Softmax", "ReduceSum"} <= op_types(proto)
    kinds = [n.op_type for n in proto.graph.node]
    assert kinds.index("BatchNormalization") < kinds.index("Relu")   # batch_norm_relu: BN, then ReLU
    assert len([k for k in kinds if k == "BatchNormalization"]) == 3
    assert not any(t.name == "scale" for t in proto.graph.initializer)   # only its (folded) square is used


def test_pools_in_ceil_mode(tmp_path):
    proto, _ = check_against_onnxruntime(Pools(), tmp_path / "pools.onnx", (2, 8, 8))
    assert [n.op_type for n in proto.graph.node].count("AveragePool") == 3


def test_identity_and_two_outputs(tmp_path):
    class TwoHeads(nn.Module):
        def forward(self, x):
            y = F.relu(x)
            return y, y, x
    proto = tinycnn.onnx.export(TwoHeads(), tmp_path / "t.onnx", (3,))
    assert [o.name for o in proto.graph.output] == ["output_0", "output_1", "output_2"]
    x = np.array([[-1.0, 0.5, 2.0]], dtype=np.float32)
    a, b, c = ort.InferenceSession(str(tmp_path / "t.onnx")).run(None, {"input": x})
    np.testing.assert_array_equal(a, np.maximum(x, 0))
    np.testing.assert_array_equal(b, np.maximum(x, 0))
    np.testing.assert_array_equal(c, x)


def test_nodes_are_named_after_their_layers(tmp_path):
    graph = tinycnn.onnx.export(models.get("resnet20"), tmp_path / "r.onnx", (3, 8, 8)).graph
    names = [n.name for n in graph.node]
    assert "conv1/Conv" in names and "layer1.0/Add" in names and "layer1.0.bn1/BatchNormalization" in names
    assert graph.output[0].name == "output"
    assert [d.dim_param or d.dim_value for d in graph.output[0].type.tensor_type.shape.dim] == ["N", 10]


def test_export_keeps_training_mode(tmp_path):
    model = models.get("minivgg", input_shape=(3, 8, 8)).train()
    next(iter(model.children())).eval()         # modes differ between layers
    modes = [m.training for m in model.modules()]
    tinycnn.onnx.export(model, tmp_path / "m.onnx")
    assert [m.training for m in model.modules()] == modes


def test_export_checkpoint(tmp_path):
    """A checkpoint as `tinycnn train` writes it: the model is rebuilt from its meta, the
    classes and preprocessing land in the file's metadata."""
    model = models.get("minivgg", num_classes=3, input_shape=(1, 8, 8))
    randomize_batch_norms(model, np.random.default_rng(4))
    mean = np.array([0.25], dtype=np.float32)
    meta = {"model": "minivgg", "model_options": {}, "dataset": "folder", "classes": ["a", "b", "c"],
            "input_shape": [1, 8, 8]}
    tinycnn.save({"model": model.state_dict(), "preprocessing": {"scale": "1/255", "mean": mean}, "meta": meta},
                 tmp_path / "best.npz")
    proto = tinycnn.onnx.export_checkpoint(tmp_path / "best.npz", tmp_path / "best.onnx")
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["classes"]) == ["a", "b", "c"]
    assert json.loads(props["preprocessing"]) == {"scale": "1/255", "mean": [0.25]}
    x = np.random.default_rng(5).normal(size=(2, 1, 8, 8)).astype(np.float32)
    (got,) = ort.InferenceSession(str(tmp_path / "best.onnx")).run(None, {"input": x})
    with tinycnn.no_grad():
        expected = model.eval()(tinycnn.Tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max())   # float32 sums
    with pytest.raises(CLIError, match="missing.npz"):
        tinycnn.onnx.export_checkpoint(tmp_path / "missing.npz", tmp_path / "x.onnx")


def test_export_checkpoint_of_a_converted_torchvision_checkpoint_keeps_std(tmp_path):
    """A checkpoint laid out as `tinycnn convert` writes it (ImageNet's mean and std): the metadata
    holds scale, mean and std, and the graph, fed (pixels / 255 - mean) / std built from that
    metadata, gives the scores tinycnn gives on the same pixels through the checkpoint's own transform."""
    from tinycnn.data import apply_transform
    from tinycnn.train.builders import transform_of

    tinycnn.manual_seed(6)
    model = models.get("minivgg", num_classes=3, input_shape=(3, 8, 8))
    randomize_batch_norms(model, np.random.default_rng(6))
    imagenet_mean, imagenet_std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    preprocessing = {"scale": "1/255", "mean": np.array(imagenet_mean, dtype=np.float32),
                     "std": np.array(imagenet_std, dtype=np.float32)}
    meta = {"model": "minivgg", "model_options": {}, "input_shape": [3, 8, 8], "classes": ["0", "1", "2"],
            "source": "torchvision minivgg"}
    tinycnn.save({"model": model.state_dict(), "meta": meta, "preprocessing": preprocessing}, tmp_path / "tv.npz")
    tinycnn.onnx.export_checkpoint(tmp_path / "tv.npz", tmp_path / "tv.onnx")
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "tv.onnx")).metadata_props}
    described = json.loads(props["preprocessing"])
    assert sorted(described) == ["mean", "scale", "std"] and described["scale"] == "1/255"
    np.testing.assert_allclose(described["mean"], imagenet_mean, rtol=1e-6)    # stored as float32
    np.testing.assert_allclose(described["std"], imagenet_std, rtol=1e-6)

    pixels = np.random.default_rng(7).integers(0, 256, size=(2, 3, 8, 8), dtype=np.uint8)
    channel = (slice(None), None, None)
    x = ((pixels / 255 - np.array(described["mean"])[channel]) / np.array(described["std"])[channel])
    (got,) = ort.InferenceSession(str(tmp_path / "tv.onnx")).run(None, {"input": x.astype(np.float32)})
    with tinycnn.no_grad():
        expected = model.eval()(tinycnn.Tensor(apply_transform(transform_of(preprocessing), pixels))).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max())   # float32 sums


# ----- bad input -----------------------------------------------------------------------------------
class Swish(tinycnn.Function):
    def forward(self, x):
        return x / (1 + np.exp(-x))


class SwishLayer(nn.Module):
    def forward(self, x):
        return Swish()(x)


def test_unsupported_op_names_the_op_and_the_layer(tmp_path):
    model = nn.Sequential(nn.Linear(4, 4), SwishLayer())
    with pytest.raises(NotImplementedError, match=r"Swish in layer '1' \(SwishLayer\)"):
        tinycnn.onnx.export(model, tmp_path / "m.onnx", (4,))
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("layer, message", [
    (nn.LocalResponseNorm(size=4), "size 4 is even"),
    (nn.Flatten(start_dim=0), "changes axis 0, the batch"),
])
def test_ops_onnx_cannot_express(layer, message, tmp_path):
    with pytest.raises(NotImplementedError, match=message):
        tinycnn.onnx.export(nn.Sequential(layer), tmp_path / "m.onnx", (2, 3, 3))


def test_indexing_the_batch_is_refused(tmp_path):
    class First(nn.Module):
        def forward(self, x):
            return x[0] * 2.0
    with pytest.raises(NotImplementedError, match="GetItem at 'First' indexes axis 0"):
        tinycnn.onnx.export(First(), tmp_path / "m.onnx", (3,))


def test_training_batch_norm_is_refused(tmp_path):
    class AlwaysTraining(nn.Module):
        def forward(self, x):
            return F.batch_norm(x, None, None, np.zeros(3), np.ones(3), training=True)
    with pytest.raises(ValueError, match="training mode"):
        tinycnn.onnx.export(AlwaysTraining(), tmp_path / "m.onnx", (3, 2, 2))


@pytest.mark.parametrize("model, shape, error, message", [
    ("not a model", (3,), TypeError, "expected a tinycnn.nn.Module, got str"),
    (nn.Linear(3, 2), None, TypeError, "Linear has no input_shape attribute"),
    (nn.Linear(3, 2), (0, 3), ValueError, "tuple of positive ints"),
    (nn.Linear(3, 2), "3", ValueError, "tuple of positive ints"),
    (nn.Linear(3, 2), (3.0,), ValueError, "tuple of positive ints"),
    (nn.Linear(3, 2), (4,), ValueError, r"Linear does not run on an input of shape \(1, 4\)"),
])
def test_bad_arguments(model, shape, error, message, tmp_path):
    with pytest.raises(error, match=message):
        tinycnn.onnx.export(model, tmp_path / "m.onnx", shape)


def test_path_that_is_a_folder(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder"):
        tinycnn.onnx.export(nn.Linear(3, 2), tmp_path, (3,))


def test_missing_onnx_package_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(__import__("sys").modules, "onnx", None)
    with pytest.raises(ImportError, match=r"tinycnn\[onnx\]"):
        tinycnn.onnx.export(nn.Linear(3, 2), tmp_path / "m.onnx", (3,))
