"""cupy.ndarray of the stand-in: a NumPy array that the host may only reach explicitly.

The array wraps (does not subclass) a NumPy array, so NumPy cannot see through it: as with
CuPy, ``numpy.asarray(a)`` raises TypeError, an operation mixing a device array with a
NumPy array raises TypeError ("Unsupported type"), and only ``get()``/``cupy.asnumpy`` (or
the implicit syncs ``item()``, ``float(a)``, ``bool(a)``, printing) bring data back.
Arithmetic, indexing and the methods CuPy shares with NumPy run on the wrapped array; their
results are device arrays again, views included (a full reduction gives a 0-d array, as in
CuPy, not a NumPy scalar).
"""
import operator

import numpy

from . import _blas, _launches, _transfer

_IMPLICIT_CONVERSION = ("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")
_SCALARS = (bool, int, float, complex, numpy.generic)

# Attributes and methods forwarded to the wrapped array (CuPy has them with NumPy's meaning).
_ATTRIBUTES = {"shape", "dtype", "ndim", "size", "itemsize", "nbytes", "strides", "flags", "T",
               "real", "imag"}
_METHODS = {"reshape", "astype", "copy", "view", "transpose", "swapaxes", "ravel", "flatten",
            "squeeze", "sum", "mean", "var", "std", "max", "min", "argmax", "argmin", "prod",
            "cumsum", "all", "any", "clip", "fill", "take", "repeat", "round", "conj"}


class ndarray:  # noqa: N801 (CuPy's name)
    """A device array; ``ndarray(shape, dtype)`` is uninitialised, as in CuPy."""

    __slots__ = ("_array",)
    __array_priority__ = 100

    def __init__(self, shape, dtype=float, order="C"):
        self._array = garbage(numpy.empty(shape, dtype=dtype, order=order))

    @classmethod
    def _wrap_array(cls, array):
        device_array = object.__new__(cls)
        device_array._array = array
        return device_array

    # ----- NumPy may not convert it ---------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError(_IMPLICIT_CONVERSION)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__":
            return NotImplemented
        from . import _functions
        return _functions.device_function(ufunc)(*inputs, **kwargs)

    def __array_function__(self, function, types, args, kwargs):
        from . import _functions
        return _functions.device_function(function)(*args, **kwargs)

    # ----- explicit and implicit copies to the host -----------------------------------
    def get(self, stream=None, order="C", out=None):
        """A NumPy copy (the explicit device-to-host transfer)."""
        return _transfer.to_host(self._array, "ndarray.get()")

    def set(self, array, stream=None):
        if not isinstance(array, numpy.ndarray) or array.shape != self.shape:
            raise ValueError(f"set: expected a NumPy array of shape {self.shape}")
        _transfer.count_host_to_device()
        self._array[...] = array

    def item(self):
        return _transfer.to_host(self._array, "ndarray.item()").item()

    def tolist(self):
        return _transfer.to_host(self._array, "ndarray.tolist()").tolist()

    def __float__(self):
        return float(_transfer.to_host(self._array, "float(array)"))

    def __int__(self):
        return int(_transfer.to_host(self._array, "int(array)"))

    def __complex__(self):
        return complex(_transfer.to_host(self._array, "complex(array)"))

    def __bool__(self):
        return bool(_transfer.to_host(self._array, "bool(array)"))

    def __repr__(self):
        return repr(_transfer.to_host(self._array, "repr(array)"))

    def __str__(self):
        return str(_transfer.to_host(self._array, "str(array)"))

    # ----- device memory ----------------------------------------------------------------
    @property
    def data(self):
        """The device pointer (what CuPy's ``ndarray.data`` is), not the values."""
        from .cuda import MemoryPointer
        return MemoryPointer(self)

    def __getattr__(self, name):
        if name in _ATTRIBUTES:
            return wrap(getattr(self._array, name))
        if name in _METHODS:
            method = getattr(self._array, name)
            if name not in _launches.NO_KERNEL:
                _launches.add("array_ops")

            def call(*args, **kwargs):
                writes = name == "fill" or kwargs.get("out") is not None
                value = _launches.device_op(lambda: method(*unwrap(args), **unwrap(kwargs)), writes)
                return wrap(kwargs["out"] if writes and kwargs.get("out") is not None else value)
            return call
        raise AttributeError(f"'cupy.ndarray' object has no attribute {name!r}")

    def __len__(self):
        return len(self._array)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self)))

    def __getitem__(self, index):
        return wrap(self._array[_index(index)])

    def __setitem__(self, index, value):
        if isinstance(value, numpy.ndarray):                 # CuPy fills with a host scalar only
            if value.ndim > 0:
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
            value = value[()]
        _launches.add("array_ops")
        where, value = _index(index), operand(value, "__setitem__")
        _launches.device_op(lambda: self._array.__setitem__(where, value), writes=True)

    __hash__ = None


