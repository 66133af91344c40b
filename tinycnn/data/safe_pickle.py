"""A pickle reader that builds only plain data and NumPy arrays, and runs no code.

``pickle.load`` calls whatever a file names, so a downloaded pickle can run any
command. The CIFAR batches are pickles, so they are read here instead, one opcode at
a time (``pickletools.genops`` decodes each opcode and its argument): the reader
builds dicts, lists, tuples, str, bytes, ints, floats, None and booleans itself, and
calls only its own checked stand-ins for the few NumPy functions that rebuild an
array of numbers. Every other global, and every opcode that would call or build
something else, is refused. Protocols 0 to 5 are read, as written by Python 2
(strings become bytes, like ``encoding="bytes"``) or by Python 3's ``pickle.dump``.

    >>> import pickle, numpy as np
    >>> load_pickle(pickle.dumps({"data": np.arange(3, dtype=np.uint8)}, protocol=5), "batch")
    {'data': array([0, 1, 2], dtype=uint8)}

Errors: ``UnsafePickleError`` (a ValueError) for a pickle that names anything else,
``ValueError`` for a damaged one; both name the file.
"""
import io
import pickletools

import numpy as np

_RECONSTRUCT = np.zeros(1).__reduce__()[0]  # numpy's own _reconstruct (numpy.core or numpy._core)
_NUMBER_KINDS = "biufc"  # bool, signed and unsigned int, float, complex: raw bytes, no Python objects


class UnsafePickleError(ValueError):
    """A pickle asks for something other than plain data and arrays of numbers."""


def _number_dtype(dtype):
    if not isinstance(dtype, np.dtype):
        raise UnsafePickleError(f"refusing a {type(dtype).__name__} where a NumPy dtype belongs")
    if dtype.kind not in _NUMBER_KINDS or dtype.fields or dtype.subdtype:
        raise UnsafePickleError(f"refusing NumPy dtype {dtype}: only arrays of numbers are read")
    return dtype


def _dtype(name, align=False, copy=False):
    """``numpy.dtype('u1', False, True)`` as pickles call it, for number types only
    (Python 2 wrote the name as bytes).

    Always a fresh copy: BUILD may then set its byte order without touching NumPy's shared one.
    """
    if not isinstance(name, (str, bytes)):
        raise UnsafePickleError(f"refusing numpy.dtype of a {type(name).__name__}")
    return _number_dtype(np.dtype(_text(name), False, True))


def _text(value):
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _reconstruct(cls, shape, typecode):
    """The empty array that BUILD then fills: numpy always pickles ``(ndarray, (0,), b'b')``."""
    if cls is not np.ndarray or shape != (0,) or typecode != b"b":
        raise UnsafePickleError("refusing numpy _reconstruct of anything but an empty ndarray")
    return _RECONSTRUCT(np.ndarray, (0,), b"b")


def _frombuffer(buffer, dtype, shape, order):
    """Protocol 5's array: raw bytes of a number dtype, reshaped."""
    if not isinstance(buffer, (bytes, bytearray)) or order not in ("C", "F"):
        raise UnsafePickleError("refusing numpy _frombuffer with a non-bytes buffer or unknown order")
    return np.frombuffer(buffer, dtype=_number_dtype(dtype)).reshape(shape, order=order)


def _scalar(dtype, data):
    """A NumPy number such as ``np.int64(3)`` (a label taken out of an array)."""
    if not isinstance(data, bytes) or len(data) != _number_dtype(dtype).itemsize:
        raise UnsafePickleError(f"refusing a numpy scalar of {dtype} from a {type(data).__name__}")
    return np.frombuffer(data, dtype)[0]


def _encode(text, encoding):
    """``_codecs.encode(text, 'latin1')``: how protocol 2 spells bytes written by Python 3."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("refusing _codecs.encode of anything but a str to latin1")
    return text.encode("latin-1")


# The only globals a pickle may name: numpy 1 writes numpy.core, numpy 2 numpy._core.
_GLOBALS = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): _dtype, ("_codecs", "encode"): _encode}
for _core in ("numpy.core", "numpy._core"):
    _GLOBALS.update({(f"{_core}.multiarray", "_reconstruct"): _reconstruct,
                     (f"{_core}.multiarray", "scalar"): _scalar,
                     (f"{_core}.numeric", "_frombuffer"): _frombuffer})
_CALLABLE = (_dtype, _reconstruct, _frombuffer, _scalar, _encode)


def _build(target, state):
    """BUILD: only NumPy's own ``__setstate__`` of an array or a dtype, with checked state."""
    if isinstance(target, np.ndarray) and isinstance(state, tuple) and len(state) == 5:
        _, _, dtype, _, raw = state  # (version, shape, dtype, is_fortran, raw bytes)
        if isinstance(raw, (bytes, bytearray)):
            _number_dtype(dtype)
            target.__setstate__(state)  # checks that raw holds exactly shape x itemsize bytes
            return
    elif isinstance(target, np.dtype) and isinstance(state, tuple) and len(state) in (8, 9):
        # (version, byte order, subarray, names, fields, itemsize, alignment, flags[, metadata]):
        # only the byte order may differ from the plain number dtype built just before
        unchanged = (None, None, None, target.itemsize if state[5] != -1 else -1,
                     target.alignment if state[6] != -1 else -1, target.flags)
        order = _text(state[1])
        if order in ("<", ">", "|", "=") and state[2:8] == unchanged and state[8:] in ((), (None,)):
            target.__setstate__((state[0], order, *state[2:]))
            return
    kind = "NumPy array" if isinstance(target, np.ndarray) else "NumPy dtype" if isinstance(target, np.dtype) else None
    raise UnsafePickleError(f"refusing to set the state of a {kind or type(target).__name__} this way")


