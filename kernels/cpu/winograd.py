"""Winograd F(2x2, 3x3) transforms (see kernels.reference for the algorithm and layouts).

Every kernel works on one image at a time through a channels-last plane whose columns are
split by parity: pixel (Y, X) of channel c sits at ((2Y + X % 2) * half + X // 2) * C + c.
Column j of tile (ty, tx) is then column 2 tx + j = parity j % 2, half-column tx + j // 2,
so for one tile row and one tile cell (i, j) the values of all tiles and all channels form a
single run of tw * C adjacent floats, the same run the planes hold. Each transform is two
1-D transforms (rows, then columns), and each 1-D transform is a few loops of the form
``out[J] = sum of weight * run[J]``: one store stream and at most four load streams, which
LLVM vectorizes (a loop storing to 16 planes at once needs too many run-time alias checks and
stays scalar). The 16 transformed planes lie ``plane_size`` apart (kernels.winograd_plane_size):
planes a multiple of 4 KiB apart would share one set of the L1 cache and evict each other.
"""
import numpy as np
from numba import njit, uintp

from ..reference import WINOGRAD_AT, WINOGRAD_BT

# The matrices as constants of the kernels, one row per 1-D combination of four runs. A (4 x 2)
# gets two zero columns so that every combination has four terms.
_BT = np.ascontiguousarray(WINOGRAD_BT, np.float64)
_B = np.ascontiguousarray(WINOGRAD_BT.T, np.float64)
_AT = np.ascontiguousarray(WINOGRAD_AT, np.float64)
_A = np.zeros((4, 4))
_A[:, :2] = WINOGRAD_AT.T


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


@njit(cache=True, nogil=True, inline="always")
def _combine(out, o, src, starts, weights, length, add):
    """out[o + J] (+)= sum over i < 4 of weights[i] * src[starts[i] + J], for J < length."""
    w0, w1 = src.dtype.type(weights[0]), src.dtype.type(weights[1])
    w2, w3 = src.dtype.type(weights[2]), src.dtype.type(weights[3])
    s0, s1, s2, s3 = starts
    if add:
        for J in range(length):
            out[uintp(o + J)] += (w0 * src[uintp(s0 + J)] + w1 * src[uintp(s1 + J)]
                                  + w2 * src[uintp(s2 + J)] + w3 * src[uintp(s3 + J)])
    else:
        for J in range(length):
            out[uintp(o + J)] = (w0 * src[uintp(s0 + J)] + w1 * src[uintp(s1 + J)]
                                 + w2 * src[uintp(s2 + J)] + w3 * src[uintp(s3 + J)])


