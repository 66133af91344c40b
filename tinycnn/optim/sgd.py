"""Stochastic gradient descent with momentum, Nesterov momentum and weight decay."""
from .. import kernels
from .optimizer import Optimizer


class SGD(Optimizer):
    """SGD, with PyTorch's update rule::

        g = grad + weight_decay * p
        buf = g                                          (first step)
        buf = momentum * buf + (1 - dampening) * g       (later steps)
        g = g + momentum * buf  if nesterov  else  buf
        p = p - lr * g

        >>> import numpy as np, tinycnn
        >>> w = tinycnn.nn.Parameter(np.zeros(2, dtype=np.float32))
        >>> opt = SGD([w], lr=0.5, momentum=0.9)
        >>> for _ in range(2):
        ...     w.grad = np.ones(2, dtype=np.float32)
        ...     opt.step()
        >>> w.data                       # -0.5 * 1, then -0.5 * (0.9 + 1)
        array([-1.45, -1.45], dtype=float32)
    """

    graph_safe = True       # a step's kernel arguments do not change from step to step (tinycnn.cuda_graph)

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        nesterov=nesterov, weight_decay=weight_decay)
        super().__init__(params, defaults)

    def check_hyperparameters(self, hyper):
        hyper = super().check_hyperparameters(hyper)
        if hyper["nesterov"] and (hyper["momentum"] <= 0 or hyper["dampening"] != 0):
            raise ValueError(f"SGD: nesterov needs momentum > 0 and dampening == 0, got "
                             f"momentum={hyper['momentum']}, dampening={hyper['dampening']}")
        return hyper

    def update(self, data, grad, state, group):
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * data
        momentum = group["momentum"]
        if momentum != 0:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = grad.copy()
            else:
                buffer = state["momentum_buffer"]
                buffer *= momentum
                buffer += (1 - group["dampening"]) * grad
            buffer = state["momentum_buffer"]
            grad = grad + momentum * buffer if group["nesterov"] else buffer
        data -= group["lr"] * grad

    def multi_tensor_state_names(self, group):
        return ("momentum_buffer",) if group["momentum"] != 0 else ()

    def multi_tensor_update(self, flat, states, group):
        """The step of ``update`` for a whole FlatGroup (GPU), in one kernel."""
        momentum = group["momentum"]
        first = momentum != 0 and "momentum_buffer" not in states[0]
        buffer = flat.state["momentum_buffer"] if momentum != 0 else flat.grad     # unread without momentum
        kernels.sgd_step(flat.param, flat.grad, buffer, group["lr"], momentum, group["dampening"],
                         group["weight_decay"], group["nesterov"], first)
        if first:
            flat.adopt(states, "momentum_buffer")
