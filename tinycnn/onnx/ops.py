"""How each tinycnn Function becomes ONNX nodes: one small converter per op type, in one table.

A converter gets the graph being built ``g``, the recorded Function ``f`` (its hyper-parameters
are its attributes: ``f.stride``, ``f.axis``, ...) and the names its inputs have in the ONNX
graph. It adds nodes with ``g.node(op_type, inputs, **attributes)``, which returns the name of
the node's output, and returns the name of the value holding the Function's output:

    def relu6(g, f, x):                         # min(max(x, 0), 6)
        return g.node("Clip", [x, g.constant(0, g.dtype(x)), g.constant(6, g.dtype(x))])

``g.shape(name)`` and ``g.dtype(name)`` are the traced shape and dtype of an input,
``g.result_shape`` the shape of the Function's output, ``g.constant(value, dtype)`` adds a
small initializer (axes, pads, scalars) and ``g.initializer(array)`` one for a buffer such as
BatchNorm's running mean. Axis 0 is the batch, symbolic in the graph ("N").
"""
import numpy as np

from ..functions import activation, array, conv, math, norm, pool


def unary(op_type):
    """The converter of an elementwise op with one input and no attribute: ReLU -> Relu, ..."""
    def convert(g, f, x):
        return g.node(op_type, [x])
    return convert


def binary(op_type):
    """The converter of an op with two inputs: Add -> Add, ...; ONNX broadcasts as NumPy does."""
    def convert(g, f, a, b):
        return g.node(op_type, [a, b])
    return convert


# ----- convolution, pooling, normalization -------------------------------------------------
def conv2d(g, f, x, weight, bias=None):
    """Conv2d -> Conv; grouped and depthwise convolutions are Conv's ``group`` attribute."""
    (py, px), (kh, kw) = f.padding, g.shape(weight)[2:]
    return g.node("Conv", [x, weight] + ([bias] if bias else []), kernel_shape=[kh, kw], strides=list(f.stride),
                  pads=[py, px, py, px], dilations=list(f.dilation), group=f.groups)


