"""Numerical gradient check: compare backward() with central differences in float64.

    >>> import numpy as np, tinycnn, tinycnn.functions as F
    >>> x = tinycnn.Tensor(np.random.default_rng(0).normal(size=(2, 3)), requires_grad=True)
    >>> tinycnn.gradcheck(lambda x: F.tanh(x), [x])
    True
"""
import numpy as np

from .tensor import Tensor, no_grad


class GradcheckError(AssertionError):
    """Raised when an analytic gradient disagrees with the numerical one."""


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0):
    """Check the gradients of ``fn(*inputs)`` with respect to every input that requires grad.

    The output is reduced to a scalar with fixed random weights, so every output
    element is checked. Inputs must be float64 (they are not converted: a float32
    check would measure rounding, not the gradient). Returns True, or raises
    GradcheckError naming the input, the worst element's index, and both values.
    ``fn`` must be deterministic (seed any dropout inside it).
    """
    inputs = [x if isinstance(x, Tensor) else Tensor(x) for x in inputs]
    for i, x in enumerate(inputs):
        if x.requires_grad and x.dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} must be float64, got {x.dtype}")
    output = fn(*inputs)
    weights = np.random.default_rng(seed).normal(size=output.shape)

    def objective():
        with no_grad():
            return float((np.asarray(fn(*inputs).numpy(), dtype=np.float64) * weights).sum())

    for x in inputs:
        x.grad = None
    output.backward(weights.astype(output.dtype))
    for i, x in enumerate(inputs):
        if not x.requires_grad:
            continue
        analytic = np.zeros(x.shape) if x.grad is None else x.grad.astype(np.float64)
        numeric = np.zeros(x.shape)
        flat = x.data.reshape(-1)
        for j in range(flat.size):
            original = flat[j]
            flat[j] = original + eps
            plus = objective()
            flat[j] = original - eps
            minus = objective()
            flat[j] = original
            numeric.reshape(-1)[j] = (plus - minus) / (2 * eps)
        error = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
        if error.size and error.max() > 0:
            worst = np.unravel_index(int(error.argmax()), x.shape)
            raise GradcheckError(f"gradcheck: input {i} (shape {x.shape}) at index {worst}: "
                                 f"analytic {analytic[worst]:.8g}, numeric {numeric[worst]:.8g}")
    return True