def garbage(array):
    """Fill a fresh array with NaN (or -7 for integers), as GPU memory holds leftovers: an element
    nobody writes cannot then pass for a right result."""
    array.fill(numpy.nan if array.dtype.kind in "fc" else -7)
    return array


def operand(value, op):
    """The NumPy value behind an operand of a device operation; NumPy arrays are refused."""
    if isinstance(value, ndarray):
        return value._array
    if isinstance(value, numpy.ndarray):
        raise TypeError(f"{op}: Unsupported type {numpy.ndarray} (a host array in a device operation)")
    return value


def _index(index):
    """Device index arrays unwrap (a boolean mask makes CuPy read its count on the host: a
    sync); host ones (lists, NumPy arrays) are copied to the device."""
    if isinstance(index, tuple):
        return tuple(_index(i) for i in index)
    if isinstance(index, ndarray):
        if index.dtype == numpy.bool_:
            _transfer.declare_synchronize("indexing with a boolean mask")
        return index._array
    if isinstance(index, (list, numpy.ndarray)):
        _transfer.count_host_to_device()
    return index


def wrap(value):
    """NumPy results -> device arrays (NumPy scalars -> 0-d arrays), inside lists and tuples too."""
    if isinstance(value, numpy.ndarray):
        return ndarray._wrap_array(value)
    if isinstance(value, numpy.generic):
        return ndarray._wrap_array(numpy.asarray(value))
    if isinstance(value, (list, tuple)) and type(value) in (list, tuple):
        return type(value)(wrap(v) for v in value)
    return value


def unwrap(value):
    """Device arrays -> their NumPy arrays, inside lists, tuples and dicts too."""
    if isinstance(value, ndarray):
        return value._array
    if isinstance(value, (list, tuple)) and type(value) in (list, tuple):
        return type(value)(unwrap(v) for v in value)
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    return value


def _binary(op, reflected=False):
    def method(self, other):
        if not isinstance(other, (ndarray, numpy.ndarray) + _SCALARS):
            return NotImplemented          # e.g. a tinycnn Tensor: let its reflected operator run
        other = operand(other, op.__name__)
        _launches.add("array_ops")
        return wrap(_launches.device_op(lambda: op(other, self._array) if reflected else op(self._array, other),
                                        writes=False))
    return method


def _in_place(op):
    def method(self, other):
        if not isinstance(other, (ndarray, numpy.ndarray) + _SCALARS):
            return NotImplemented
        _launches.add("array_ops")
        other = operand(other, op.__name__)
        _launches.device_op(lambda: op(self._array, other), writes=True)     # NumPy's operator writes through
        return self
    return method


def _unary(op):
    def method(self):
        _launches.add("array_ops")
        return wrap(_launches.device_op(lambda: op(self._array), writes=False))
    return method


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor",
              "lshift", "rshift"):
    _op = getattr(operator, _name + "_" if _name in ("and", "or") else _name)
    setattr(ndarray, f"__{_name}__", _binary(_op))
    setattr(ndarray, f"__r{_name}__", _binary(_op, reflected=True))
    setattr(ndarray, f"__i{_name}__", _in_place(getattr(operator, f"i{_name}")))
ndarray.__matmul__, ndarray.__rmatmul__ = _binary(_blas.matmul), _binary(_blas.matmul, reflected=True)
for _name in ("lt", "le", "gt", "ge", "eq", "ne"):
    setattr(ndarray, f"__{_name}__", _binary(getattr(operator, _name)))
for _name in ("neg", "pos", "abs", "invert"):
    setattr(ndarray, f"__{_name}__", _unary(getattr(operator, _name)))
