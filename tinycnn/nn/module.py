"""Module: the base of every layer and model.

Parameters, submodules and buffers are registered by attribute assignment:

    >>> import numpy as np
    >>> class Affine(Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.scale = Parameter(np.ones(3))
    ...         self.register_buffer("calls", np.zeros(1))
    ...     def forward(self, x):
    ...         return x * self.scale
    >>> [name for name, _ in Affine().named_parameters()]
    ['scale']
"""
from collections import OrderedDict

import numpy as np

from ..backend import is_cupy_array, to_device, normalize_device, device_of
from ..tensor import Tensor


class Parameter(Tensor):
    """A Tensor that a Module trains: requires_grad=True and listed by ``parameters()``."""

    def __init__(self, data, requires_grad=True, dtype=None):
        super().__init__(data, requires_grad=requires_grad, dtype=dtype)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


_global_forward_hooks = OrderedDict()


class _HookHandle:
    _next_id = 0

    def __init__(self, table, hook):
        self.table, self.id = table, _HookHandle._next_id
        _HookHandle._next_id += 1
        table[self.id] = hook

    def remove(self):
        self.table.pop(self.id, None)


def register_global_forward_hook(hook):
    """Call ``hook(module, inputs, output)`` after the forward of every Module (used by summary)."""
    return _HookHandle(_global_forward_hooks, hook)


