"""Winograd F(2x2, 3x3) transforms (see kernels.reference for the algorithm and layouts).

Every kernel works on one image at a time through a channels-last plane, zero-padded to
whole tiles: a tile's 16 values for all channels then sit in 16 runs of C adjacent floats,
and the transform of each run is a few vector adds with no border case. The 16 transformed
planes lie ``plane_size`` apart (kernels.winograd_plane_size): planes a multiple of 4 KiB
apart would share one set of the L1 cache and evict each other on every tile (4x slower).
"""
import numpy as np
from numba import njit, uintp

from .conv import _from_padded_channels_last, _to_padded_channels_last


def winograd_input_transform(x, py, px, th, tw, out):
    _input_transform(x, py, px, th, tw, out)
    return out


def winograd_input_transform_backward(v, n, c, h, w, py, px, th, tw, out=None):
    gx = np.empty((n, c, h, w), v.dtype) if out is None else out
    _input_transform_backward(v, py, px, th, tw, gx)
    return gx


def winograd_output_transform(m, n, k, oh, ow, out=None):
    y = np.empty((n, k, oh, ow), m.dtype) if out is None else out
    _output_transform(m, y)
    return y


def winograd_output_transform_backward(gy, out):
    _output_transform_backward(gy, out)
    return out


# The 1-D transforms, as tuples (LLVM keeps them in registers). B^T d, its adjoint B u,
# A^T m and its adjoint A g, with the matrices of kernels.reference.

@njit(cache=True, nogil=True, inline="always")
def _bt(d0, d1, d2, d3):
    return d0 - d2, d1 + d2, d2 - d1, d1 - d3


@njit(cache=True, nogil=True, inline="always")
def _b(u0, u1, u2, u3):
    return u0, u1 - u2 + u3, u2 + u1 - u0, -u3


@njit(cache=True, nogil=True, inline="always")
def _at(m0, m1, m2, m3):
    return m0 + m1 + m2, m1 - m2 - m3


@njit(cache=True, nogil=True, inline="always")
def _a(g0, g1):
    return g0, g0 + g1, g0 - g1, -g1


@njit(cache=True, nogil=True, inline="always")
def _load4(a, start, step):
    return a[uintp(start)], a[uintp(start + step)], a[uintp(start + 2 * step)], a[uintp(start + 3 * step)]


@njit(cache=True, nogil=True, inline="always")
def _store4(planes, k, plane, first, values):
    """planes[first + i] at offset k = values[i] for i < 4 (plane: the distance between planes)."""
    for i in range(4):
        planes[uintp(k + (first + i) * plane)] = values[i]


@njit(cache=True, nogil=True)
def _input_transform(x, py, px, th, tw, out):
    n_images, channels, h, w = x.shape
    hp, wp = max(py + h, 2 * th + 2), max(px + w, 2 * tw + 2)
    padded = np.zeros(hp * wp * channels, x.dtype)       # only its interior is ever written
    image, planes = x.reshape(-1), out.reshape(-1)
    plane = out.shape[1]
    row = wp * channels                                   # one padded row, all channels
    for n in range(n_images):
        _to_padded_channels_last(image, n * channels, channels, h, w, py, px, wp, padded)
        for ty in range(th):
            for tx in range(tw):
                p = (2 * ty * wp + 2 * tx) * channels
                t = ((n * th + ty) * tw + tx) * channels
                for c in range(channels):
                    # d_ij = padded pixel (2ty + i, 2tx + j); B^T d B: columns, then rows
                    q, k = p + c, t + c
                    d00, d01, d02, d03 = _load4(padded, q, channels)
                    d10, d11, d12, d13 = _load4(padded, q + row, channels)
                    d20, d21, d22, d23 = _load4(padded, q + 2 * row, channels)
                    d30, d31, d32, d33 = _load4(padded, q + 3 * row, channels)
                    e00, e10, e20, e30 = _bt(d00, d10, d20, d30)
                    e01, e11, e21, e31 = _bt(d01, d11, d21, d31)
                    e02, e12, e22, e32 = _bt(d02, d12, d22, d32)
                    e03, e13, e23, e33 = _bt(d03, d13, d23, d33)
                    _store4(planes, k, plane, 0, _bt(e00, e01, e02, e03))
                    _store4(planes, k, plane, 4, _bt(e10, e11, e12, e13))
                    _store4(planes, k, plane, 8, _bt(e20, e21, e22, e23))
                    _store4(planes, k, plane, 12, _bt(e30, e31, e32, e33))


