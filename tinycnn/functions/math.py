"""The ops behind Tensor's operators and methods, gathered in one module.

Tensor's ``x + y``, ``x @ w``, ``x.sum()``, ``x[1:]`` and ``x.to(...)`` (tensor_ops.py) call
the functions here, and the ONNX exporter maps their Function classes. They are written
in four files, by kind:

- elementwise.py: add, sub, mul, div, neg, pow, exp, log, sqrt, and ``sum_to``, which
  reduces a broadcast gradient back to an input's shape;
- reduction.py: sum, mean, max over axes;
- linalg.py: matmul and linear (the GEMMs);
- shape.py: reshape, transpose, getitem, and the dtype/device conversions cast and to_device.

    >>> import tinycnn, tinycnn.functions as F
    >>> a = tinycnn.Tensor([[1.0, 2.0]], requires_grad=True)
    >>> F.add(a, 1.0).sum().backward()
    >>> a.grad
    array([[1., 1.]], dtype=float32)
"""
from .elementwise import (Add, Div, Exp, Log, Mul, Neg, Pow, Sqrt, Sub, add, div, exp, log, mul, neg, pow, sqrt,
                          sub, sum_to)
from .linalg import Linear, MatMul, linear, matmul
from .reduction import Max, Sum, max, mean, sum
from .shape import Cast, GetItem, Reshape, ToDevice, Transpose, cast, getitem, reshape, to_device, transpose

__all__ = [
    "add", "sub", "mul", "div", "neg", "pow", "exp", "log", "sqrt", "sum_to",
    "sum", "mean", "max", "matmul", "linear",
    "reshape", "transpose", "getitem", "cast", "to_device",
    "Add", "Sub", "Mul", "Div", "Neg", "Pow", "Exp", "Log", "Sqrt", "Sum", "Max", "MatMul", "Linear",
    "Reshape", "Transpose", "GetItem", "Cast", "ToDevice",
]
