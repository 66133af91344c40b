"""Tensor: an array that remembers how it was computed.

A ``Function`` (autograd.py) computes on raw arrays (``forward``/``backward``); calling
it on Tensors records the graph. ``Tensor.backward()`` hands the graph to the sweep in
autograd.py, which walks it in reverse topological order and accumulates gradients into
the leaves' ``.grad``. This file holds the data, the gradient and the graph links, the
conversions, comparisons, and in-place changes with their version counter; the
operators and math methods (``x + y``, ``x.sum()``) are calls into functions.math,
gathered in tensor_ops.py.

    >>> import tinycnn
    >>> x = tinycnn.Tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad
    array([2., 4., 6.], dtype=float32)
"""
import numbers

import numpy as np

from .backend import get_array_module, is_cupy_array, to_device, device_of
from .grad_mode import no_grad, enable_grad, is_grad_enabled
from .tensor_ops import TensorOps, _math

__all__ = ["Tensor", "Function", "as_array", "no_grad", "enable_grad", "is_grad_enabled"]


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


class _Version:
    """How many times a tensor's array was changed in place, and by which op last.
    Tensors that share one array (``detach()``, views such as reshape) share one counter."""

    __slots__ = ("value", "changed_by")

    def __init__(self):
        self.value, self.changed_by = 0, None


class _HookHandle:
    """Returned by ``register_post_accumulate_grad_hook``: ``remove()`` unregisters the hook."""

    def __init__(self, table, hook):
        self._table, self._key = table, object()
        table[self._key] = hook

    def remove(self):
        self._table.pop(self._key, None)


