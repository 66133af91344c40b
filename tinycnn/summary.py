"""Layer table of a model, as Keras' ``model.summary()`` prints it, plus MACs and receptive fields.

``summary(model, input_shape)`` runs one forward pass on zeros (eval mode, no graph) and
records every leaf module call in execution order: its name, type, output shape, parameters
(trainable + non-trainable, Keras' convention: BatchNorm's running mean/variance are
non-trainable parameters), multiply-accumulates and receptive field.

    >>> import tinycnn.nn as nn
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(72, 10))
    >>> s = summary(net, (3, 8, 8))
    >>> s.total_params, s.total_macs          # 224 + 730; 6*6*8*27 + 72*10
    (954, 8496)
    >>> s.rows[2].receptive_field, s.rows[2].jump   # after conv 3x3 and pool 2/2
    ((4, 4), (2, 2))

Conventions:
- MACs per image: Conv2d = OH*OW*OC*(C/groups*KH*KW), Linear = in*out per output row
  (biases, BatchNorm, pooling and activations count 0).
- Receptive field (size/jump, per axis, in input pixels) is propagated through every op of
  the forward pass, so it works for branching models: a convolution or pooling of kernel k,
  stride s, dilation d maps (r, j) to (r + d(k-1)j, js); other ops keep the largest field
  among their inputs, per axis (the longest path); padding keeps it; ops that otherwise
  change the spatial size (flatten, global pooling, ...) end it ("-" in the table).
- Activation memory: the values and bytes of every leaf output for one image (the forward pass
  alone; ``activation_values``, ``activation_bytes``). With ``backward=True`` the forward also
  records the graph, and ``backward_bytes`` is what each layer's part of it keeps alive for the
  backward pass: arrays reachable from the layer's output back to its inputs (saved inputs,
  masks, indices...), each counted once, at the first layer that holds it; parameters and
  buffers are not counted. ``Summary.memory_table()`` prints both.
"""
import argparse
import gc
from dataclasses import dataclass

import numpy as np

from . import nn
from .backend import is_cupy_array, to_device
from .functions.array import Pad
from .functions.conv import Conv2d as ConvFunction
from .functions.pool import AvgPool2d as AvgPoolFunction, MaxPool2d as MaxPoolFunction
from .autograd import FunctionHook
from .tensor import Tensor, enable_grad, no_grad


@dataclass
class LayerRow:
    """One leaf module call: ``output_shape`` excludes the batch; counts are per image."""
    name: str
    kind: str
    output_shape: tuple
    params: int
    trainable_params: int
    macs: int
    receptive_field: tuple = None    # (height, width) in input pixels, None once spatial structure is gone
    jump: tuple = None               # input pixels between neighbouring outputs
    activation_bytes: int = 0        # size of the output for one image
    activation_values: int = 0       # number of values of the output for one image
    backward_bytes: int = None       # kept for backward, for the whole batch (summary(..., backward=True))


@dataclass
class ReceptiveField:
    size: tuple
    jump: tuple


class Summary:
    """What ``summary`` measured; ``str(summary)`` is the Keras-style table."""

    def __init__(self, rows, trainable_params, non_trainable_params, input_shape, batch_size):
        self.rows = rows
        self.trainable_params = trainable_params
        self.non_trainable_params = non_trainable_params
        self.total_params = trainable_params + non_trainable_params
        self.total_macs = sum(row.macs for row in rows)
        self.activation_bytes = sum(row.activation_bytes for row in rows)
        self.activation_values = sum(row.activation_values for row in rows)
        measured = [row.backward_bytes for row in rows if row.backward_bytes is not None]
        self.backward_bytes = sum(measured) if measured else None
        self.input_shape = tuple(input_shape)
        self.batch_size = batch_size

    def __str__(self):
        header = ("Layer (type)", "Output Shape", "Param #", "MACs", "RF (size/jump)")
        cells = [(f"{row.name} ({row.kind})", str((None,) + row.output_shape), f"{row.params:,}",
                  f"{row.macs:,}", _format_field(row)) for row in self.rows]
        widths = [max(len(line[i]) for line in [header] + cells) for i in range(len(header))]

        def line(values):
            left = f"{values[0]:<{widths[0]}}  {values[1]:<{widths[1]}}"
            return left + "".join(f"  {v:>{w}}" for v, w in zip(values[2:], widths[2:]))

        rule = "=" * len(line(header))
        return "\n".join(
            [f"Input: (None,) + {self.input_shape}", rule, line(header), rule]
            + [line(values) for values in cells]
            + [rule,
               f"Total params: {self.total_params:,}",
               f"Trainable params: {self.trainable_params:,}",
               f"Non-trainable params: {self.non_trainable_params:,}",
               f"Multiply-adds per image: {self.total_macs:,} ({_human(self.total_macs)})",
               f"Forward activation memory per image: {self.activation_bytes:,} bytes "
               f"({self.activation_bytes / 2 ** 20:.1f} MiB)"])

    def memory_table(self):
        """Per layer: output values and bytes per image (forward), and what backward keeps, if measured.

            >>> import tinycnn.nn as nn
            >>> s = summary(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()), (1, 5, 5), backward=True)
            >>> print(s.memory_table())          # doctest: +NORMALIZE_WHITESPACE
            Layer (type)  Output values  Forward bytes  Backward keeps
            0 (Conv2d)               18             72             100
            1 (ReLU)                 18             72              90
            Total                    36            144             190

        The convolution keeps its input (25 float32 values), the ReLU its input and a 1-byte mask.
        """
        backward = self.backward_bytes is not None
        header = ("Layer (type)", "Output values", "Forward bytes") + (("Backward keeps",) if backward else ())
        cells = [(f"{row.name} ({row.kind})", f"{row.activation_values:,}", f"{row.activation_bytes:,}")
                 + ((f"{row.backward_bytes:,}",) if backward else ()) for row in self.rows]
        cells.append(("Total", f"{self.activation_values:,}", f"{self.activation_bytes:,}")
                     + ((f"{self.backward_bytes:,}",) if backward else ()))
        widths = [max(len(line[i]) for line in [header] + cells) for i in range(len(header))]
        return "\n".join(f"{line[0]:<{widths[0]}}" + "".join(f"  {v:>{w}}" for v, w in zip(line[1:], widths[1:]))
                         for line in [header] + cells)

    def __repr__(self):
        return (f"Summary(total_params={self.total_params:,}, total_macs={self.total_macs:,}, "
                f"layers={len(self.rows)})")


