"""Max and average pooling, forward and backward, one (n, c) plane per task.

The backward kernels are written as the forward loop run in reverse: each output adds its
gradient to the pixels of its window. A task owns its whole plane, so this needs no atomics,
and every pixel receives its contributions in window order (oy, ox ascending): the same
sum, added in the same order, as a per-pixel gather over the windows that contain it (the
form kernels/cuda uses). Visiting outputs instead of pixels saves searching the windows of
each pixel: faster for max pooling (figures in BENCHMARKS.md).
"""
import numpy as np
from numba import intp, njit, prange, uintp

from .common import PARALLEL, pool_count


def max_pool2d_forward(x, kh, kw, sy, sx, py, px, oh, ow):
    """-> (y, argmax): the max of each window and the flat index iy*W + ix of its first maximum."""
    y = np.empty(x.shape[:2] + (oh, ow), x.dtype)
    argmax = np.empty(x.shape[:2] + (oh, ow), np.int32)
    _max_pool2d_forward(x, kh, kw, sy, sx, py, px, y, argmax)
    return y, argmax


@njit(cache=True, nogil=True, parallel=PARALLEL)
def _max_pool2d_forward(x, kh, kw, sy, sx, py, px, y, argmax):
    n_images, channels, h, w = x.shape
    oh, ow = y.shape[2:]
    # windows of 2 or 3 with stride 2 and no padding, every one inside the image
    inside = sy == sx == 2 and py == px == 0 and 2 * (oh - 1) + kh <= h and 2 * (ow - 1) + kw <= w
    for plane in prange(n_images * channels):
        n = plane // channels
        c = plane % channels
        with_nan = _has_nan(x[n, c])
        if inside and kh == kw == 2 and not with_nan:
            _max_pool_2x2_plane(x[n, c], y[n, c], argmax[n, c])
        elif inside and kh == kw == 3 and not with_nan:
            _max_pool_3x3_stride_2_plane(x[n, c], y[n, c], argmax[n, c])
        else:
            _max_pool_plane(x[n, c], kh, kw, sy, sx, py, px, y[n, c], argmax[n, c], with_nan)


@njit(inline="always")
def _has_nan(image):
    count = 0
    for iy in range(image.shape[0]):
        for ix in range(image.shape[1]):
            count += image[uintp(iy), uintp(ix)] != image[uintp(iy), uintp(ix)]
    return count > 0


@njit(inline="always")
def _max_pool_plane(image, kh, kw, sy, sx, py, px, y, argmax, with_nan):
    """One plane, window by window. A strictly greater value keeps the first maximum; with
    ``with_nan`` the first NaN wins (tested per plane: the NaN test stops vectorization)."""
    h, w = image.shape
    oh, ow = y.shape
    for oy in range(oh):
        y0 = max(oy * sy - py, 0)               # the window clipped to the image:
        y1 = min(oy * sy - py + kh, h)          # padding is never selected
        for ox in range(ow):
            x0 = max(ox * sx - px, 0)
            x1 = min(ox * sx - px + kw, w)
            best = image[y0, x0]
            best_index = y0 * w + x0
            for iy in range(y0, y1):
                for ix in range(x0, x1):
                    value = image[uintp(iy), uintp(ix)]     # unsigned: no negative-index test
                    # | and & instead of or/and, and select instead of if: no branches
                    take = (value > best) | (with_nan & np.isnan(value) & (not np.isnan(best)))
                    best = value if take else best
                    best_index = iy * w + ix if take else best_index
            y[oy, ox] = best
            argmax[oy, ox] = best_index


@njit(inline="always")
def _max_pool_2x2_plane(image, y, argmax):
    """The common 2x2 window with stride 2, without NaN: four fixed reads per output, in
    scan order, which the compiler vectorizes along the row."""
    w = image.shape[1]
    oh, ow = y.shape
    for oy in range(oh):
        top, bottom = image[2 * oy], image[2 * oy + 1]
        for o in range(ow):
            ox = uintp(o)
            best, k = top[2 * ox], 0
            value = top[2 * ox + 1]
            best, k = (value, 1) if value > best else (best, k)
            value = bottom[2 * ox]
            best, k = (value, w) if value > best else (best, k)
            value = bottom[2 * ox + 1]
            best, k = (value, w + 1) if value > best else (best, k)
            y[oy, o] = best
            argmax[oy, o] = 2 * oy * w + 2 * o + k


@njit(inline="always")
def _first_max_of_three(row, o):
    """(value, j): the first maximum of row[2o], row[2o + 1], row[2o + 2]."""
    ox = uintp(o)
    best, j = row[2 * ox], 0
    value = row[2 * ox + 1]
    best, j = (value, 1) if value > best else (best, j)
    value = row[2 * ox + 2]
    best, j = (value, 2) if value > best else (best, j)
    return best, j