@njit(cache=True, nogil=True, inline="always")
def _run(y, j, half, channels):
    """Where column j of tile 0 in plane row y starts (the run then covers every tile of the row)."""
    return ((2 * y + j % 2) * half + j // 2) * channels


@njit(cache=True, nogil=True)
def _to_split_columns(image, plane_start, channels, h, w, py, px, half, plane):
    """plane[run of pixel (py + a, px + b), channel c] = image plane (plane_start + c), pixel (a, b)."""
    for c in range(channels):
        for a in range(h):
            source = ((plane_start + c) * h + a) * w
            for b in range(w):
                x = px + b
                plane[uintp(((2 * (py + a) + x % 2) * half + x // 2) * channels + c)] = image[uintp(source + b)]


@njit(cache=True, nogil=True)
def _from_split_columns(plane, plane_start, channels, h, w, py, px, half, image):
    """The inverse of _to_split_columns."""
    for c in range(channels):
        for a in range(h):
            target = ((plane_start + c) * h + a) * w
            for b in range(w):
                x = px + b
                image[uintp(target + b)] = plane[uintp(((2 * (py + a) + x % 2) * half + x // 2) * channels + c)]


@njit(cache=True, nogil=True)
def _input_transform(x, py, px, th, tw, out):
    n_images, channels, h, w = x.shape
    hp, half = max(py + h, 2 * th + 2), max((px + w + 1) // 2, tw + 1)
    padded = np.zeros(hp * 2 * half * channels, x.dtype)   # only its interior is ever written
    length = tw * channels                                    # one tile row, all channels
    rows = np.empty(4 * length, x.dtype)
    image, planes = x.reshape(-1), out.reshape(-1)
    plane = out.shape[1]
    for n in range(n_images):
        _to_split_columns(image, n * channels, channels, h, w, py, px, half, padded)
        for ty in range(th):
            t = (n * th + ty) * length
            for r in range(4):
                for j in range(4):      # e[j] = sum over u of B^T[r, u] d[u, j]
                    starts = (_run(2 * ty, j, half, channels), _run(2 * ty + 1, j, half, channels),
                              _run(2 * ty + 2, j, half, channels), _run(2 * ty + 3, j, half, channels))
                    _combine(rows, j * length, padded, starts, _BT[r], length, False)
                for s in range(4):      # v[r, s] = sum over j of B^T[s, j] e[j]
                    _combine(planes, (4 * r + s) * plane + t, rows, (0, length, 2 * length, 3 * length),
                             _BT[s], length, False)


@njit(cache=True, nogil=True)
def _input_transform_backward(v, py, px, th, tw, gx):
    # The adjoint of _input_transform: B dv B^T of every tile is added onto the plane where the
    # tile was read (tiles overlap by 2 pixels; one fixed order, so the sums are deterministic),
    # then the image part of the plane goes into gx.
    n_images, channels, h, w = gx.shape
    hp, half = max(py + h, 2 * th + 2), max((px + w + 1) // 2, tw + 1)
    padded = np.empty(hp * 2 * half * channels, gx.dtype)
    length = tw * channels
    columns = np.empty(4 * length, gx.dtype)
    planes, image = v.reshape(-1), gx.reshape(-1)
    plane = v.shape[1]
    for n in range(n_images):
        padded[:] = 0
        for ty in range(th):
            t = (n * th + ty) * length
            for j in range(4):
                for r in range(4):      # e[r] = sum over s of B[j, s] dv[r, s]
                    starts = (4 * r * plane + t, (4 * r + 1) * plane + t, (4 * r + 2) * plane + t,
                              (4 * r + 3) * plane + t)
                    _combine(columns, r * length, planes, starts, _B[j], length, False)
                for u in range(4):      # dd[u, j] += sum over r of B[u, r] e[r]
                    _combine(padded, _run(2 * ty + u, j, half, channels), columns,
                             (0, length, 2 * length, 3 * length), _B[u], length, True)
        _from_split_columns(padded, n * channels, channels, h, w, py, px, half, image)


@njit(cache=True, nogil=True)
def _output_transform(m, y):
    # A^T m A of every tile into a plane of whole tiles, then the part inside (oh, ow) into y.
    n_images, channels, oh, ow = y.shape
    th, tw = (oh + 1) // 2, (ow + 1) // 2
    tiles = np.empty(2 * th * 2 * tw * channels, y.dtype)
    length = tw * channels
    columns = np.empty(4 * length, y.dtype)
    planes, image = m.reshape(-1), y.reshape(-1)
    plane = m.shape[1]
    for n in range(n_images):
        for ty in range(th):
            t = (n * th + ty) * length
            for j in range(2):
                for r in range(4):      # q[r] = sum over s of A^T[j, s] m[r, s]
                    starts = (4 * r * plane + t, (4 * r + 1) * plane + t, (4 * r + 2) * plane + t,
                              (4 * r + 3) * plane + t)
                    _combine(columns, r * length, planes, starts, _AT[j], length, False)
                for i in range(2):      # y[i, j] = sum over r of A^T[i, r] q[r]
                    _combine(tiles, _run(2 * ty + i, j, tw, channels), columns,
                             (0, length, 2 * length, 3 * length), _AT[i], length, False)
        _from_split_columns(tiles, n * channels, channels, oh, ow, 0, 0, tw, image)


@njit(cache=True, nogil=True)
def _output_transform_backward(gy, out):
    # The adjoint of _output_transform: gy into a plane of whole tiles (zero past (oh, ow)),
    # then A g A^T of every 2x2 tile.
    n_images, channels, oh, ow = gy.shape
    th, tw = (oh + 1) // 2, (ow + 1) // 2
    tiles = np.zeros(2 * th * 2 * tw * channels, gy.dtype)   # only (oh, ow) is ever written
    length = tw * channels
    columns = np.empty(2 * length, gy.dtype)
    planes, image = out.reshape(-1), gy.reshape(-1)
    plane = out.shape[1]
    for n in range(n_images):
        _to_split_columns(image, n * channels, channels, oh, ow, 0, 0, tw, tiles)
        for ty in range(th):
            t = (n * th + ty) * length
            for s in range(4):
                for i in range(2):      # w[i] = sum over j of A[s, j] g[i, j]
                    first, second = _run(2 * ty + i, 0, tw, channels), _run(2 * ty + i, 1, tw, channels)
                    _combine(columns, i * length, tiles, (first, second, first, second), _A[s], length, False)
                for r in range(4):      # du[r, s] = sum over i of A[r, i] w[i]
                    _combine(planes, (4 * r + s) * plane + t, columns, (0, length, 0, length), _A[r], length,
                             False)
