"""Batch normalisation on x (N, C, L), one channel per task, statistics fused in two passes.

Per-channel sums run over N*L values (65536 for a 64-image batch of 32x32 maps), so they
accumulate in float64 and are returned in the input dtype; the elementwise passes stay in
the input dtype.

``relu=True`` fuses a ReLU after the normalisation (y = max(BN(x), 0), NaN kept), and the
backward then takes the fused output ``y`` and zeroes gy where y <= 0. ``relu_input=True``
fuses a ReLU before it (BatchNorm of max(x, 0); the gradient is zero where x <= 0). Either
way: one pass over memory instead of a BatchNorm pass and a ReLU pass, forward and backward.
"""
import numpy as np
from numba import njit, prange

from .common import PARALLEL, SUMS


def batch_norm_forward_train(x, gamma, beta, eps, relu=False, relu_input=False):
    """-> (y, mean, var) with the batch mean and biased variance over axes (0, 2)."""
    y = np.empty_like(x)
    mean = np.empty(x.shape[1], x.dtype)
    var = np.empty(x.shape[1], x.dtype)
    _batch_norm_statistics(x, relu_input, mean, var)
    _batch_norm_normalize(x, gamma, beta, mean, var, eps, relu_input, relu, y)
    return y, mean, var


def batch_norm_forward_eval(x, gamma, beta, mean, var, eps, relu=False, relu_input=False):
    """y = (x - mean) / sqrt(var + eps) * gamma + beta with the given statistics."""
    y = np.empty_like(x)
    _batch_norm_normalize(x, gamma, beta, mean, var, eps, relu_input, relu, y)
    return y


def batch_norm_backward(x, gy, gamma, mean, var, eps, y=None, relu_input=False):
    """Training-mode gradient -> (gx, ggamma, gbeta); ``y``: the output of a fused ReLU."""
    gx = np.empty_like(x)
    ggamma = np.empty(x.shape[1], x.dtype)
    gbeta = np.empty(x.shape[1], x.dtype)
    relu = y is not None
    _batch_norm_backward(x, gy, gamma, mean, var, eps, relu, y if relu else gy, relu_input, gx, ggamma, gbeta)
    return gx, ggamma, gbeta


@njit(cache=True, nogil=True, parallel=PARALLEL, fastmath=SUMS)
def _batch_norm_statistics(x, relu_input, mean, var):
    n_images, channels, length = x.shape
    t = x.dtype.type
    count = n_images * length
    for c in prange(channels):
        total = 0.0                                  # float64 accumulators
        for n in range(n_images):
            for i in range(length):
                value = x[n, c, i]
                total += t(0) if relu_input and value < 0 else value
        mu = total / count
        squares = 0.0
        for n in range(n_images):
            for i in range(length):
                value = x[n, c, i]
                d = (t(0) if relu_input and value < 0 else value) - mu
                squares += d * d
        mean[c] = mu
        var[c] = squares / count


@njit(cache=True, nogil=True, parallel=PARALLEL)
def _batch_norm_normalize(x, gamma, beta, mean, var, eps, relu_input, relu, y):
    n_images, channels, length = x.shape
    t = x.dtype.type
    for c in prange(channels):
        mu = mean[c]
        scale = t(gamma[c] / np.sqrt(var[c] + t(eps)))   # gamma / std
        shift = beta[c]
        for n in range(n_images):
            if relu or relu_input:
                for i in range(length):
                    value = x[n, c, i]
                    value = ((t(0) if relu_input and value < 0 else value) - mu) * scale + shift
                    y[n, c, i] = t(0) if relu and value < 0 else value
            else:
                for i in range(length):
                    y[n, c, i] = (x[n, c, i] - mu) * scale + shift


@njit(cache=True, nogil=True, parallel=PARALLEL, fastmath=SUMS)
def _batch_norm_backward(x, gy, gamma, mean, var, eps, relu, y, relu_input, gx, ggamma, gbeta):
    # With relu, the gradient reaching BatchNorm is gy where y > 0, else 0. With relu_input,
    # BatchNorm saw max(x, 0), and the gradient passes on only where x > 0.
    n_images, channels, length = x.shape
    t = x.dtype.type
    count = n_images * length
    for c in prange(channels):
        mu = mean[c]
        invstd = t(1) / np.sqrt(var[c] + t(eps))
        sum_gy = 0.0                                 # float64 accumulators
        sum_gy_centered = 0.0
        for n in range(n_images):
            for i in range(length):
                g = gy[n, c, i] if not relu or y[n, c, i] > 0 else t(0)
                value = x[n, c, i]
                sum_gy += g
                sum_gy_centered += g * np.float64((t(0) if relu_input and value < 0 else value) - mu)
        gbeta[c] = sum_gy
        ggamma[c] = sum_gy_centered * invstd         # sum gy * xhat
        # gx = gamma*invstd/M * (M*gy - gbeta - xhat*ggamma), in the input dtype
        factor = gamma[c] * invstd / t(count)
        gb = gbeta[c]
        gg = ggamma[c]
        m = t(count)
        for n in range(n_images):
            for i in range(length):
                g = gy[n, c, i] if not relu or y[n, c, i] > 0 else t(0)
                value = x[n, c, i]
                xhat = ((t(0) if relu_input and value < 0 else value) - mu) * invstd
                gradient = factor * (m * g - gb - xhat * gg)
                gx[n, c, i] = gradient if not relu_input or value > 0 else t(0)
