"""RMSprop (Hinton's lecture 6e), optionally centered and with momentum."""
from ..backend import get_array_module
from .optimizer import Optimizer


class RMSprop(Optimizer):
    """RMSprop, with PyTorch's update rule::

        g = grad + weight_decay * p
        s = alpha * s + (1 - alpha) * g * g              (mean square)
        a = alpha * a + (1 - alpha) * g                  (mean, centered only)
        rms = sqrt(s - a * a) if centered else sqrt(s)
        buf = momentum * buf + g / (rms + eps);  p = p - lr * buf      (momentum > 0)
        p = p - lr * g / (rms + eps)                                   (otherwise)

        >>> import numpy as np, tinycnn
        >>> w = tinycnn.nn.Parameter(np.zeros(1, dtype=np.float32))
        >>> opt = RMSprop([w], lr=0.01)
        >>> w.grad = np.array([2.0], dtype=np.float32)
        >>> opt.step()
        >>> w.data.round(6)               # -0.01 * 2 / sqrt(0.01 * 4)
        array([-0.1], dtype=float32)
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                        momentum=momentum, centered=centered)
        super().__init__(params, defaults)

    def init_state(self, data, group):
        xp = get_array_module(data)
        state = {"square_avg": xp.zeros_like(data)}
        if group["momentum"] > 0:
            state["momentum_buffer"] = xp.zeros_like(data)
        if group["centered"]:
            state["grad_avg"] = xp.zeros_like(data)
        return state

    def update(self, data, grad, state, group):
        xp = get_array_module(data)
        alpha = group["alpha"]
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * data

        square_avg = state["square_avg"]
        square_avg *= alpha
        square_avg += (1 - alpha) * grad * grad
        if group["centered"]:
            grad_avg = state["grad_avg"]
            grad_avg += (1 - alpha) * (grad - grad_avg)  # moving average: a step (1 - alpha) toward grad
            rms = xp.sqrt(square_avg - grad_avg * grad_avg)
        else:
            rms = xp.sqrt(square_avg)
        rms += group["eps"]

        if group["momentum"] > 0:
            buffer = state["momentum_buffer"]
            buffer *= group["momentum"]
            buffer += grad / rms
            data -= group["lr"] * buffer
        else:
            data -= group["lr"] * (grad / rms)