def summary(model, input_shape=None, batch_size=1, backward=False):
    """Run ``model`` once on zeros of shape (batch_size, *input_shape) and return a Summary.

    ``input_shape`` (C, H, W) defaults to ``model.input_shape`` (set by tinycnn.models builders).
    Totals count every parameter and buffer of the model, also those of layers the eval-mode
    forward skips (e.g. GoogLeNet's auxiliary classifiers); rows list the layers that ran.
    ``backward=True`` records the graph (still in eval mode: dropout keeps no mask, BatchNorm
    uses its running statistics) and measures each row's ``backward_bytes``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"summary: expected a tinycnn.nn.Module, got {type(model).__name__}")
    if input_shape is None:
        input_shape = getattr(model, "input_shape", None)
        if input_shape is None:
            raise ValueError(f"summary: {type(model).__name__} has no input_shape attribute; pass input_shape")
    input_shape = tuple(int(n) for n in input_shape)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"summary: batch_size must be a positive int, got {batch_size!r}")

    names = {id(module): name for name, module in model.named_modules()}
    rows = []
    # Arrays already counted as kept for backward; parameters and buffers never count.
    claimed = {id(_root(p.data)) for p in model.parameters()} | {id(_root(b)) for b in model.buffers()}

    def record(module, inputs, output):
        if id(module) in names and _is_leaf(module) and isinstance(output, Tensor):
            rows.append(_row(names[id(module)] or type(module).__name__, module, output, batch_size))
            if backward:
                rows[-1].backward_bytes = _kept_bytes(output, inputs, claimed)

    x = Tensor(to_device(np.zeros((batch_size,) + input_shape, dtype=np.float32), model.device))
    x.receptive_field = ReceptiveField((1, 1), (1, 1))
    modes = [(module, module.training) for module in model.modules()]
    handle = nn.register_global_forward_hook(record)
    model.eval()
    try:
        with (enable_grad() if backward else no_grad()), _ReceptiveFieldHook():
            output = model(x)
        del output       # held until every row was measured: it keeps the graph alive
    finally:
        handle.remove()
        for module, training in modes:
            module.training = training

    trainable, frozen = _count_parameters(model)
    buffers = sum(int(b.size) for b in model.buffers())
    return Summary(rows, trainable, frozen + buffers, input_shape, batch_size)


def print_summary(name, input_shape=None, **options):
    """Build model ``name`` from the registry, print its summary at its native input size, return it.

        >>> s = print_summary("lenet")          # doctest: +ELLIPSIS
        Input: (None,) + (1, 32, 32)
        ...
        Total params: 61,706
        ...
    """
    from . import models   # imported here: models sits above the engine
    model = models.get(name, **options)
    result = summary(model, input_shape)
    print(result)
    return result


def main(argv=None):
    """``python -m tinycnn.summary vgg16 [--input-shape C H W] [--num-classes N] [--memory]``."""
    parser = argparse.ArgumentParser(prog="tinycnn summary", description=main.__doc__)
    parser.add_argument("model", help="a registered model name, e.g. vgg16, minigooglenet")
    parser.add_argument("--input-shape", type=int, nargs=3, metavar=("C", "H", "W"))
    parser.add_argument("--num-classes", type=int)
    parser.add_argument("--memory", action="store_true",
                        help="also print each layer's output values and bytes, and what backward keeps")
    args = parser.parse_args(argv)
    options = {} if args.num_classes is None else {"num_classes": args.num_classes}
    if not args.memory:
        print_summary(args.model, args.input_shape, **options)
        return 0
    from . import models
    result = summary(models.get(args.model, **options), args.input_shape, backward=True)
    print(f"{result}\n\n{result.memory_table()}")
    return 0


# ----- per-layer counts --------------------------------------------------------------------------

def _is_leaf(module):
    return next(module.children(), None) is None


def _count_parameters(module):
    """(trainable, frozen) parameter counts of ``module`` and its descendants."""
    trainable = frozen = 0
    for p in module.parameters():
        if p.requires_grad:
            trainable += p.numel()
        else:
            frozen += p.numel()
    return trainable, frozen


def _row(name, module, output, batch_size):
    trainable, frozen = _count_parameters(module)
    buffers = sum(int(b.size) for b in module.buffers())
    per_image = output.numel() // batch_size
    field = getattr(output, "receptive_field", None)
    return LayerRow(name, type(module).__name__, tuple(output.shape[1:]), trainable + frozen + buffers,
                    trainable, _macs(module, per_image), field and field.size, field and field.jump,
                    per_image * output.data.itemsize, per_image)


def _is_array(value):
    return isinstance(value, np.ndarray) or is_cupy_array(value)


def _root(array):
    """The array that owns the memory of ``array`` (a view's base, followed to the end)."""
    while _is_array(getattr(array, "base", None)):
        array = array.base
    return array


def _kept_bytes(output, inputs, claimed):
    """Bytes of the arrays the graph from ``output`` back to ``inputs`` keeps alive, not yet in ``claimed``.

    A walk over Python references (gc.get_referents) through the engine's own objects, so it
    sees whatever a Function saved, under any attribute name. It stops at the Functions that
    made the inputs: the history before belongs to the layers before. An input's values count
    only where a Function saved them (the graph's edges hold no tensors), and the output's
    only if the graph refers to them (e.g. a saved output).
    """
    boundary = {id(t.creator) for t in inputs if isinstance(t, Tensor) and t.creator is not None}
    stack = [value for value in vars(output).values() if value is not output.data]
    seen, total = {id(output)} | boundary, 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if _is_array(obj):
            root = _root(obj)
            if id(root) not in claimed:
                claimed.add(id(root))
                total += root.nbytes
        elif isinstance(obj, (dict, list, tuple)) or _is_engine_object(obj):
            stack.extend(gc.get_referents(obj))
    return total


def _is_engine_object(obj):
    """A tinycnn object other than a Module (Tensors, Functions, their helpers)."""
    return type(obj).__module__.split(".")[0] in ("tinycnn", "kernels") and not isinstance(obj, (nn.Module, type))


def _macs(module, outputs_per_image):
    """Multiply-accumulates of one image through ``module`` (only Conv2d and Linear count)."""
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return outputs_per_image * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return outputs_per_image * module.in_features
    return 0


def _human(count):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            return f"{count / scale:.2f} {unit}"
    return str(count)


def _format_field(row):
    if row.receptive_field is None:
        return "-"
    show = lambda pair: str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"
    return f"{show(row.receptive_field)}/{show(row.jump)}"


# ----- receptive fields ----------------------------------------------------------------------------

class _ReceptiveFieldHook(FunctionHook):
    """Gives every Function output made inside its ``with`` block a ``receptive_field``
    attribute, so the fields follow the real data flow of any model, whatever its branches
    and merges."""

    def forward_postprocess(self, function, inputs, outputs):
        for output in outputs:
            output.receptive_field = _propagate(function, inputs, output)


def _propagate(function, inputs, output):
    tracked = [t for t in inputs if isinstance(t, Tensor) and getattr(t, "receptive_field", None) is not None]
    if not tracked:
        return None
    # Merges (concat, add, ...) keep the largest field per axis: the longest path.
    size = tuple(max(t.receptive_field.size[axis] for t in tracked) for axis in (0, 1))
    jump = tuple(max(t.receptive_field.jump[axis] for t in tracked) for axis in (0, 1))
    source = tracked[0]
    if isinstance(function, ConvFunction):
        kernel, stride, dilation = inputs[1].shape[2:], function.stride, function.dilation
    elif isinstance(function, (MaxPoolFunction, AvgPoolFunction)):
        kernel, stride, dilation = function.kernel, function.stride, (1, 1)
    elif isinstance(function, Pad) or (output.ndim == 4 and source.ndim == 4 and output.shape[2:] == source.shape[2:]):
        return ReceptiveField(size, jump)
    else:
        return None
    return ReceptiveField(tuple(r + d * (k - 1) * j for r, k, d, j in zip(size, kernel, dilation, jump)),
                          tuple(j * s for j, s in zip(jump, stride)))


if __name__ == "__main__":
    raise SystemExit(main())
