"""Local response normalisation across channels (AlexNet's formula, alpha not divided by size).

Each task takes one image row x[n, :, h, :] (C, W) and walks the channels once, keeping a
running sum over the channel window for the W pixels of the row. The power scale**-beta
is left to NumPy, whose SIMD power is several times faster than a scalar pow per element.
"""
import numpy as np
from numba import njit, prange

from .common import PARALLEL


def lrn_forward(x, size, alpha, beta, k):
    """-> (y, scale): scale = k + alpha * (window sum of x^2), y = x * scale**-beta."""
    scale = np.empty_like(x)
    _lrn_scale(x, size, alpha, k, scale)
    y = scale ** -beta
    y *= x
    return y, scale


def lrn_backward(x, y, scale, gy, size, alpha, beta):
    """gx = gy * scale**-beta - 2*alpha*beta * x * (window sum of gy * y / scale)."""
    gx = np.empty_like(x)
    _lrn_backward(x, y, scale, gy, scale ** -beta, size, 2 * alpha * beta, gx)
    return gx


@njit(cache=True, nogil=True)
def _channel_window_sum(values, before, after, out):
    """out[c] = sum of values[c'] for c' in [c - before, c + after] clipped to [0, C); (C, W) rows."""
    channels, width = values.shape
    running = np.zeros(width, values.dtype)
    for c in range(min(after + 1, channels)):      # the window of channel 0
        for ix in range(width):
            running[ix] += values[c, ix]
    for c in range(channels):
        entering = c + 1 + after                   # then slide the window from c to c + 1
        leaving = c - before
        for ix in range(width):
            out[c, ix] = running[ix]
            if entering < channels:
                running[ix] += values[entering, ix]
            if leaving >= 0:
                running[ix] -= values[leaving, ix]


@njit(cache=True, nogil=True, parallel=PARALLEL)
def _lrn_scale(x, size, alpha, k, scale):
    n_images, channels, h, w = x.shape
    t = x.dtype.type                                # keep float32 arithmetic in float32
    a, k0 = t(alpha), t(k)
    for row in prange(n_images * h):
        n = row // h
        iy = row % h
        squares = np.empty((channels, w), x.dtype)
        for c in range(channels):
            for ix in range(w):
                squares[c, ix] = x[n, c, iy, ix] * x[n, c, iy, ix]
        window = np.empty((channels, w), x.dtype)
        _channel_window_sum(squares, size // 2, (size - 1) // 2, window)
        for c in range(channels):
            for ix in range(w):
                scale[n, c, iy, ix] = k0 + a * window[c, ix]


@njit(cache=True, nogil=True, parallel=PARALLEL)
def _lrn_backward(x, y, scale, gy, decay, size, two_alpha_beta, gx):
    # decay = scale**-beta
    n_images, channels, h, w = x.shape
    coefficient = x.dtype.type(two_alpha_beta)
    for row in prange(n_images * h):
        n = row // h
        iy = row % h
        ratios = np.empty((channels, w), x.dtype)
        for c in range(channels):
            for ix in range(w):
                ratios[c, ix] = gy[n, c, iy, ix] * y[n, c, iy, ix] / scale[n, c, iy, ix]
        # channel c sits in the windows of c' in [c - (size-1)//2, c + size//2]
        feedback = np.empty((channels, w), x.dtype)
        _channel_window_sum(ratios, (size - 1) // 2, size // 2, feedback)
        for c in range(channels):
            for ix in range(w):
                gx[n, c, iy, ix] = (gy[n, c, iy, ix] * decay[n, c, iy, ix]
                                    - coefficient * x[n, c, iy, ix] * feedback[c, ix])
