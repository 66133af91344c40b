"""Multi-tensor optimizer steps on the GPU: one kernel launch updates every parameter of a group
and dtype, where a loop over parameters would launch 3 to 6 small kernels for each.

At its first GPU step, an optimizer packs the parameters of a group (one dtype at a time) into
one flat device buffer: each ``param.data`` becomes a view of its slice, with the values it had,
and each state buffer (SGD's momentum, Adam's moments) a view of a flat buffer of its own. A step
then gathers the gradients into a flat gradient buffer (one concatenation) and runs one kernel
(kernels/cuda/optim.cu) over the flat arrays, in the same arithmetic as the host's loop. State
and ``state_dict`` keep their per-parameter arrays (the views). Whatever breaks the packing (a
parameter moved, cast or assigned, ``load_state_dict``, a parameter without a gradient, Adam
parameters at different step counts) is noticed before the step, which repacks or falls back to
the per-parameter loop. On the host nothing changes.
"""
import numpy as np

from .. import kernels
from ..kernels import is_cupy_array


class FlatGroup:
    """Parameters of one dtype on the GPU whose arrays, and state buffers ``names``, are views of
    flat buffers; ``grad`` is the flat buffer the gradients are gathered into."""

    def __init__(self, params, states, names):
        xp, dtype = kernels.array_module(params[0].data), params[0].data.dtype
        self.params = list(params)
        bounds = np.cumsum([0] + [p.data.size for p in params]).tolist()
        self.slices = [slice(start, stop) for start, stop in zip(bounds, bounds[1:])]
        self.param = xp.empty(bounds[-1], dtype)
        self.grad = xp.empty(bounds[-1], dtype)
        self.state = {name: xp.zeros(bounds[-1], dtype) for name in names}
        self.views = [self.param[where].reshape(p.data.shape) for p, where in zip(params, self.slices)]
        self.state_views = {name: [flat[where].reshape(p.data.shape) for p, where in zip(params, self.slices)]
                            for name, flat in self.state.items()}
        for param, view in zip(params, self.views):
            view[...] = param.data
            param.data = view
        for name, views in self.state_views.items():
            for state, view in zip(states, views):
                if name in state:
                    view[...] = state[name]
                    state[name] = view

    def holds(self, params, states):
        """True when these are still the packed parameters, their arrays and state buffers the views."""
        if len(params) != len(self.params) or any(p is not q for p, q in zip(params, self.params)):
            return False
        if any(p.data is not view for p, view in zip(params, self.views)):
            return False
        return all(name not in state or state[name] is view
                   for name, views in self.state_views.items() for state, view in zip(states, views))

    def adopt(self, states, name):
        """Make ``state[name]`` of every parameter the view of the flat buffer ``name``."""
        for state, view in zip(states, self.state_views[name]):
            state[name] = view

    def gather(self, grads):
        xp = kernels.array_module(self.grad)
        xp.concatenate([g.reshape(-1) for g in grads], out=self.grad)


def step_group(optimizer, index, group, ready):
    """Update the (param, state) pairs of ``ready`` (states already count this step) with one
    kernel per dtype; returns False, touching nothing, when the loop must do it."""
    names = optimizer.multi_tensor_state_names(group) if hasattr(optimizer, "multi_tensor_update") else None
    if names is None or not ready or not all(_on_gpu(param) for param, _ in ready):
        return False
    by_dtype = {}
    for param, state in ready:
        by_dtype.setdefault(param.data.dtype, []).append((param, state))
    for pairs in by_dtype.values():
        states = [state for _, state in pairs]
        if len({state["step"] for state in states}) != 1 or \
                any(len({name in state for state in states}) != 1 for name in names):
            return False
    packed = optimizer.__dict__.setdefault("_flat_groups", {})
    for dtype, pairs in by_dtype.items():
        params, states = [p for p, _ in pairs], [s for _, s in pairs]
        flat = packed.get((index, dtype))
        if flat is None or not flat.holds(params, states):
            flat = packed[index, dtype] = FlatGroup(params, states, names)
        flat.gather([p.grad for p in params])
        optimizer.multi_tensor_update(flat, states, group)
    return True


def _on_gpu(param):
    return is_cupy_array(param.data) and is_cupy_array(param.grad) and param.grad.dtype == param.data.dtype \
        and param.data.dtype in (np.float32, np.float64)
