"""Depthwise convolution (groups == in_channels), direct: no im2col buffer.

x (N, C, H, W), weight (C*M, 1, kh, kw): output channel o reads input channel o // M.
"""
import numpy as np
from numba import njit, prange

from .common import PARALLEL, SUMS, valid_range


def depthwise_conv2d_forward(x, weight, window):
    """-> y (N, C*M, oh, ow)."""
    _, (sy, sx), (py, px), (dil_h, dil_w) = window
    oh, ow = window.output_size(*x.shape[2:])
    y = np.empty((x.shape[0], weight.shape[0], oh, ow), x.dtype)
    _depthwise_forward(x, weight, sy, sx, py, px, dil_h, dil_w, y)
    return y


def depthwise_conv2d_backward_input(gy, weight, window, size, in_channels=None):
    """-> gx (N, C, h, w) with size = (h, w); in_channels=None means C = C*M (multiplier 1)."""
    _, (sy, sx), (py, px), (dil_h, dil_w) = window
    c = gy.shape[1] if in_channels is None else in_channels
    gx = np.empty((gy.shape[0], c, *size), gy.dtype)
    _depthwise_backward_input(gy, weight, sy, sx, py, px, dil_h, dil_w, gx)
    return gx


def depthwise_conv2d_backward_weight(x, gy, window):
    """-> gweight (C*M, 1, kh, kw)."""
    (kh, kw), (sy, sx), (py, px), (dil_h, dil_w) = window
    gweight = np.empty((gy.shape[1], 1, kh, kw), x.dtype)
    _depthwise_backward_weight(x, gy, sy, sx, py, px, dil_h, dil_w, gweight)
    return gweight


@njit(cache=True, nogil=True, parallel=PARALLEL)
def _depthwise_forward(x, weight, sy, sx, py, px, dil_h, dil_w, y):
    n_images, channels, h, w = x.shape
    out_channels, _, kh, kw = weight.shape
    oh, ow = y.shape[2:]
    multiplier = out_channels // channels
    for plane in prange(n_images * out_channels):     # one (n, o) output plane per task
        n = plane // out_channels
        o = plane % out_channels
        image = x[n, o // multiplier]
        out = y[n, o]
        out[:] = 0
        for i in range(kh):
            y_lo, y_hi = valid_range(i * dil_h - py, sy, h, oh)
            for j in range(kw):
                x_lo, x_hi = valid_range(j * dil_w - px, sx, w, ow)
                shift = j * dil_w - px
                tap = weight[o, 0, i, j]
                for oy in range(y_lo, y_hi):
                    in_row = image[oy * sy + i * dil_h - py]
                    out_row = out[oy]
                    for ox in range(x_lo, x_hi):
                        out_row[ox] += tap * in_row[ox * sx + shift]


@njit(cache=True, nogil=True, parallel=PARALLEL)
def _depthwise_backward_input(gy, weight, sy, sx, py, px, dil_h, dil_w, gx):
    # The adjoint of the forward loop. Each task owns one (n, c) input-gradient plane and
    # adds the M output planes that read it, so there are no races and the order of the
    # additions is fixed (deterministic); as in col2im, adding in the order gy is stored is
    # faster than searching, for each pixel, the taps that land on it.
    n_images, out_channels, oh, ow = gy.shape
    channels, h, w = gx.shape[1:]
    kh, kw = weight.shape[2:]
    multiplier = out_channels // channels
    for plane in prange(n_images * channels):
        n = plane // channels
        c = plane % channels
        image = gx[n, c]
        image[:] = 0
        for o in range(c * multiplier, (c + 1) * multiplier):
            for i in range(kh):
                y_lo, y_hi = valid_range(i * dil_h - py, sy, h, oh)
                for j in range(kw):
                    x_lo, x_hi = valid_range(j * dil_w - px, sx, w, ow)
                    shift = j * dil_w - px
                    tap = weight[o, 0, i, j]
                    for oy in range(y_lo, y_hi):
                        in_row = gy[n, o, oy]
                        out_row = image[oy * sy + i * dil_h - py]
                        for ox in range(x_lo, x_hi):
                            out_row[ox * sx + shift] += tap * in_row[ox]


@njit(cache=True, nogil=True, parallel=PARALLEL, fastmath=SUMS)
def _depthwise_backward_weight(x, gy, sy, sx, py, px, dil_h, dil_w, gweight):
    n_images, channels, h, w = x.shape
    out_channels, oh, ow = gy.shape[1:]
    kh, kw = gweight.shape[2:]
    multiplier = out_channels // channels
    for o in prange(out_channels):                   # one filter per task
        c = o // multiplier
        for i in range(kh):
            y_lo, y_hi = valid_range(i * dil_h - py, sy, h, oh)
            for j in range(kw):
                x_lo, x_hi = valid_range(j * dil_w - px, sx, w, ow)
                shift = j * dil_w - px
                total = x.dtype.type(0)
                for n in range(n_images):
                    for oy in range(y_lo, y_hi):
                        in_row = x[n, c, oy * sy + i * dil_h - py]
                        grad_row = gy[n, o, oy]
                        row_sum = x.dtype.type(0)    # partial sums per row keep float32 accurate
                        for ox in range(x_lo, x_hi):
                            row_sum += grad_row[ox] * in_row[ox * sx + shift]
                        total += row_sum
                gweight[o, 0, i, j] = total
