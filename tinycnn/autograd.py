"""Function (one recorded op) and the backward sweep over the graph.

Calling a Function on Tensors runs ``forward`` on their arrays and, when a graph is
recorded, links the outputs to it. It also notes the version of every tensor its
``backward`` will read (``saved_inputs``, ``saves_outputs``); ``backward`` raises if one
of them was changed in place since, instead of returning a wrong gradient.

    >>> import tinycnn
    >>> w = tinycnn.Tensor([1.0, 2.0], requires_grad=True)
    >>> x = tinycnn.Tensor([3.0, 4.0])
    >>> y = (w * x).sum()          # Mul saves x: its gradient for w is x
    >>> x += 1.0
    >>> y.backward()  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    RuntimeError: Mul.backward: a tensor needed for gradient computation has been modified by an inplace operation: ...
"""
import heapq
import threading

import numpy as np

from .backend import get_array_module, is_cupy_array
from .grad_mode import is_grad_enabled
from .tensor import Tensor, as_array


class Function:
    """A differentiable operation on raw arrays.

    Subclasses implement ``forward(*arrays)`` returning an array or a tuple of
    arrays, and ``backward(*grads)`` returning one gradient (or None) per input.
    Hyper-parameters go to ``__init__``; anything ``backward`` needs is saved on
    ``self`` during ``forward``. ``backward`` may skip (return None for) an input whose
    ``needs_input_grad(i)`` is False, as PyTorch's ``ctx.needs_input_grad``.

    ``saved_inputs`` lists the indices of the inputs whose values ``backward`` reads,
    ``saves_outputs`` says whether it reads the outputs; backward raises if one of those
    tensors changed in place since forward. The defaults (every input, the outputs too)
    are the safe choice for a Function that declares nothing.

    The graph holds no input tensor: each input is an edge to where its gradient goes (its
    creator and output index, or the leaf itself), so an array that ``backward`` does not
    save is freed as soon as nothing else uses it (a ReLU's input, say), as in PyTorch.

    ``fresh_grads = True`` promises that ``backward`` returns a new array per input, which
    neither the Function nor anything else keeps: a parameter then takes its first gradient
    as its ``.grad`` without a copy. False (the default) is right for a Function that passes
    ``gy`` on, returns a view of it, or one array for two inputs (``Add``).
    """

    generation = 0
    _needs_input_grad = None
    saved_inputs = None     # None: all inputs
    saves_outputs = True
    fresh_grads = False

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
        requires_grad = is_grad_enabled() and any(t.requires_grad for t in tensors)
        results = [Tensor(y, requires_grad=requires_grad and y.dtype.kind == "f") for y in outputs]
        for result in results:
            _share_version_with_base(result, tensors)
        for hook in tuple(_hooks.active):
            hook.forward_postprocess(self, tensors, tuple(results))
        if requires_grad:
            self.generation = max(t.generation for t in tensors)
            self.edges = tuple(_edge(t) for t in tensors)
            self._needs_input_grad = tuple(t.requires_grad for t in tensors)
            self.input_shapes = tuple(t.shape for t in tensors)
            self.output_meta = [(y.shape, y.dtype) for y in outputs]
            self.saved_versions = self._versions_to_check(tensors, results)
            for index, r in enumerate(results):
                r.set_creator(self, index)
        return results[0] if single else tuple(results)

    def forward(self, *arrays):
        raise NotImplementedError

    def backward(self, *grads):
        raise NotImplementedError

    def _versions_to_check(self, inputs, outputs):
        """[(description, version counter, version now, shape)] of each tensor backward reads."""
        indices = range(len(inputs)) if self.saved_inputs is None else self.saved_inputs
        saved = [(f"input {i}", inputs[i]) for i in indices]
        if self.saves_outputs:
            saved += [(f"output {i}", y) for i, y in enumerate(outputs)]
        return [(what, t._version_counter, t._version, t.shape) for what, t in saved]

    def _check_versions(self):
        name = type(self).__name__
        for what, counter, version, shape in self.saved_versions:
            if counter.value != version:
                raise RuntimeError(
                    f"{name}.backward: a tensor needed for gradient computation has been modified by an inplace "
                    f"operation: {what} of {name}, of shape {tuple(shape)}, was changed by {counter.changed_by} "
                    f"and is at version {counter.value}; expected version {version} (as in forward). Run the "
                    "forward pass again after the change, or change a copy")


