"""Tensor and the define-by-run graph.

A ``Function`` computes on raw arrays (``forward``/``backward``); calling it on
Tensors records the graph. ``Tensor.backward()`` walks that graph in reverse
topological order with a heap keyed by generation number (no recursion, so a
chain of 5,000 ops is fine) and accumulates gradients into the leaves' ``.grad``.

    >>> import tinycnn
    >>> x = tinycnn.Tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad
    array([2., 4., 6.], dtype=float32)
"""
import contextlib
import heapq
import weakref

import numpy as np

from .backend import get_array_module, is_cupy_array, to_device, normalize_device, device_of


class _Config:
    grad_enabled = True


@contextlib.contextmanager
def no_grad():
    """Record no graph inside the block (inference, parameter updates).

        >>> with no_grad():
        ...     y = Tensor([1.0], requires_grad=True) * 2
        >>> y.requires_grad
        False
    """
    previous = _Config.grad_enabled
    _Config.grad_enabled = False
    try:
        yield
    finally:
        _Config.grad_enabled = previous


@contextlib.contextmanager
def enable_grad():
    """Re-enable graph recording inside a ``no_grad`` block."""
    previous = _Config.grad_enabled
    _Config.grad_enabled = True
    try:
        yield
    finally:
        _Config.grad_enabled = previous


def is_grad_enabled():
    return _Config.grad_enabled


def as_array(value, like=None):
    """Turn a Python scalar, list or array into an array.

    Python floats become float32 (or ``like``'s float dtype), so a scalar never
    upcasts a float32 tensor; NumPy/CuPy arrays keep their dtype.
    """
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, np.ndarray) or is_cupy_array(value):
        return value
    if isinstance(value, np.generic):   # NumPy scalars (e.g. a full reduction) keep their dtype
        return np.asarray(value)
    xp = get_array_module(like) if like is not None else np
    array = np.asarray(value)
    if like is not None and array.ndim == 0 and like.dtype.kind == "f":
        return xp.asarray(array, dtype=like.dtype)
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    return xp.asarray(array)


