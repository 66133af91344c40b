"""BatchNorm on the GPU in few launches (kernels/cuda/norm_fused.cu): a training forward is one
statistics kernel and one normalisation kernel, a backward one gradient-sums kernel and one
input-gradient kernel, with a ReLU before or after BatchNorm fused into them.

The statistics and the gradient sums are cooperative block reductions, one block per channel,
that sum in double for float32 and float64 alike, in a fixed order (the same bits every run).
The statistics take one pass over x: sums of d = x - x[0, c, 0] and of d^2, the shift keeping
the sum of squares from cancelling when the mean is large against the spread. float32 mean
and variance are the float64 results rounded once; float64 ones are within a few ulps of a
two-pass variance unless the mean is 10^4 or more spreads away from the channel's first value.
"""
import math

import numpy as np

from .. import cuda as package     # looked up at each call: tests swap its kernels and array module

_REDUCE_THREADS = 256       # REDUCE_THREADS of common.cuh: the reductions' __shared__ arrays
_VALUES_PER_THREAD = 8      # a reduction block gets about this many values per thread, 32 threads or more


def _launch_reduction(op, channels, per_channel, *args):
    """One block per channel (the kernels loop when the grid is capped), a power of two of
    threads that leaves each about _VALUES_PER_THREAD values, at most _BLOCK_SIZE."""
    dtype = args[0].dtype
    wanted = 1 << max(5, math.ceil(math.log2(max(per_channel / _VALUES_PER_THREAD, 1))))
    threads = min(wanted, _REDUCE_THREADS, package._BLOCK_SIZE)
    blocks = min(channels, package._MAX_BLOCKS)
    package._get_kernel(f"{op}_{package._SUFFIX[dtype]}")((blocks,), (threads,),
                                                           package._kernel_args(op, dtype, args))


def statistics(x, relu_input):
    """x (N, C, L) -> (mean, biased var) per channel, of max(x, 0) with ``relu_input``."""
    n, c, l = x.shape
    mean, var = package._empty((c,), x), package._empty((c,), x)
    _launch_reduction("batch_norm_statistics", c, n * l, x, mean, var, n, c, l, bool(relu_input))
    return mean, var


def normalize(x, gamma, beta, mean, var, eps, relu, relu_input):
    """relu?((relu_input? max(x, 0)) - mean) / sqrt(var + eps) * gamma + beta) in one pass."""
    x, gamma, beta, mean, var = package._inputs("batch_norm_forward", x, gamma, beta, mean, var)
    n, c, l = x.shape
    y = package._empty(x.shape, x)
    package._launch("batch_norm_relu_normalize", x.size, x, mean, var, gamma, beta, y, n, c, l, float(eps),
            bool(relu), bool(relu_input))
    return y


def backward(x, gy, gamma, mean, var, eps, y, relu_input):
    """Training-mode gradient -> (gx, ggamma, gbeta) in two launches; ``y`` is the fused ReLU's
    output (its sign masks gy) or None."""
    x, gy, gamma, mean, var = package._inputs("batch_norm_backward", x, gy, gamma, mean, var)
    relu = y is not None
    y = package._inputs("batch_norm_backward", y) if relu else x      # unread without relu
    n, c, l = x.shape
    ggamma, gbeta, gx = package._empty((c,), x), package._empty((c,), x), package._empty(x.shape, x)
    _launch_reduction("batch_norm_backward_sums", c, n * l, x, gy, y, mean, var, ggamma, gbeta, n, c, l,
                      float(eps), relu, bool(relu_input))
    package._launch("batch_norm_relu_backward", x.size, x, gy, y, mean, var, gamma, gbeta, ggamma, gx, n, c, l,
            float(eps), relu, bool(relu_input))
    return gx, ggamma, gbeta


def update_running(running_mean, running_var, mean, var, momentum, count):
    """running = (1 - momentum) * running + momentum * batch in place, the variance unbiased
    by count / (count - 1); one launch (the arrays share one dtype)."""
    if not all(a.dtype == running_mean.dtype for a in (running_var, mean, var)) or \
            running_mean.dtype not in (np.float32, np.float64):
        raise TypeError("batch_norm_update_running: the running and batch statistics must share one "
                        f"float dtype, got {running_mean.dtype}, {running_var.dtype}, {mean.dtype}, {var.dtype}")
    if not (running_mean.flags.c_contiguous and running_var.flags.c_contiguous):
        raise ValueError("batch_norm_update_running: the running statistics must be C-contiguous (updated in place)")
    m = float(momentum)
    package._launch("batch_norm_update_running", mean.size, running_mean, running_var, mean, var, mean.size,
            1.0 - m, m, m * count / (count - 1))


def channel_rows_and_sums(gy, with_sums):
    """gy (N, C, ...) -> (rows (C, N, ...): gy with its first two axes swapped, C-contiguous; the
    sums of gy over all but the channel axis, or None), one cooperative launch."""
    gy = package._inputs("channel_rows_and_sums", gy)
    n, c = gy.shape[:2]
    rows = package._empty((c, n) + tuple(gy.shape[2:]), gy)
    sums = package._empty((c,), gy)
    _launch_reduction("channel_rows_and_sums", c, gy.size // max(c, 1), gy, rows, sums, n, c,
                      gy.size // max(n * c, 1), bool(with_sums))
    return rows, sums if with_sums else None