class _Hooks(threading.local):
    active = ()       # the FunctionHooks entered in this thread, outermost first


_hooks = _Hooks()


class FunctionHook:
    """Sees every Function applied in this thread while its ``with`` block runs (as Chainer's
    FunctionHook): ``forward_postprocess(function, inputs, outputs)`` gets the Function and
    its input and output Tensors (a tuple) right after forward. ``tinycnn.summary`` and the
    ONNX exporter follow the ops of a forward pass this way; nothing is patched.

        >>> import tinycnn
        >>> class Names(FunctionHook):
        ...     def __init__(self):
        ...         self.seen = []
        ...     def forward_postprocess(self, function, inputs, outputs):
        ...         self.seen.append(type(function).__name__)
        >>> with Names() as names:
        ...     y = (tinycnn.Tensor([1.0, 2.0]) * 3).sum()
        >>> names.seen
        ['Mul', 'Sum']
    """

    def forward_postprocess(self, function, inputs, outputs):
        pass

    def __enter__(self):
        _hooks.active = _hooks.active + (self,)
        return self

    def __exit__(self, *exc_info):
        _hooks.active = tuple(hook for hook in _hooks.active if hook is not self)


def _share_version_with_base(result, inputs):
    """A result that is a view of an input (reshape, slicing) shares its version counter:
    a change through either is a change of both."""
    array = result.data
    if getattr(array, "base", None) is None:
        return
    may_share_memory = getattr(get_array_module(array), "may_share_memory", None)
    for tensor in inputs:
        if may_share_memory is not None and may_share_memory(array, tensor.data):  # bounds only: O(1)
            result._version_counter = tensor._version_counter
            return


def _first_array(inputs):
    for x in inputs:
        if isinstance(x, Tensor):
            return x.data
    return None


def _edge(tensor):
    """Where an input's gradient goes: (creator, output index), (leaf, None), or None."""
    if not tensor.requires_grad:
        return None
    return (tensor, None) if tensor.creator is None else (tensor.creator, tensor._output_index)


def _add_pending(entry, g, owned):
    """The pending (gradient, owned) entry once `g` is added to `entry` (None: the first)."""
    if entry is None:
        return g, owned
    total, total_owned = entry
    if total_owned and total.dtype == np.result_type(total.dtype, g.dtype):
        total += g
        return total, True
    return total + g, True


def _run_backward(root, grad, retain_graph):
    """Reverse-mode sweep: process functions from the highest generation down."""
    # Gradients not yet consumed, keyed by (function, output index): the graph holds edges,
    # not tensors. Owned: nothing else holds the array (a fresh_grads Function's, or a sum
    # made here), so the next gradient for the same output is added into it in place.
    pending = {(root.creator, root._output_index): (grad, False)}
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
        if getattr(function, "edges", None) is None:
            raise RuntimeError("backward: the graph was already freed; pass retain_graph=True to the first backward "
                               "to backpropagate through it twice")
        entries = [pending.pop((function, index), None) for index in range(len(function.output_meta))]
        xp = get_array_module(next(entry[0] for entry in entries if entry is not None))
        grads_out = [entry[0] if entry is not None else xp.zeros(shape, dtype=dtype)
                     for entry, (shape, dtype) in zip(entries, function.output_meta)]
        function._check_versions()
        grads_in = function.backward(*grads_out)
        if not isinstance(grads_in, tuple):
            grads_in = (grads_in,)
        for edge, shape, g in zip(function.edges, function.input_shapes, grads_in):
            if g is None or edge is None:
                continue
            if g.shape != shape:
                raise RuntimeError(f"backward: {type(function).__name__} returned a gradient of shape {g.shape} "
                                   f"for an input of shape {shape}")
            node, index = edge
            if index is None:
                node._accumulate(g, owned=function.fresh_grads)
                for hook in tuple(node._post_accumulate_grad_hooks.values()):
                    hook(node)
            else:
                pending[edge] = _add_pending(pending.get(edge), g, function.fresh_grads)
                push(node)
        if not retain_graph:
            function.__dict__.clear()  # drops edges and saved arrays: frees the graph
