"""The optimizer base class: parameter groups, per-parameter state, save/load.

An optimizer holds ``param_groups``, a list of dicts; each has its own
``"params"`` and hyper-parameters (``"lr"``, ``"momentum"``, ...), so one model
can train its backbone with a small lr and its head with a large one. Every
update changes ``p.data`` in place, so references held elsewhere (a Module's
attribute, a checkpoint callback) stay valid, and bumps the parameter's version: a
backward through a graph recorded before the step raises instead of using the new values.

    >>> import numpy as np
    >>> import tinycnn
    >>> w = tinycnn.nn.Parameter(np.ones(3, dtype=np.float32))
    >>> opt = tinycnn.optim.SGD([w], lr=0.1)
    >>> w.grad = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    >>> opt.step()
    >>> w.data
    array([0.9, 0.8, 0.7], dtype=float32)
"""
import numbers

import numpy as np

from ..backend import get_array_module, device_of, to_device
from ..tensor import Tensor
from . import multi_tensor


class Optimizer:
    """Base class: subclasses define ``init_state`` and ``update``.

    ``params`` is an iterable of Parameters, or a list of dicts
    ``{"params": [...], "lr": ...}``; a key missing from a group takes its
    value from ``defaults``.
    """

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.param_groups = []
        self.state = {}  # id(param) -> {"step": int, "<buffer name>": array, ...}
        groups = list(params) if not _is_parameter(params) else [params]
        if not groups:
            raise ValueError(f"{self._name}: got an empty list of parameters")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    @property
    def _name(self):
        return type(self).__name__

    # ----- parameter groups --------------------------------------------------
    def add_param_group(self, group):
        """Add a dict ``{"params": [...], <hyper-parameter>: value, ...}``."""
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"{self._name}: a parameter group must be a dict with a 'params' key, "
                            f"got {type(group).__name__}")
        unknown = set(group) - set(self.defaults) - {"params"}
        if unknown:
            raise ValueError(f"{self._name}: unknown hyper-parameter(s) {sorted(unknown)}; "
                             f"expected some of {sorted(self.defaults)}")
        params = [group["params"]] if _is_parameter(group["params"]) else list(group["params"])
        if not params:
            raise ValueError(f"{self._name}: a parameter group has an empty 'params' list")
        known = {id(p) for p in self.parameters()}
        for param in params:
            if not _is_parameter(param):
                raise TypeError(f"{self._name}: expected Parameters (objects with .data and .grad), "
                                f"got {type(param).__name__}")
            if id(param) in known:
                raise ValueError(f"{self._name}: a parameter appears in more than one place "
                                 f"(shape {tuple(param.data.shape)})")
            known.add(id(param))
        hyper = {**self.defaults, **{k: v for k, v in group.items() if k != "params"}}
        self.param_groups.append({"params": params, **self.check_hyperparameters(hyper)})

    def parameters(self):
        """All parameters, group after group: their position is their index in state_dict()."""
        return [p for group in self.param_groups for p in group["params"]]

    def check_hyperparameters(self, hyper):
        """Validate one group's hyper-parameters and return them as plain Python values.

        Plain floats matter: a NumPy float64 scalar times a float32 array gives
        float64, a Python float does not.
        """
        plain = {name: _plain_hyperparameter(value) for name, value in hyper.items()}
        for name in ("lr", "eps", "weight_decay", "momentum", "dampening", "alpha"):
            if name in plain:
                value = plain[name]
                if not isinstance(value, numbers.Real) or isinstance(value, bool) or value < 0:
                    raise ValueError(f"{self._name}: {name} must be a number >= 0, got {value!r}")
                plain[name] = float(value)
        return plain

    def set_lr(self, lr):
        """Set the lr of every group (e.g. after resuming: "lower the lr and continue")."""
        for group in self.param_groups:
            group["lr"] = float(lr)

    # ----- the update ---------------------------------------------------------
    def zero_grad(self):
        """Forget every gradient (set ``.grad`` to None, as PyTorch does by default)."""
        for param in self.parameters():
            param.grad = None

    def step(self):
        """Update every parameter that has a gradient; parameters whose grad is None are skipped.
        On the GPU, optimizers with a ``multi_tensor_update`` update a group in one kernel launch
        per dtype (multi_tensor.py)."""
        for index, group in enumerate(self.param_groups):
            ready = []
            for param in group["params"]:
                if param.grad is None:
                    continue
                if param.grad.shape != param.data.shape:
                    raise ValueError(f"{self._name}.step: a parameter of shape {tuple(param.data.shape)} "
                                     f"has a gradient of shape {tuple(param.grad.shape)}")
                state = self._state_of(param, group)
                state["step"] += 1
                ready.append((param, state))
            if not multi_tensor.step_group(self, index, group, ready):
                for param, state in ready:
                    self.update(param.data, param.grad, state, group)
            for param, _ in ready:
                if isinstance(param, Tensor):
                    param._bump_version(f"{self._name}.step")

    def init_state(self, data, group):
        """Return the buffers of a parameter before its first update (arrays shaped like ``data``)."""
        return {}

    def update(self, data, grad, state, group):
        """Change ``data`` in place from ``grad``; ``state["step"]`` already counts this step."""
        raise NotImplementedError

    def _state_of(self, param, group):
        """The state of ``param``: created on its device at the first step, following it if it moved
        (``model.to("cuda")``) or changed dtype (``model.to(np.float64)``)."""
        state = self.state.get(id(param))
        if state is None:
            state = {"step": 0, **self.init_state(param.data, group)}
            self.state[id(param)] = state
        device, dtype = device_of(param.data), param.data.dtype
        for name, value in state.items():
            if hasattr(value, "shape") and (device_of(value) != device or value.dtype != dtype):
                state[name] = to_device(value, device).astype(dtype, copy=False)
        return state

    # ----- save / load ----------------------------------------------------------
    def state_dict(self):
        """A copy of the optimizer's state as plain numbers and NumPy arrays.

        ``{"state": {index: {"step": 3, "exp_avg": array, ...}},
        "param_groups": [{"lr": 0.1, ..., "params": [0, 1, 2]}]}``, where an index is
        the parameter's position in ``parameters()`` (so it saves in an npz).
        """
        index_of = {id(p): i for i, p in enumerate(self.parameters())}
        state = {}
        for param_id, param_state in self.state.items():
            state[index_of[param_id]] = {
                name: np.array(to_device(value, "cpu")) if hasattr(value, "shape") else value
                for name, value in param_state.items()}
        groups = []
        for group in self.param_groups:
            saved = {name: value for name, value in group.items() if name != "params"}
            saved["params"] = [index_of[id(p)] for p in group["params"]]
            groups.append(saved)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyper-parameters and buffers saved by ``state_dict()``.

        Accepts what comes back from an npz too: string indices, 0-d arrays for
        numbers, arrays for tuples. Buffers land on each parameter's device and dtype.
        """
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{self._name}.load_state_dict: the saved state has {len(saved_groups)} "
                             f"parameter group(s), this optimizer has {len(self.param_groups)}")
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            saved_count = len(np.atleast_1d(np.asarray(saved["params"])))
            if saved_count != len(group["params"]):
                raise ValueError(f"{self._name}.load_state_dict: group {i} has {len(group['params'])} "
                                 f"parameters, the saved group has {saved_count}")
        for group, saved in zip(self.param_groups, saved_groups):
            hyper = {name: value for name, value in saved.items() if name != "params"}
            group.update(self.check_hyperparameters(hyper))

        params = self.parameters()
        self.state = {}
        for index, saved_state in state_dict["state"].items():
            index = int(index)
            if not 0 <= index < len(params):
                raise ValueError(f"{self._name}.load_state_dict: state for parameter {index}, "
                                 f"but there are only {len(params)} parameters")
            param = params[index]
            xp = get_array_module(param.data)
            state = {}
            for name, value in saved_state.items():
                value = _plain(value)
                if hasattr(value, "shape"):
                    if tuple(value.shape) != tuple(param.data.shape):
                        raise ValueError(f"{self._name}.load_state_dict: buffer '{name}' of parameter "
                                         f"{index} has shape {tuple(value.shape)}, the parameter has "
                                         f"{tuple(param.data.shape)}")
                    value = xp.array(to_device(value, device_of(param.data)), dtype=param.data.dtype)
                state[name] = value
            self.state[id(param)] = state

    def __repr__(self):
        lines = [f"{self._name} ("]
        for i, group in enumerate(self.param_groups):
            hyper = ", ".join(f"{k}={v}" for k, v in group.items() if k != "params")
            lines.append(f"  group {i}: {len(group['params'])} params, {hyper}")
        return "\n".join(lines + [")"])


def _is_parameter(value):
    return hasattr(value, "data") and hasattr(value, "grad")


def _plain(value):
    """NumPy scalars and 0-d arrays -> Python numbers; other values unchanged."""
    if isinstance(value, np.generic) or (isinstance(value, np.ndarray) and value.ndim == 0):
        return value.item()
    return value


def _plain_hyperparameter(value):
    """Like ``_plain``, and lists or arrays (e.g. Adam's betas after an npz) -> tuples."""
    if isinstance(value, (list, tuple, np.ndarray)) and np.ndim(value) > 0:
        return tuple(_plain(v) for v in value)
    return _plain(value)