class Tensor:
    """An n-dimensional array that remembers how it was computed.

    ``data`` is a NumPy or CuPy array; ``grad`` is an array of the same shape
    (filled by ``backward``) or None. Python floats and lists become float32.

        >>> Tensor([[1.0, 2.0]]).shape
        (1, 2)
    """

    __array_ufunc__ = None  # make numpy defer to our reflected operators

    def __init__(self, data, requires_grad=False, dtype=None):
        data = as_array(data)
        if dtype is not None:
            data = data.astype(dtype, copy=False)
        if requires_grad and data.dtype.kind != "f":
            raise TypeError(f"Tensor: only floating-point tensors can require gradients, got dtype {data.dtype}")
        self.data = data
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self.creator = None
        self.generation = 0
        self.name = None

    # ----- array-like attributes -------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self):
        return device_of(self.data)

    @property
    def T(self):
        return self.transpose()

    def numel(self):
        return int(self.data.size)

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        body = repr(self.numpy()).replace("array(", "tensor(", 1)
        extras = []
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self.requires_grad:
            extras.append("requires_grad=True")
        if extras:
            body = body[:-1] + ", " + ", ".join(extras) + ")"
        return body

    # ----- graph ---------------------------------------------------------------
    def set_creator(self, function):
        self.creator = function
        self.generation = function.generation + 1

    @property
    def is_leaf(self):
        return self.creator is None

    def backward(self, grad=None, retain_graph=False):
        """Backpropagate from this tensor; leaves accumulate into ``.grad``.

        ``grad`` defaults to ones for a single-element tensor. The graph is
        freed afterwards unless ``retain_graph=True``.
        """
        if not self.requires_grad:
            raise RuntimeError("backward: tensor does not require grad (no input of its graph has requires_grad=True)")
        xp = get_array_module(self.data)
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward: grad can be omitted only for single-element tensors, got shape {self.shape}")
            grad = xp.ones_like(self.data)
        else:
            grad = as_array(grad, like=self.data)
            if grad.shape != self.shape:
                raise ValueError(f"backward: grad has shape {grad.shape}, tensor has shape {self.shape}")
        if self.creator is None:
            self._accumulate(grad)
            return
        _run_backward(self, grad, retain_graph)

    def _accumulate(self, grad):
        if self.grad is None:
            self.grad = grad.copy()
        else:
            self.grad += grad

    def zero_grad(self):
        self.grad = None

    def detach(self):
        """A tensor sharing the data with no history."""
        return Tensor(self.data)

    def requires_grad_(self, flag=True):
        if flag and self.data.dtype.kind != "f":
            raise TypeError(f"requires_grad_: only floating-point tensors can require gradients, got dtype {self.dtype}")
        self.requires_grad = flag
        return self

    # ----- conversions ---------------------------------------------------------
    def numpy(self):
        """The data as a NumPy array (copied to the host if on the GPU)."""
        return to_device(self.data, "cpu")

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item: only single-element tensors convert to a Python scalar, got shape {self.shape}")
        return self.data.reshape(()).item()

    def to(self, target):
        """Move to a device ("cpu", "cuda") or cast to a dtype; differentiable either way."""
        from .functions import math
        if isinstance(target, str) and (target in ("cpu", "gpu") or target.startswith("cuda")):
            return math.to_device(self, normalize_device(target))
        return math.cast(self, np.dtype(target))

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def float(self):
        from .functions import math
        return math.cast(self, np.float32)

    def double(self):
        from .functions import math
        return math.cast(self, np.float64)

    # ----- operators (defined in functions.math, attached below) --------------
    def __neg__(self):
        return _math().neg(self)

    def __add__(self, other):
        return _math().add(self, other)

    def __radd__(self, other):
        return _math().add(other, self)

    def __sub__(self, other):
        return _math().sub(self, other)

    def __rsub__(self, other):
        return _math().sub(other, self)

    def __mul__(self, other):
        return _math().mul(self, other)

    def __rmul__(self, other):
        return _math().mul(other, self)

    def __truediv__(self, other):
        return _math().div(self, other)

    def __rtruediv__(self, other):
        return _math().div(other, self)

    def __matmul__(self, other):
        return _math().matmul(self, other)

    def __rmatmul__(self, other):
        return _math().matmul(other, self)

    def __pow__(self, exponent):
        return _math().pow(self, exponent)

    def __getitem__(self, index):
        return _math().getitem(self, index)

    # comparisons: no gradient, boolean result
    def _compare(self, other, op):
        return Tensor(op(self.data, as_array(other, like=self.data)))

    def __lt__(self, other):
        return self._compare(other, lambda a, b: a < b)

    def __le__(self, other):
        return self._compare(other, lambda a, b: a <= b)

    def __gt__(self, other):
        return self._compare(other, lambda a, b: a > b)

    def __ge__(self, other):
        return self._compare(other, lambda a, b: a >= b)

    def __eq__(self, other):
        return self._compare(other, lambda a, b: a == b)

    def __ne__(self, other):
        return self._compare(other, lambda a, b: a != b)

    __hash__ = object.__hash__

    # ----- methods --------------------------------------------------------------
    def sum(self, axis=None, keepdims=False):
        return _math().sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return _math().mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return _math().max(self, axis, keepdims)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _math().reshape(self, shape)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _math().transpose(self, axes or None)

    def flatten(self, start_dim=0, end_dim=-1):
        """Merge dimensions start_dim..end_dim into one (as torch.flatten)."""
        ndim = self.ndim
        start, end = start_dim % max(ndim, 1), end_dim % max(ndim, 1)
        if ndim == 0:
            return self.reshape((1,))
        middle = int(np.prod(self.shape[start:end + 1]))
        return self.reshape(self.shape[:start] + (middle,) + self.shape[end + 1:])

    def exp(self):
        return _math().exp(self)

    def log(self):
        return _math().log(self)

    def sqrt(self):
        return _math().sqrt(self)