@njit(inline="always")
def _max_pool_3x3_stride_2_plane(image, y, argmax):
    """3x3 windows with stride 2, without NaN (MiniGoogLeNet's, GoogLeNet's): each window row's
    first maximum (three fixed reads, vectorized along the row), then the first of the three
    rows holding a strictly larger one. Row by row is scan order, so this is the first maximum
    of the window, as the general loop finds it."""
    w = image.shape[1]
    oh, ow = y.shape
    for oy in range(oh):
        best, where, top = y[oy], argmax[oy], 2 * oy
        row = image[top]
        for o in range(ow):
            value, j = _first_max_of_three(row, o)
            best[o] = value
            where[o] = top * w + 2 * o + j
        for i in range(1, 3):
            row = image[top + i]
            for o in range(ow):
                value, j = _first_max_of_three(row, o)
                take = value > best[uintp(o)]
                best[uintp(o)] = value if take else best[uintp(o)]
                where[uintp(o)] = (top + i) * w + 2 * o + j if take else where[uintp(o)]


def max_pool2d_backward(gy, argmax, h, w, kh, kw, sy, sx, py, px):
    """gx (N, C, h, w): each pixel sums gy over the windows it won."""
    gx = np.empty(gy.shape[:2] + (h, w), gy.dtype)
    _max_pool2d_backward(gy, argmax, kh, kw, sy, sx, py, px, gx)
    return gx


@njit(cache=True, nogil=True, parallel=PARALLEL)
def _max_pool2d_backward(gy, argmax, kh, kw, sy, sx, py, px, gx):
    n_images, channels, oh, ow = gy.shape
    h, w = gx.shape[2:]
    for plane in prange(n_images * channels):
        n = plane // channels
        c = plane % channels
        image = gx[n, c]
        image[:] = 0
        for oy in range(oh):
            top = oy * sy - py
            for ox in range(ow):
                left = ox * sx - px
                pixel = argmax[n, c, oy, ox]
                iy = intp(uintp(pixel) // uintp(w))  # unsigned: a plain division, no floor fix-up
                ix = pixel - iy * w
                # only a pixel inside this window can have won it (as in the gather)
                if 0 <= pixel and iy < h and top <= iy < top + kh and left <= ix < left + kw:
                    image[iy, ix] += gy[n, c, oy, ox]


def avg_pool2d_forward(x, kh, kw, sy, sx, py, px, oh, ow, count_include_pad):
    """Mean of each window; the divisor follows PyTorch (see common.pool_count)."""
    y = np.empty(x.shape[:2] + (oh, ow), x.dtype)
    _avg_pool2d_forward(x, kh, kw, sy, sx, py, px, count_include_pad, y)
    return y


@njit(cache=True, nogil=True, parallel=PARALLEL)
def _avg_pool2d_forward(x, kh, kw, sy, sx, py, px, count_include_pad, y):
    n_images, channels, h, w = x.shape
    oh, ow = y.shape[2:]
    for plane in prange(n_images * channels):
        n = plane // channels
        c = plane % channels
        image = x[n, c]
        for oy in range(oh):
            y0 = max(oy * sy - py, 0)
            y1 = min(oy * sy - py + kh, h)
            rows = pool_count(oy, kh, sy, py, h, count_include_pad)
            for ox in range(ow):
                x0 = max(ox * sx - px, 0)
                x1 = min(ox * sx - px + kw, w)
                cols = pool_count(ox, kw, sx, px, w, count_include_pad)
                total = x.dtype.type(0)
                for iy in range(y0, y1):
                    for ix in range(x0, x1):
                        total += image[iy, ix]
                y[n, c, oy, ox] = total / x.dtype.type(rows * cols)


def avg_pool2d_backward(gy, h, w, kh, kw, sy, sx, py, px, count_include_pad):
    """gx (N, C, h, w): each pixel sums gy / divisor over the windows that contain it."""
    gx = np.empty(gy.shape[:2] + (h, w), gy.dtype)
    _avg_pool2d_backward(gy, kh, kw, sy, sx, py, px, count_include_pad, gx)
    return gx


@njit(cache=True, nogil=True, parallel=PARALLEL)
def _avg_pool2d_backward(gy, kh, kw, sy, sx, py, px, count_include_pad, gx):
    n_images, channels, oh, ow = gy.shape
    h, w = gx.shape[2:]
    for plane in prange(n_images * channels):
        n = plane // channels
        c = plane % channels
        image = gx[n, c]
        image[:] = 0
        for oy in range(oh):
            y0 = max(oy * sy - py, 0)
            y1 = min(oy * sy - py + kh, h)
            rows = pool_count(oy, kh, sy, py, h, count_include_pad)
            for ox in range(ow):
                x0 = max(ox * sx - px, 0)
                x1 = min(ox * sx - px + kw, w)
                cols = pool_count(ox, kw, sx, px, w, count_include_pad)
                share = gy[n, c, oy, ox] / gy.dtype.type(rows * cols)
                for iy in range(y0, y1):
                    for ix in range(x0, x1):
                        image[iy, ix] += share