class Module:
    """Base class: subclasses set attributes in ``__init__`` and define ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "training", True)

    # ----- registration ----------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        for table in (self._parameters, self._modules, self._buffers):
            table.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        else:
            object.__setattr__(self, name, value)
            return
        self.__dict__.pop(name, None)

    def __getattr__(self, name):
        for table in ("_parameters", "_modules", "_buffers"):
            entries = self.__dict__.get(table)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __delattr__(self, name):
        for table in (self._parameters, self._modules, self._buffers):
            if name in table:
                del table[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name, array):
        """A saved, untrained array (e.g. BatchNorm's running mean); reachable as ``self.name``."""
        self.__dict__.pop(name, None)
        self._buffers[name] = None if array is None else (array.data if isinstance(array, Tensor) else array)

    def add_module(self, name, module):
        setattr(self, name, module)

    # ----- calling ---------------------------------------------------------------
    def forward(self, *inputs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *inputs, **kwargs):
        output = self.forward(*inputs, **kwargs)
        for hook in list(self._forward_hooks.values()) + list(_global_forward_hooks.values()):
            result = hook(self, inputs, output)
            if result is not None:
                output = result
        return output

    def register_forward_hook(self, hook):
        """Call ``hook(module, inputs, output)`` after every forward; returns a handle with ``remove()``."""
        return _HookHandle(self._forward_hooks, hook)

    # ----- traversal -------------------------------------------------------------
    def named_modules(self, prefix=""):
        """(name, module) for this module and every descendant, depth first."""
        yield prefix, self
        for name, module in self._modules.items():
            if module is not None:
                yield from module.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return (m for _, m in self.named_modules())

    def children(self):
        return iter(m for m in self._modules.values() if m is not None)

    def named_children(self):
        return iter((n, m) for n, m in self._modules.items() if m is not None)

    def named_parameters(self, prefix=""):
        seen = set()
        for module_name, module in self.named_modules(prefix):
            for name, p in module._parameters.items():
                if p is not None and id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{module_name}.{name}" if module_name else name), p

    def parameters(self):
        return (p for _, p in self.named_parameters())

    def named_buffers(self):
        for module_name, module in self.named_modules():
            for name, b in module._buffers.items():
                if b is not None:
                    yield (f"{module_name}.{name}" if module_name else name), b

    def buffers(self):
        return (b for _, b in self.named_buffers())

    def get_submodule(self, target):
        """The descendant named ``target`` (dotted, as ``named_modules`` lists it); ``""`` is self."""
        module = self
        for name in target.split(".") if target else ():
            child = module._modules.get(name)
            if child is None:
                raise AttributeError(f"get_submodule: {type(module).__name__} has no submodule {name!r} "
                                     f"(looking for {target!r}; children: {list(module._modules)})")
            module = child
        return module

    def apply(self, fn):
        """Call ``fn(module)`` on every descendant, then on self (PyTorch's order); returns self.

            >>> from tinycnn.nn import Sequential, Linear, init
            >>> net = Sequential(Linear(2, 2)).apply(lambda m: init.zeros_(m.weight) if hasattr(m, "weight") else None)
        """
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ----- modes and gradients ---------------------------------------------------
    def train(self, mode=True):
        """Training mode for every module, except BatchNorms frozen with ``freeze(..., bn_eval=True)``."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode) and not module.__dict__.get("_frozen_eval", False))
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def requires_grad_(self, flag=True):
        for p in self.parameters():
            p.requires_grad = flag
        return self

    def freeze(self, *prefixes, bn_eval=False):
        """Stop training the parameters whose names start with one of ``prefixes`` (whole dotted parts:
        ``"features"`` matches ``features.conv1.weight``, not ``features2.w``; none given: all).

        Frozen parameters get ``requires_grad=False``: backward computes no gradient for them and
        optimizers skip parameters without one. ``bn_eval=True`` also keeps the BatchNorms under
        those prefixes in eval mode through ``train()`` (running statistics used and left alone), as
        Keras does for a BatchNorm layer with ``trainable=False``; by default they keep updating
        their statistics in training mode, as PyTorch does. Returns the names frozen.

            >>> from tinycnn.nn import Sequential, Linear
            >>> Sequential(Linear(2, 3), Linear(3, 1)).freeze("0")
            ['0.weight', '0.bias']
        """
        return self._set_frozen(prefixes, True, bn_eval, "freeze")

    def unfreeze(self, *prefixes):
        """Train again the parameters under ``prefixes`` (none given: all) and let their BatchNorms
        follow ``train()`` again; returns the names unfrozen."""
        return self._set_frozen(prefixes, False, False, "unfreeze")

    def _set_frozen(self, prefixes, frozen, bn_eval, op):
        for prefix in prefixes:
            if not isinstance(prefix, str):
                raise TypeError(f"{op}: prefixes are parameter names such as 'features', got {prefix!r}")
        matches = lambda name, prefix: name == prefix or name.startswith(prefix + ".")   # whole dotted parts
        under = lambda name: not prefixes or any(matches(name, p) for p in prefixes)
        every = [name for name, _ in self.named_parameters()]
        unmatched = [p for p in prefixes if not any(matches(name, p) for name in every)]
        if unmatched:
            tops = sorted({name.split(".")[0] for name in every})
            raise ValueError(f"{op}: no parameter name starts with {unmatched[0]!r}; the model's top-level "
                             f"names are {tops}")
        names = [name for name in every if under(name)]
        for name, p in self.named_parameters():
            if name in names:
                p.requires_grad = not frozen
        for name, module in self.named_modules():
            if under(name) and "running_mean" in module._buffers:
                if frozen and bn_eval:
                    object.__setattr__(module, "_frozen_eval", True)
                    object.__setattr__(module, "training", False)
                elif not frozen and module.__dict__.pop("_frozen_eval", False):
                    object.__setattr__(module, "training", self.training)
        return names

    # ----- devices and dtypes ----------------------------------------------------
    def to(self, target):
        """Move parameters and buffers to "cpu"/"cuda" in place, or cast floats to a dtype."""
        if isinstance(target, str) and (target in ("cpu", "gpu") or target.startswith("cuda")):
            device = normalize_device(target)
            convert = lambda a: to_device(a, device)
        else:
            dtype = np.dtype(target)
            convert = lambda a: a.astype(dtype) if a.dtype.kind == "f" else a
        for module in self.modules():
            for p in module._parameters.values():
                if p is not None:
                    p.data = convert(p.data)
                    if p.grad is not None:
                        p.grad = convert(p.grad)
            for name, b in list(module._buffers.items()):
                if b is not None:
                    module._buffers[name] = convert(b)
        return self

    @property
    def device(self):
        for p in self.parameters():
            return device_of(p.data)
        return "cpu"

    # ----- state -----------------------------------------------------------------
    def state_dict(self):
        """Parameters and buffers by dotted name, e.g. ``features.conv1.weight`` (the live arrays)."""
        state = OrderedDict((name, p.data) for name, p in self.named_parameters())
        state.update(self.named_buffers())
        return state

    def load_state_dict(self, state, strict=True):
        """Copy arrays into this module's parameters and buffers (in place, keeping their device;
        each parameter's version is bumped, so a graph recorded before cannot backpropagate).

        Accepts the flat dict of ``state_dict()`` or the nested dict ``tinycnn.load`` returns.
        Missing, unexpected and shape-mismatched keys raise KeyError/ValueError when ``strict``.
        """
        state = _flatten(state)
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        mismatched = [f"{k}: checkpoint {tuple(np.shape(state[k]))} vs model {tuple(own[k].shape)}"
                      for k in own if k in state and tuple(np.shape(state[k])) != tuple(own[k].shape)]
        if mismatched:
            raise ValueError("load_state_dict: shape mismatch for " + "; ".join(mismatched))
        params = dict(self.named_parameters())
        for name, target in own.items():
            if name in state:
                value = state[name]
                value = value.data if isinstance(value, Tensor) else value
                if is_cupy_array(target) != is_cupy_array(value):
                    value = to_device(value, device_of(target))
                target[...] = value
                if name in params:
                    params[name]._bump_version("load_state_dict")
        return missing, unexpected

    # ----- printing --------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        children = list(self.named_children())
        if not children:
            return lines[0] + ")"
        for name, module in children:
            child = repr(module).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child}")
        return "\n".join(lines) + "\n)"


def _flatten(state, prefix=""):
    """Nested dicts (as tinycnn.load returns) -> one flat dict with dotted keys."""
    flat = OrderedDict()
    for key, value in state.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(_flatten(value, name))
        else:
            flat[name] = value
    return flat