@njit(cache=True, nogil=True)
def _input_transform_backward(v, py, px, th, tw, gx):
    # The adjoint of _input_transform: B dv B^T of every tile is added onto the channels-last
    # plane where the tile was read (tiles overlap by 2 pixels; one fixed order, so the sums
    # are deterministic), then the image part of the plane is transposed into gx.
    n_images, channels, h, w = gx.shape
    hp, wp = max(py + h, 2 * th + 2), max(px + w, 2 * tw + 2)
    padded = np.empty(hp * wp * channels, gx.dtype)
    planes, image = v.reshape(-1), gx.reshape(-1)
    plane = v.shape[1]
    row = wp * channels
    for n in range(n_images):
        padded[:] = 0
        for ty in range(th):
            for tx in range(tw):
                p = (2 * ty * wp + 2 * tx) * channels
                t = ((n * th + ty) * tw + tx) * channels
                for c in range(channels):
                    q, k = p + c, t + c
                    u00, u01, u02, u03 = _load4(planes, k, plane)
                    u10, u11, u12, u13 = _load4(planes, k + 4 * plane, plane)
                    u20, u21, u22, u23 = _load4(planes, k + 8 * plane, plane)
                    u30, u31, u32, u33 = _load4(planes, k + 12 * plane, plane)
                    e00, e10, e20, e30 = _b(u00, u10, u20, u30)
                    e01, e11, e21, e31 = _b(u01, u11, u21, u31)
                    e02, e12, e22, e32 = _b(u02, u12, u22, u32)
                    e03, e13, e23, e33 = _b(u03, u13, u23, u33)
                    _add4(padded, q, channels, _b(e00, e01, e02, e03))
                    _add4(padded, q + row, channels, _b(e10, e11, e12, e13))
                    _add4(padded, q + 2 * row, channels, _b(e20, e21, e22, e23))
                    _add4(padded, q + 3 * row, channels, _b(e30, e31, e32, e33))
        _from_padded_channels_last(padded, n * channels, channels, h, w, py, px, wp, image)


@njit(cache=True, nogil=True, inline="always")
def _add4(a, start, step, values):
    for i in range(4):
        a[uintp(start + i * step)] += values[i]


@njit(cache=True, nogil=True)
def _output_transform(m, y):
    # A^T m A of every tile into a channels-last plane of whole tiles, then the part of the
    # plane inside (oh, ow) transposed into y.
    n_images, channels, oh, ow = y.shape
    th, tw = (oh + 1) // 2, (ow + 1) // 2
    tiles = np.empty(4 * th * tw * channels, y.dtype)
    planes, image = m.reshape(-1), y.reshape(-1)
    plane = m.shape[1]
    row = 2 * tw * channels
    for n in range(n_images):
        for ty in range(th):
            for tx in range(tw):
                p = (2 * ty * 2 * tw + 2 * tx) * channels
                t = ((n * th + ty) * tw + tx) * channels
                for c in range(channels):
                    q, k = p + c, t + c
                    m00, m01, m02, m03 = _load4(planes, k, plane)
                    m10, m11, m12, m13 = _load4(planes, k + 4 * plane, plane)
                    m20, m21, m22, m23 = _load4(planes, k + 8 * plane, plane)
                    m30, m31, m32, m33 = _load4(planes, k + 12 * plane, plane)
                    s00, s10 = _at(m00, m10, m20, m30)
                    s01, s11 = _at(m01, m11, m21, m31)
                    s02, s12 = _at(m02, m12, m22, m32)
                    s03, s13 = _at(m03, m13, m23, m33)
                    y00, y01 = _at(s00, s01, s02, s03)
                    y10, y11 = _at(s10, s11, s12, s13)
                    tiles[uintp(q)], tiles[uintp(q + channels)] = y00, y01
                    tiles[uintp(q + row)], tiles[uintp(q + row + channels)] = y10, y11
        _from_padded_channels_last(tiles, n * channels, channels, oh, ow, 0, 0, 2 * tw, image)


@njit(cache=True, nogil=True)
def _output_transform_backward(gy, out):
    # The adjoint of _output_transform: gy transposed into a channels-last plane of whole
    # tiles (zero past (oh, ow)), then A g A^T of every 2x2 tile.
    n_images, channels, oh, ow = gy.shape
    th, tw = (oh + 1) // 2, (ow + 1) // 2
    tiles = np.zeros(4 * th * tw * channels, gy.dtype)   # only (oh, ow) is ever written
    planes, image = out.reshape(-1), gy.reshape(-1)
    plane = out.shape[1]
    row = 2 * tw * channels
    for n in range(n_images):
        _to_padded_channels_last(image, n * channels, channels, oh, ow, 0, 0, 2 * tw, tiles)
        for ty in range(th):
            for tx in range(tw):
                p = (2 * ty * 2 * tw + 2 * tx) * channels
                t = ((n * th + ty) * tw + tx) * channels
                for c in range(channels):
                    q, k = p + c, t + c
                    g00, g01 = tiles[uintp(q)], tiles[uintp(q + channels)]
                    g10, g11 = tiles[uintp(q + row)], tiles[uintp(q + row + channels)]
                    e00, e10, e20, e30 = _a(g00, g10)
                    e01, e11, e21, e31 = _a(g01, g11)
                    _store4(planes, k, plane, 0, _a(e00, e01))
                    _store4(planes, k, plane, 4, _a(e10, e11))
                    _store4(planes, k, plane, 8, _a(e20, e21))
                    _store4(planes, k, plane, 12, _a(e30, e31))