def pool_attributes(g, f, x):
    """Window attributes of MaxPool and AveragePool. ``ceil_mode`` is not kept by the Function:
    it was on where the output is longer than the rounded-down window count."""
    (kh, kw), (sy, sx), (py, px) = f.kernel, f.stride, f.padding
    h, w = g.shape(x)[2:]
    floor = ((h + 2 * py - kh) // sy + 1, (w + 2 * px - kw) // sx + 1)
    return dict(kernel_shape=[kh, kw], strides=[sy, sx], pads=[py, px, py, px],
                ceil_mode=int(tuple(f.out) != floor))


def max_pool2d(g, f, x):
    return g.node("MaxPool", [x], **pool_attributes(g, f, x))


def avg_pool2d(g, f, x):
    return g.node("AveragePool", [x], count_include_pad=int(f.count_include_pad), **pool_attributes(g, f, x))


def batch_norm(g, f, x, gamma, beta):
    """BatchNorm in eval form -> BatchNormalization with the running statistics. A fused ReLU
    (F.batch_norm_relu, F.relu_batch_norm) is a Relu node after or before it."""
    if f.training:
        raise ValueError(f"BatchNorm at {g.layer!r} ran in training mode (batch statistics); "
                         "only the eval form, with running statistics, can be exported")
    mean, var = g.initializer(f.running_mean, g.dtype(x)), g.initializer(f.running_var, g.dtype(x))
    if f.relu_input:
        x = g.node("Relu", [x])
    y = g.node("BatchNormalization", [x, gamma, beta, mean, var], epsilon=f.eps)
    return g.node("Relu", [y]) if f.relu else y


def local_response_norm(g, f, x):
    """LRN. tinycnn's alpha is the AlexNet paper's; ONNX's LRN divides alpha by ``size`` (as
    PyTorch does), so it gets alpha * size."""
    if f.size % 2 == 0:    # ONNX centres an even window one channel later than tinycnn (and PyTorch)
        raise NotImplementedError(f"LocalResponseNorm at {g.layer!r}: size {f.size} is even; ONNX's LRN "
                                  "window differs from tinycnn's for even sizes (odd sizes export)")
    return g.node("LRN", [x], size=f.size, alpha=f.alpha * f.size, beta=f.beta, bias=f.k)


def linear(g, f, x, weight, bias=None):
    """y = x @ W.T + b: Gemm for (N, features) inputs, else MatMul with W transposed, and Add."""
    if len(g.shape(x)) == 2:
        return g.node("Gemm", [x, weight] + ([bias] if bias else []), transB=1)
    y = g.node("MatMul", [x, g.node("Transpose", [weight])])
    return g.node("Add", [y, bias]) if bias else y


# ----- activations -------------------------------------------------------------------------
def relu6(g, f, x):
    """min(max(x, 0), 6) -> Clip."""
    return g.node("Clip", [x, g.constant(0, g.dtype(x)), g.constant(6, g.dtype(x))])


def leaky_relu(g, f, x):
    return g.node("LeakyRelu", [x], alpha=f.slope)


def elu(g, f, x):
    return g.node("Elu", [x], alpha=f.alpha)


def softmax(g, f, x):
    return g.node("Softmax", [x], axis=f.axis)


def log_softmax(g, f, x):
    return g.node("LogSoftmax", [x], axis=f.axis)


def power(g, f, x):
    return g.node("Pow", [x, g.constant(f.c, g.dtype(x))])


# ----- reductions and shapes ---------------------------------------------------------------
def axes_of(axis, ndim):
    """The reduced axes as non-negative ints (None: all of them)."""
    axes = range(ndim) if axis is None else (axis if isinstance(axis, tuple) else (axis,))
    return [a % ndim for a in axes]


def reduce_sum(g, f, x):
    """Sum -> ReduceSum; the global average pooling is Sum then Mul by 1/(H*W)."""
    axes = axes_of(f.axis, len(g.shape(x)))
    return g.node("ReduceSum", [x, g.constant(axes)], keepdims=int(f.keepdims))


def reduce_max(g, f, x):
    return g.node("ReduceMax", [x], axes=axes_of(f.axis, len(g.shape(x))), keepdims=int(f.keepdims))


def reshape(g, f, x):
    """Reshape (flatten, SE gates, channel shuffle) keeps axis 0, the batch: the target shape
    says 0 there, ONNX's "copy this size from the input"."""
    before, after = g.shape(x), g.result_shape
    if not before or not after or before[0] != after[0]:
        raise NotImplementedError(f"Reshape at {g.layer!r} changes axis 0, the batch: {before} -> {after}")
    return g.node("Reshape", [x, g.constant([0, *after[1:]])])


def transpose(g, f, x):
    ndim = len(g.shape(x))
    perm = list(range(ndim))[::-1] if f.axes is None else [a % ndim for a in f.axes]
    return g.node("Transpose", [x], perm=perm)


def concat(g, f, *xs):
    return g.node("Concat", list(xs), axis=f.axis)


def split(g, f, x):
    bounds = [0, *f.bounds, g.shape(x)[f.axis]]
    sizes = [int(b - a) for a, b in zip(bounds, bounds[1:])]
    return g.node("Split", [x, g.constant(sizes)], outputs=len(sizes), axis=f.axis)


def pad(g, f, x):
    """Constant padding (-inf before MiniGoogLeNet's "same" max pooling): ONNX wants all the
    befores, then all the afters."""
    pads = [before for before, _ in f.pad_width] + [after for _, after in f.pad_width]
    return g.node("Pad", [x, g.constant(pads), g.constant(f.value, g.dtype(x))], mode="constant")


def getitem(g, f, x):
    """Basic indexing -> Slice (then Squeeze for integer indices), as ResNet's option-A shortcut
    x[:, :, ::2, ::2]. Axis 0, the batch, must be taken whole."""
    shape = g.shape(x)
    index = f.index if isinstance(f.index, tuple) else (f.index,)
    if any(i is Ellipsis for i in index):
        at = index.index(Ellipsis)
        index = index[:at] + (slice(None),) * (len(shape) - len(index) + 1) + index[at + 1:]
    if not all(isinstance(i, (int, np.integer, slice)) for i in index):
        raise NotImplementedError(f"GetItem at {g.layer!r}: only ints, slices and ... export, got {f.index!r}")
    starts, ends, axes, steps, dropped = [], [], [], [], []
    for axis, (i, size) in enumerate(zip(index, shape)):
        if isinstance(i, slice):
            start, stop, step = i.indices(size)
            if step < 0 and stop < 0:       # runs to the first element: -1 would mean the last in ONNX
                stop = -2**63
        else:
            start, stop, step = int(i) % size, int(i) % size + 1, 1
            dropped.append(axis)
        if axis == 0 and (start, stop, step, dropped) != (0, size, 1, []):
            raise NotImplementedError(f"GetItem at {g.layer!r} indexes axis 0, the batch: {f.index!r}")
        if (start, stop, step) != (0, size, 1):
            starts, ends, axes, steps = starts + [start], ends + [stop], axes + [axis], steps + [step]
    if not axes and not dropped:
        return g.node("Identity", [x])
    y = g.node("Slice", [x, g.constant(starts), g.constant(ends), g.constant(axes), g.constant(steps)]) if axes else x
    return g.node("Squeeze", [y, g.constant(dropped)]) if dropped else y


def cast(g, f, x):
    return g.node("Cast", [x], to=g.tensor_type(f.dtype))


# ----- the table ---------------------------------------------------------------------------
CONVERTERS = {
    math.Add: binary("Add"), math.Sub: binary("Sub"), math.Mul: binary("Mul"), math.Div: binary("Div"),
    math.MatMul: binary("MatMul"), math.Neg: unary("Neg"), math.Exp: unary("Exp"), math.Log: unary("Log"),
    math.Sqrt: unary("Sqrt"), math.Pow: power, math.Sum: reduce_sum, math.Max: reduce_max,
    math.Reshape: reshape, math.Transpose: transpose, math.GetItem: getitem, math.Cast: cast, math.Linear: linear,
    activation.ReLU: unary("Relu"), activation.Sigmoid: unary("Sigmoid"), activation.Tanh: unary("Tanh"),
    activation.LeakyReLU: leaky_relu, activation.ELU: elu, activation.Softmax: softmax,
    activation.LogSoftmax: log_softmax,
    array.Concat: concat, array.Split: split, array.Pad: pad,
    conv.Conv2d: conv2d,    # the base class of every convolution algorithm
    pool.MaxPool2d: max_pool2d, pool.AvgPool2d: avg_pool2d,
    norm.BatchNorm: batch_norm, norm.LocalResponseNorm: local_response_norm,
}


def _add_relu6():
    """ReLU6 is F.relu6's Function and, in older trees, the MobileNets' own ReLU6Function."""
    from .. import models
    for owner, name in ((activation, "ReLU6"), (getattr(models, "mobilenet", None), "ReLU6Function")):
        cls = getattr(owner, name, None)
        if cls is not None:
            CONVERTERS[cls] = relu6


_add_relu6()


def converter_for(function):
    """The converter of ``function``'s class or of its nearest base class in the table (a
    convolution algorithm's class finds Conv2d's); None when there is none."""
    for cls in type(function).__mro__:
        if cls in CONVERTERS:
            return CONVERTERS[cls]
    return None
