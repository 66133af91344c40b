"""Export a tinycnn model as an ONNX file (opset 17) through the ``onnx`` package.

The exporter runs the model once, in eval mode, on zeros of ``input_shape`` with a batch of 1,
and records every Function applied (a ``tinycnn.FunctionHook``). Each Function becomes one or
a few ONNX nodes (``tinycnn/onnx/ops.py``: one converter per op type, in one table).
Parameters and buffers become initializers named as in ``state_dict()``, other constants
initializers named after their layer; a Function of constants only (nothing from the input
reaches it) was computed once, and its output is a constant. Nodes are named after the layer
they ran in (``layer1.0.conv1/Conv``). Axis 0, the batch, is symbolic ("N"): the file takes
any batch size. Dropout leaves no node: in eval mode ``F.dropout`` returns its input.

    >>> import os, tempfile, tinycnn.models as models, tinycnn.onnx
    >>> net = models.get("lenet", num_classes=10)
    >>> path = os.path.join(tempfile.mkdtemp(), "lenet.onnx")
    >>> graph = tinycnn.onnx.export(net, path, (1, 32, 32)).graph
    >>> [node.op_type for node in graph.node][:4]
    ['Conv', 'Tanh', 'MaxPool', 'Conv']
    >>> graph.input[0].type.tensor_type.shape.dim[0].dim_param
    'N'

Run the file with onnxruntime: ``InferenceSession(path).run(None, {"input": images})``.
"""
import json
import os
import sys

import numpy as np

from ..autograd import FunctionHook
from ..backend import get_array_module, to_device
from ..functions.validate import is_int
from ..grad_mode import no_grad
from ..nn import Module
from ..tensor import Tensor
from .ops import converter_for

OPSET = 17       # ONNX's opset of 2022 (onnx 1.12), run by onnxruntime 1.14 and later
IR_VERSION = 8   # the file format version that goes with opset 17


def export(model, path, input_shape=None, metadata=None):
    """Write ``model`` as an ONNX file at ``path``; returns the ``onnx.ModelProto``.

    ``input_shape``: the shape of one example without the batch axis, (C, H, W) for images;
    by default the model's ``input_shape`` attribute (every zoo model has one). ``metadata``:
    an optional dict stored as text in the file's ``metadata_props``. The graph's input is
    ``"input"``, its output ``"output"`` (``"output_0"``, ... for several). An op without an
    ONNX mapping raises NotImplementedError naming the op and the layer it ran in.
    """
    onnx = _import_onnx()
    if not isinstance(model, Module):
        raise TypeError(f"tinycnn.onnx.export: expected a tinycnn.nn.Module, got {type(model).__name__}")
    input_shape = _checked_input_shape(model, input_shape)
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"tinycnn.onnx.export: {path!r} is a folder; give the path of the .onnx file")
    records, x, outputs = trace(model, input_shape)
    model_proto = _empty_model(onnx, metadata)
    _convert(onnx, model, records, x, outputs, model_proto.graph)
    data = model_proto.SerializeToString()     # once, for the checker and the file
    onnx.checker.check_model(data)
    with open(path, "wb") as file:
        file.write(data)
    return model_proto


def _empty_model(onnx, metadata):
    from .. import __version__
    model_proto = onnx.ModelProto(ir_version=IR_VERSION, producer_name="tinycnn", producer_version=__version__)
    model_proto.opset_import.add(domain="", version=OPSET)
    if metadata:
        onnx.helper.set_model_props(model_proto, {str(key): str(value) for key, value in metadata.items()})
    return model_proto


def _convert(onnx, model, records, x, outputs, graph_proto):
    """Fill ``graph_proto`` from a traced forward pass: each recorded Function through its converter."""
    graph = _Graph(onnx, model)
    graph.bind(x, "input")
    live = {id(x)}           # the tensors computed from the input
    for function, inputs, results, layer in records:
        if not any(id(t) in live for t in inputs):
            continue         # constants only: its outputs become initializers where used
        convert = converter_for(function)
        if convert is None:
            where = f"layer {layer!r} ({type(dict(model.named_modules())[layer]).__name__})" if layer else "forward"
            raise NotImplementedError(f"tinycnn.onnx.export: the op {type(function).__name__} in {where} of "
                                      f"{type(model).__name__} has no ONNX mapping (see tinycnn/onnx/ops.py)")
        graph.layer, graph.result_shape = layer or type(model).__name__, tuple(results[0].shape)
        names = convert(graph, function, *[graph.value(t) for t in inputs])
        for tensor, name in zip(results, (names,) if isinstance(names, str) else names):
            graph.bind(tensor, name)
            live.add(id(tensor))
    output_names = ["output"] if len(outputs) == 1 else [f"output_{i}" for i in range(len(outputs))]
    for tensor, name in zip(outputs, output_names):
        graph.name_output(graph.value(tensor), name)
    value_info = onnx.helper.make_tensor_value_info
    graph_proto.name = type(model).__name__
    graph_proto.input.append(value_info("input", graph.tensor_type(x.dtype), ["N", *x.shape[1:]]))
    graph_proto.output.extend(value_info(name, graph.tensor_type(t.dtype), ["N", *t.shape[1:]] if t.ndim else [])
                              for t, name in zip(outputs, output_names))
    graph_proto.node.extend(graph.nodes)
    graph_proto.initializer.extend(graph.initializers)