class Tensor(TensorOps):
    """An n-dimensional array that remembers how it was computed.

    ``data`` is a NumPy or CuPy array; ``grad`` is an array of the same shape
    (filled by ``backward``) or None. Python floats and lists become float32. The
    operators and math methods (``x @ w``, ``x.reshape(...)``) come from ``TensorOps``.

        >>> Tensor([[1.0, 2.0]]).shape
        (1, 2)

    Tensors compare elementwise (``x == y`` is a Tensor) and hash by identity, as in
    PyTorch; ``bool(x)`` is defined for one-element tensors only, by value.

    In-place changes: ``x[i] = v``, ``x += y`` (``-=``, ``*=``, ``/=``), ``fill_``,
    ``zero_``, ``copy_``, optimizer steps and ``Module.load_state_dict`` bump
    ``x._version``. A Function notes the versions of the tensors its backward reads, and
    backward raises RuntimeError if one has changed since. A leaf that requires grad (a
    parameter) may change in place only inside ``no_grad()``; while a graph is recorded,
    ``x += y`` with x or y requiring grad is done out of place (``x = x + y``). Writing
    into ``x.data`` directly bypasses the version counter: as in PyTorch, that is the
    user's own business.

        >>> x = Tensor([1.0, 2.0])
        >>> x[0] = 5.0
        >>> x += 1.0
        >>> x, x._version
        (tensor([6., 3.], dtype=float32), 2)
    """

    __array_ufunc__ = None  # make numpy defer to our reflected operators
    _post_accumulate_grad_hooks = {}   # per leaf once one is registered; the shared empty default is never written

    def __init__(self, data, requires_grad=False, dtype=None):
        source, data = data, as_array(data)
        if dtype is not None:
            data = data.astype(dtype, copy=False)
        if requires_grad and data.dtype.kind != "f":
            raise TypeError(f"Tensor: only floating-point tensors can require gradients, got dtype {data.dtype}")
        self.data = data
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self.creator = None
        self._output_index = None
        self.generation = 0
        self.name = None
        shares = isinstance(source, Tensor) and data is source.data     # Tensor(t) and t.detach() share t's array
        self._version_counter = source._version_counter if shares else _Version()

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

    def numel(self):
        return int(self.data.size)

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __bool__(self):
        if self.data.size != 1:
            amount = "no values" if self.data.size == 0 else "more than one value"
            raise RuntimeError(f"Boolean value of Tensor with {amount} is ambiguous (shape {self.shape}): "
                               "test x.numpy().any() or .all() for values, `x is y` for identity")
        return bool(self._scalar("bool()"))

    def __float__(self):
        return float(self._scalar("float()"))

    def __int__(self):
        return int(self._scalar("int()"))

    def _scalar(self, op):
        if self.data.size != 1:
            raise ValueError(f"{op}: only one element tensors can be converted to Python scalars, "
                             f"got shape {self.shape}")
        return self.data.reshape(()).item()

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
    def set_creator(self, function, index=0):
        """Record that this tensor is output `index` of `function` (the graph's edge to it)."""
        self.creator = function
        self._output_index = index
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

    def _accumulate(self, grad, owned=False):
        """Add `grad` into ``.grad``. ``owned``: nothing else holds `grad`, so the first gradient
        is kept as it is instead of copied (one array and, on a GPU, one launch fewer)."""
        if self.grad is None:
            self.grad = grad if owned else grad.copy()
        else:
            self.grad += grad

    def zero_grad(self):
        self.grad = None

    def register_post_accumulate_grad_hook(self, hook):
        """Call ``hook(tensor)`` right after a backward sweep adds a gradient into this leaf's
        ``.grad``; returns a handle with ``remove()``. Unlike PyTorch's, it runs once per use of
        the leaf in the graph (a weight used twice gets two calls, ``.grad`` complete after the
        second). ``tinycnn.distributed.DistributedDataParallel`` starts reducing a parameter's
        gradient from it while backward still runs.

            >>> w = Tensor([1.0, 2.0], requires_grad=True)
            >>> handle = w.register_post_accumulate_grad_hook(lambda t: print("grad", t.grad))
            >>> (w * 3).sum().backward()
            grad [3. 3.]
            >>> handle.remove()
        """
        if not self.is_leaf:
            raise RuntimeError("register_post_accumulate_grad_hook: only leaf tensors (such as parameters) "
                               "accumulate gradients; this tensor was computed by "
                               f"{type(self.creator).__name__}")
        if not callable(hook):
            raise TypeError(f"register_post_accumulate_grad_hook: expected a callable, got {hook!r}")
        if "_post_accumulate_grad_hooks" not in self.__dict__:
            self._post_accumulate_grad_hooks = {}
        return _HookHandle(self._post_accumulate_grad_hooks, hook)

    def detach(self):
        """A tensor sharing the data (and its version counter) with no history."""
        return Tensor(self)

    def requires_grad_(self, flag=True):
        if flag and self.data.dtype.kind != "f":
            raise TypeError(f"requires_grad_: only floating-point tensors can require gradients, got dtype {self.dtype}")
        self.requires_grad = flag
        return self

    # ----- conversions ---------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        """``np.asarray(tensor)``: the data of a host tensor (shared unless a copy or dtype is asked);
        a GPU tensor raises instead of copying silently, as PyTorch does for CUDA tensors."""
        if is_cupy_array(self.data):
            raise TypeError("np.asarray(tensor): the tensor is on the GPU; call tensor.numpy() "
                            "(or tensor.to('cpu')) to copy it to the host first")
        if copy is False and dtype is not None and np.dtype(dtype) != self.data.dtype:
            raise ValueError(f"np.asarray(tensor, copy=False): cannot cast {self.data.dtype} to {np.dtype(dtype)} "
                             "without a copy")
        array = self.data if dtype is None else self.data.astype(dtype, copy=False)
        return array.copy() if copy else array

    def numpy(self):
        """The data as a NumPy array (copied to the host if on the GPU)."""
        return to_device(self.data, "cpu")

    def item(self):
        return self._scalar("item")

    # ----- in-place changes (each bumps the version) ------------------------------
    @property
    def _version(self):
        """How many times this tensor's array was changed in place through tinycnn."""
        return self._version_counter.value

    def _bump_version(self, op):
        self._version_counter.value += 1
        self._version_counter.changed_by = op

    def __iadd__(self, other):
        return self._update("+=", other, "add")

    def __isub__(self, other):
        return self._update("-=", other, "sub")

    def __imul__(self, other):
        return self._update("*=", other, "mul")

    def __itruediv__(self, other):
        return self._update("/=", other, "div")

    def __setitem__(self, index, value):
        self._assign("x[index] = value", index.data if isinstance(index, Tensor) else index, value)

    def fill_(self, value):
        """Set every element to ``value``, in place; returns self."""
        return self._assign("fill_", Ellipsis, value)

    def zero_(self):
        """Set every element to 0, in place; returns self."""
        return self._assign("zero_", Ellipsis, 0)

    def copy_(self, source):
        """Copy ``source`` (broadcast to this shape) into this tensor, in place; returns self."""
        return self._assign("copy_", Ellipsis, source)

    def _records_with(self, other):
        """Whether an op on self and other would be recorded in the graph."""
        return is_grad_enabled() and (self.requires_grad or (isinstance(other, Tensor) and other.requires_grad))

    def _refuse_leaf(self, op):
        if self.is_leaf and self.requires_grad:
            raise RuntimeError(f"{op}: a leaf Variable that requires grad (such as a parameter) is being used in "
                               "an in-place operation; change it inside `with tinycnn.no_grad():`")

    def _operand(self, op, value):
        """``value`` as an array on this tensor's device."""
        array = as_array(value, like=self.data)
        if is_cupy_array(array) != is_cupy_array(self.data):
            raise RuntimeError(f"{op}: the tensor is on {self.device}, the value on {device_of(array)}; "
                               "move one with .to(device) first")
        return array

    def _update(self, op, other, name):
        """x op= other: in place, unless the graph is being recorded (then out of place, as x = x op other)."""
        if self._records_with(other):
            self._refuse_leaf(op)
            return getattr(_math(), name)(self, other)
        array = self._operand(op, other)
        result = np.result_type(self.dtype, array.dtype, *([np.float32] if name == "div" else []))
        if not np.can_cast(result, self.dtype, "same_kind"):
            raise TypeError(f"{op}: the result has dtype {result}, which cannot be stored in this {self.dtype} tensor")
        if not _broadcasts_to(array.shape, self.shape):
            raise ValueError(f"{op}: an operand of shape {array.shape} does not broadcast to the tensor's "
                             f"shape {self.shape}")
        ufunc = {"add": "add", "sub": "subtract", "mul": "multiply", "div": "true_divide"}[name]
        getattr(get_array_module(self.data), ufunc)(self.data, array, out=self.data)
        self._bump_version(op)
        return self

    def _assign(self, op, index, value):
        """self.data[index] = value, refused while the graph is being recorded."""
        if self._records_with(value):
            self._refuse_leaf(op)
            raise RuntimeError(f"{op}: a tensor that is part of a recorded graph (it or the value requires grad) "
                               "cannot be changed in place; build a new tensor out of place, e.g. with F.concat "
                               "or a mask")
        array = self._operand(op, value)
        try:
            self.data[index] = array
        except IndexError as error:
            raise IndexError(f"{op}: {error} (tensor of shape {self.shape})") from error
        except ValueError as error:
            raise ValueError(f"{op}: {error} (tensor of shape {self.shape}, value of shape {array.shape})") from error
        self._bump_version(op)
        return self

    # comparisons: no gradient, boolean result; None and other objects are never equal
    def _compare(self, other, op):
        if not isinstance(other, (Tensor, numbers.Number, np.generic, np.ndarray, list, tuple)) \
                and not is_cupy_array(other):
            return NotImplemented
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


def _broadcasts_to(shape, target):
    try:
        return np.broadcast_shapes(shape, target) == tuple(target)
    except ValueError:
        return False


# Function and the backward sweep live in autograd.py; imported last because they use Tensor.
from .autograd import Function, _run_backward  # noqa: E402
