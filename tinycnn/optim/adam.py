"""Adam and AdamW (Kingma & Ba 2015; Loshchilov & Hutter 2019)."""
import math

from .. import kernels
from ..backend import get_array_module
from .optimizer import Optimizer


class Adam(Optimizer):
    """Adam, with PyTorch's update rule (t counts this parameter's steps)::

        g = grad + weight_decay * p                      (L2 penalty, Adam only)
        m = beta1 * m + (1 - beta1) * g                  (first moment)
        v = beta2 * v + (1 - beta2) * g * g              (second moment)
        v_max = max(v_max, v)  and use it for v          (amsgrad)
        p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

        >>> import numpy as np, tinycnn
        >>> w = tinycnn.nn.Parameter(np.zeros(2, dtype=np.float32))
        >>> opt = Adam([w], lr=0.1)
        >>> w.grad = np.array([3.0, -0.5], dtype=np.float32)
        >>> opt.step()
        >>> w.data.round(6)               # the first step moves each weight by about lr
        array([-0.1,  0.1], dtype=float32)
    """

    decoupled_weight_decay = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
        super().__init__(params, defaults)

    def check_hyperparameters(self, hyper):
        hyper = super().check_hyperparameters(hyper)
        betas = hyper["betas"]
        if len(betas) != 2 or not all(0.0 <= beta < 1.0 for beta in betas):
            raise ValueError(f"{self._name}: betas must be two numbers in [0, 1), got {betas!r}")
        hyper["betas"] = (float(betas[0]), float(betas[1]))
        return hyper

    def init_state(self, data, group):
        xp = get_array_module(data)
        state = {"exp_avg": xp.zeros_like(data), "exp_avg_sq": xp.zeros_like(data)}
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = xp.zeros_like(data)
        return state

    def update(self, data, grad, state, group):
        xp = get_array_module(data)
        lr, weight_decay, (beta1, beta2) = group["lr"], group["weight_decay"], group["betas"]
        if weight_decay != 0:
            if self.decoupled_weight_decay:
                data *= 1 - lr * weight_decay
            else:
                grad = grad + weight_decay * data

        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg += (1 - beta1) * (grad - exp_avg)  # moving average: a step (1 - beta1) toward grad
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * grad * grad
        if group["amsgrad"]:
            xp.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
            exp_avg_sq = state["max_exp_avg_sq"]

        step = state["step"]
        step_size = lr / (1 - beta1 ** step)
        denominator = xp.sqrt(exp_avg_sq) / math.sqrt(1 - beta2 ** step) + group["eps"]
        data -= step_size * (exp_avg / denominator)

    def multi_tensor_state_names(self, group):
        return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ())

    def multi_tensor_update(self, flat, states, group):
        """The step of ``update`` for a whole FlatGroup (GPU), in one kernel."""
        lr, weight_decay, (beta1, beta2) = group["lr"], group["weight_decay"], group["betas"]
        step = states[0]["step"]
        moments = flat.state["exp_avg"], flat.state["exp_avg_sq"]
        kernels.adam_step(flat.param, flat.grad, *moments, flat.state.get("max_exp_avg_sq", moments[1]),
                          lr / (1 - beta1 ** step), beta1, beta2, math.sqrt(1 - beta2 ** step), group["eps"],
                          weight_decay, 1 - lr * weight_decay, self.decoupled_weight_decay, group["amsgrad"])


class AdamW(Adam):
    """Adam with decoupled weight decay: ``p = p * (1 - lr * weight_decay)`` before the Adam step.

        >>> import numpy as np, tinycnn
        >>> w = tinycnn.nn.Parameter(np.ones(2, dtype=np.float32))
        >>> opt = AdamW([w], lr=0.1, weight_decay=0.5)
        >>> w.grad = np.zeros(2, dtype=np.float32)   # no gradient: only the decay acts
        >>> opt.step()
        >>> w.data
        array([0.95, 0.95], dtype=float32)
    """

    decoupled_weight_decay = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