def load_pickle(data, where, what="pickle"):
    """The object pickled in the bytes ``data``; errors read "``where``: not a readable ``what`` (...)"."""
    try:
        return _run(pickletools.genops(io.BytesIO(data)), budget=len(data))
    except UnsafePickleError as error:
        raise UnsafePickleError(f"{where}: not a readable {what} ({error})") from None
    except Exception as error:  # any failure to decode means a damaged or foreign file
        raise ValueError(f"{where}: not a readable {what} ({type(error).__name__}: {error})") from None


def _run(opcodes, budget):
    """Execute the opcodes on a stack; MARK saves the stack on ``marks`` and starts a new one.

    The arrays built may hold at most ``budget`` bytes in all: each array's bytes come from
    the file, so more means one stored string is being reused to fill memory.
    """
    stack, marks, memo = [], [], {}
    array_bytes = 0

    def pop_mark():
        nonlocal stack
        items, stack = stack, marks.pop()
        return items

    for opcode, arg, _ in opcodes:
        name = opcode.name
        if name in ("PROTO", "FRAME"):
            continue
        if name == "STOP":
            if len(stack) != 1 or marks:
                raise ValueError("STOP with a malformed stack")
            return stack[0]
        if name == "MARK":
            marks.append(stack)
            stack = []
        elif name in _CONSTANTS:
            stack.append(_CONSTANTS[name])
        elif name in ("INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
                      "UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8",
                      "SHORT_BINBYTES", "BINBYTES", "BINBYTES8"):
            stack.append(arg)
        elif name in ("STRING", "BINSTRING", "SHORT_BINSTRING"):
            stack.append(arg.encode("latin-1"))  # a Python 2 str: its bytes, as encoding="bytes" gives
        elif name == "BYTEARRAY8":
            stack.append(bytearray(arg))
        elif name == "EMPTY_DICT":
            stack.append({})
        elif name == "EMPTY_LIST":
            stack.append([])
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            count = int(name[-1])
            if len(stack) < count:
                raise ValueError(f"{name} on a stack of {len(stack)}")
            items = tuple(stack[-count:])
            del stack[-count:]
            stack.append(items)
        elif name in ("TUPLE", "LIST", "DICT"):
            items = pop_mark()  # first: it switches ``stack`` back to the one below the mark
            stack.append(tuple(items) if name == "TUPLE" else items if name == "LIST" else _pairs({}, items))
        elif name == "APPEND":
            value = stack.pop()
            _list(stack[-1]).append(value)
        elif name == "APPENDS":
            items = pop_mark()
            _list(stack[-1]).extend(items)
        elif name == "SETITEM":
            value, key = stack.pop(), stack.pop()
            _pairs(stack[-1], [key, value])
        elif name == "SETITEMS":
            items = pop_mark()
            _pairs(stack[-1], items)
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = stack[-1]
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo[arg])
        elif name == "POP":
            stack.pop()
        elif name == "POP_MARK":
            pop_mark()
        elif name == "DUP":
            stack.append(stack[-1])
        elif name in ("GLOBAL", "STACK_GLOBAL"):
            if name == "GLOBAL":
                module, _, qualname = arg.partition(" ")
            else:
                qualname, module = stack.pop(), stack.pop()
            if not (isinstance(module, str) and isinstance(qualname, str)):
                raise ValueError("STACK_GLOBAL of non-strings")
            found = _GLOBALS.get((module, qualname))
            if found is None:
                raise UnsafePickleError(f"refusing to load {module}.{qualname}: "
                                        f"only plain data and NumPy arrays of numbers are read")
            stack.append(found)
        elif name == "REDUCE":
            args, function = stack.pop(), stack.pop()
            if not any(function is allowed for allowed in _CALLABLE) or not isinstance(args, tuple):
                raise UnsafePickleError(f"refusing to call a {type(function).__name__}")
            stack.append(function(*args))
            array_bytes += stack[-1].nbytes if isinstance(stack[-1], np.ndarray) else 0
        elif name == "BUILD":
            state = stack.pop()
            _build(stack[-1], state)
            array_bytes += stack[-1].nbytes if isinstance(stack[-1], np.ndarray) else 0
        else:  # NEWOBJ, INST, OBJ, PERSID, EXT1..4, NEXT_BUFFER, ...: they build other objects
            raise UnsafePickleError(f"refusing the pickle opcode {name}: only plain data and arrays are read")
        if array_bytes > budget:
            raise ValueError(f"its arrays would take more than the {budget} bytes the pickle holds")
    raise ValueError("pickle ended before STOP")


_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}


def _list(target):
    if not isinstance(target, list):
        raise ValueError(f"APPEND to a {type(target).__name__}")
    return target


def _pairs(target, items):
    """Set ``key, value, key, value, ...`` into the dict ``target``."""
    if not isinstance(target, dict) or len(items) % 2:
        raise ValueError("SETITEMS on a non-dict or an odd number of items")
    for key, value in zip(items[::2], items[1::2]):
        if not isinstance(key, (str, bytes, int)):
            raise UnsafePickleError(f"refusing a dict key of type {type(key).__name__}")
        target[key] = value
    return target