def _math():
    from .functions import math
    return math


class Function:
    """A differentiable operation on raw arrays.

    Subclasses implement ``forward(*arrays)`` returning an array or a tuple of
    arrays, and ``backward(*grads)`` returning one gradient (or None) per input.
    Hyper-parameters go to ``__init__``; anything ``backward`` needs is saved on
    ``self`` during ``forward``. ``backward`` may skip (return None for) an input whose
    ``needs_input_grad(i)`` is False, as PyTorch's ``ctx.needs_input_grad``.
    """

    generation = 0
    _needs_input_grad = None

    def needs_input_grad(self, index):
        """Whether input `index` requires a gradient (True when backward is called directly)."""
        return self._needs_input_grad is None or self._needs_input_grad[index]

    def __call__(self, *inputs):
        tensors = [x if isinstance(x, Tensor) else Tensor(as_array(x, like=_first_array(inputs))) for x in inputs]
        if len({is_cupy_array(t.data) for t in tensors}) > 1:
            raise RuntimeError(f"{type(self).__name__}: inputs live on different devices "
                               f"({', '.join(t.device for t in tensors)}); move them with .to(device) first")
        outputs = self.forward(*[t.data for t in tensors])
        single = not isinstance(outputs, tuple)
        if single:
            outputs = (outputs,)
        requires_grad = _Config.grad_enabled and any(t.requires_grad for t in tensors)
        results = [Tensor(y, requires_grad=requires_grad and y.dtype.kind == "f") for y in outputs]
        if requires_grad:
            self.generation = max(t.generation for t in tensors)
            self.inputs = tensors
            self._needs_input_grad = tuple(t.requires_grad for t in tensors)
            self.outputs = [weakref.ref(r) for r in results]
            self.output_meta = [(y.shape, y.dtype) for y in outputs]
            for r in results:
                r.set_creator(self)
        return results[0] if single else tuple(results)

    def forward(self, *arrays):
        raise NotImplementedError

    def backward(self, *grads):
        raise NotImplementedError


def _first_array(inputs):
    for x in inputs:
        if isinstance(x, Tensor):
            return x.data
    return None


def _run_backward(root, grad, retain_graph):
    """Reverse-mode sweep: process functions from the highest generation down."""
    # Gradients of non-leaf tensors not yet consumed, keyed by id; the tensor is
    # kept alongside so it stays alive (functions hold their outputs weakly).
    pending = {id(root): (root, grad)}
    heap, seen, counter = [], set(), 0

    def push(function):
        nonlocal counter
        if id(function) not in seen:
            seen.add(id(function))
            heapq.heappush(heap, (-function.generation, counter, function))
            counter += 1

    push(root.creator)
    while heap:
        _, _, function = heapq.heappop(heap)
        if getattr(function, "inputs", None) is None:
            raise RuntimeError("backward: the graph was already freed; pass retain_graph=True to the first backward "
                               "to backpropagate through it twice")
        xp = get_array_module(function.inputs[0].data)
        grads_out = []
        for ref, (shape, dtype) in zip(function.outputs, function.output_meta):
            output = ref()
            entry = pending.pop(id(output), None) if output is not None else None
            grads_out.append(entry[1] if entry is not None else xp.zeros(shape, dtype=dtype))
        grads_in = function.backward(*grads_out)
        if not isinstance(grads_in, tuple):
            grads_in = (grads_in,)
        for tensor, g in zip(function.inputs, grads_in):
            if g is None or not tensor.requires_grad:
                continue
            if g.shape != tensor.shape:
                raise RuntimeError(f"backward: {type(function).__name__} returned a gradient of shape {g.shape} "
                                   f"for an input of shape {tensor.shape}")
            if tensor.creator is None:
                tensor._accumulate(g)
            else:
                key = id(tensor)
                pending[key] = (tensor, g if key not in pending else pending[key][1] + g)
                push(tensor.creator)
        if not retain_graph:
            function.__dict__.clear()  # drops inputs and saved arrays: frees the graph