def export_checkpoint(checkpoint_path, out_path):
    """Export the model of a ``tinycnn train`` checkpoint, rebuilt as ``tinycnn evaluate`` does.

    The graph takes preprocessed images, not pixels: float32 ``"input"`` of shape (N, C, H, W),
    channels first, (C, H, W) the checkpoint's ``input_shape``, each value
    ``(pixel * scale - mean[c]) / std[c]`` for a pixel 0..255 of channel c. ``scale`` is 1/255;
    ``mean`` is the training set's channel means (``tinycnn train``, no ``std``: divide by 1) or
    ImageNet's with ImageNet's ``std`` (a converted torchvision checkpoint). The file's metadata
    holds the model's name, its classes and that preprocessing (``scale``, ``mean``, and ``std``
    where there is one), as JSON text. A missing or damaged checkpoint raises
    ``tinycnn.cli_setup.CLIError`` naming the file.
    """
    from ..cli_setup import model_from_checkpoint, read_checkpoint_or_fail

    checkpoint = read_checkpoint_or_fail(checkpoint_path)
    model, meta, classes = model_from_checkpoint(checkpoint, checkpoint_path)
    metadata = {"model": meta["model"], "classes": json.dumps([str(c) for c in classes])}
    preprocessing = checkpoint.get("preprocessing")
    if isinstance(preprocessing, dict) and "mean" in preprocessing:
        described = {"scale": str(preprocessing.get("scale", "1/255")),
                     "mean": np.asarray(preprocessing["mean"]).tolist()}
        if preprocessing.get("std") is not None:
            described["std"] = np.asarray(preprocessing["std"]).tolist()
        metadata["preprocessing"] = json.dumps(described)
    return export(model, out_path, tuple(meta["input_shape"]), metadata)


# ----- tracing -------------------------------------------------------------------------------
class _Recorder(FunctionHook):
    """Keeps every Function applied, with its input and output Tensors (kept alive, so their
    ids stay theirs) and the name of the model layer it ran in."""

    def __init__(self, model):
        self.records = []
        self.layers = {id(module): name for name, module in model.named_modules()}

    def forward_postprocess(self, function, inputs, outputs):
        self.records.append((function, tuple(inputs), tuple(outputs), self.current_layer()))

    def current_layer(self):
        """The innermost layer of the model whose method is running: the nearest frame on the
        call stack whose ``self`` is one of the model's modules ("" for the model itself)."""
        frame = sys._getframe(2)
        while frame is not None:
            owner = frame.f_locals.get("self") if "self" in frame.f_code.co_varnames else None
            if owner is not None and id(owner) in self.layers:
                return self.layers[id(owner)]
            frame = frame.f_back
        return ""


def trace(model, input_shape):
    """Run ``model`` once in eval mode on zeros of shape (1, *input_shape), in the dtype and on
    the device of its parameters; -> (records, input Tensor, output Tensors). Each record is
    (Function, input Tensors, output Tensors, layer name). The modes are restored after."""
    modes = [(module, module.training) for module in model.modules()]
    parameter = next(iter(model.parameters()), None)
    xp = np if parameter is None else get_array_module(parameter.data)
    dtype = parameter.dtype if parameter is not None and parameter.dtype.kind == "f" else np.float32
    x = Tensor(xp.zeros((1, *input_shape), dtype=dtype))
    model.eval()
    try:
        with no_grad(), _Recorder(model) as recorder:
            outputs = model(x)
    except (ValueError, TypeError, IndexError) as error:
        raise ValueError(f"tinycnn.onnx.export: {type(model).__name__} does not run on an input of shape "
                         f"{(1, *input_shape)}: {error}") from error
    finally:
        for module, mode in modes:
            module.training = mode
    outputs = tuple(outputs) if isinstance(outputs, (tuple, list)) else (outputs,)
    if not outputs or not all(isinstance(y, Tensor) for y in outputs):
        raise TypeError(f"tinycnn.onnx.export: {type(model).__name__} must return a Tensor or a tuple of "
                        f"Tensors, got {type(outputs[0] if len(outputs) == 1 else outputs).__name__}")
    return recorder.records, x, outputs


def _checked_input_shape(model, input_shape):
    if input_shape is None:
        input_shape = getattr(model, "input_shape", None)
        if input_shape is None:
            raise TypeError(f"tinycnn.onnx.export: {type(model).__name__} has no input_shape attribute; pass "
                            "input_shape, one example's shape without the batch axis, as (3, 32, 32)")
    if not isinstance(input_shape, (tuple, list)) or not input_shape or \
            not all(is_int(size) and size > 0 for size in input_shape):
        raise ValueError(f"tinycnn.onnx.export: input_shape must be one example's shape without the batch "
                         f"axis, a tuple of positive ints as (3, 32, 32); got {input_shape!r}")
    return tuple(int(size) for size in input_shape)


def _import_onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("tinycnn.onnx needs the onnx package: pip install 'tinycnn[onnx]' "
                          "(or pip install onnx)") from None
    return onnx


# ----- the graph being built -----------------------------------------------------------------
class _Graph:
    """Nodes and initializers of the ONNX graph, and the name of every traced value in it.
    The converters of ops.py add to it (see that module's docstring)."""

    def __init__(self, onnx, model):
        self.onnx = onnx
        self.nodes, self.initializers, self.outputs = [], [], []
        self.names = {}                    # id(Tensor) or (id(array), dtype) -> name in the graph
        self.shapes, self.dtypes = {}, {}  # name -> traced shape and dtype
        self.taken = {"input", "output"}
        self.state_names = {id(p): name for name, p in model.named_parameters()}
        self.state_names.update((id(b), name) for name, b in model.named_buffers())
        self.layer, self.result_shape = "", None

    def node(self, op_type, inputs, outputs=None, **attributes):
        """Add a node named after the layer; -> its output's name (a list of ``outputs`` names)."""
        name = self._unique(f"{self.layer}/{op_type}")
        results = [name] if outputs is None else [f"{name}:{i}" for i in range(outputs)]
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, results, name=name, **attributes))
        return results[0] if outputs is None else results

    def constant(self, value, dtype=np.int64):
        """A new initializer holding ``value`` (axes, pads, scalars), int64 by default."""
        return self._add(np.asarray(value, dtype), f"{self.layer}/constant")

    def initializer(self, array, dtype=None):
        """The initializer of a parameter, buffer or constant array, added on first use (one per
        array and dtype), named as in ``state_dict()`` where it is the model's."""
        key = (id(array), None if dtype is None else np.dtype(dtype).str)
        if key not in self.names:
            data = to_device(array.data if isinstance(array, Tensor) else array, "cpu")
            data = data if dtype is None else data.astype(dtype, copy=False)
            self.names[key] = self._add(data, self.state_names.get(id(array), f"{self.layer}/constant"))
        return self.names[key]

    def value(self, tensor):
        """The name of a traced Tensor: a node's output, the input, or else an initializer."""
        return self.names.get(id(tensor)) or self.initializer(tensor)

    def bind(self, tensor, name):
        self.names[id(tensor)] = name
        self.shapes.setdefault(name, tuple(tensor.shape))
        self.dtypes.setdefault(name, tensor.dtype)

    def shape(self, name):
        return self.shapes[name]

    def dtype(self, name):
        return self.dtypes[name]

    def tensor_type(self, dtype):
        """ONNX's element type for a NumPy dtype (TensorProto.FLOAT for float32)."""
        return self.onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))

    def name_output(self, name, output):
        """Rename the node output ``name`` to the graph output ``output``; the input, an
        initializer or a value already an output gets an Identity node instead."""
        if name in self.outputs or not any(name in node.output for node in self.nodes):
            self.nodes.append(self.onnx.helper.make_node("Identity", [name], [output], name=output))
        else:
            for node in self.nodes:
                for field in (node.input, node.output):
                    for i, used in enumerate(field):
                        if used == name:
                            field[i] = output
            self.names = {key: output if value == name else value for key, value in self.names.items()}
        self.outputs.append(output)

    def _add(self, array, name):
        name = self._unique(name)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(array), name))
        self.shapes[name], self.dtypes[name] = tuple(array.shape), array.dtype
        return name

    def _unique(self, name):
        candidate, count = name, 1
        while candidate in self.taken:
            count += 1
            candidate = f"{name}_{count}"
        self.taken.add(candidate)
        return candidate
